"""When a backup is due and how it backs off after a failure (``schedule``), how long
snapshots are kept (``retention``), and whether each site's newest snapshot is within
its RPO (``rpo``, with a site's restore points).

This module is the package's public API; nothing outside ``backups.policy`` imports
its modules (an import-linter contract says so). Its functions take sites as plain
values (ids, statuses, or a ``RpoSite``); the sites' own lifecycle is ``sites``'.
"""

from backups.policy.retention import apply_retention, forget_site_snapshots
from backups.policy.rpo import (
    ALERT_PREFIX,
    MAX_CHOICES,
    UNREADABLE_ALERT,
    LedgerRow,
    RpoSite,
    SizeDrop,
    SnapshotChoice,
    breached,
    check_rpo,
    last_checked,
    ledger_order,
    ledger_row,
    list_repository,
    measure,
    record_ledger,
    record_listing,
    repository_unreadable,
    site_snapshots,
    snapshot_at,
    snapshot_sizes,
)
from backups.policy.schedule import (
    BACKOFF,
    STALE_CLAIM,
    claim_due,
    claimed_policies,
    first_due_times,
    left_behind,
    next_daily,
    next_db_due,
    next_files_due,
    note_backup_succeeded,
    note_scheduled_backup_failed,
    retry_after_failure,
)

__all__ = [
    "ALERT_PREFIX",
    "BACKOFF",
    "MAX_CHOICES",
    "STALE_CLAIM",
    "UNREADABLE_ALERT",
    "LedgerRow",
    "RpoSite",
    "SizeDrop",
    "SnapshotChoice",
    "apply_retention",
    "breached",
    "check_rpo",
    "claim_due",
    "claimed_policies",
    "first_due_times",
    "forget_site_snapshots",
    "last_checked",
    "ledger_order",
    "ledger_row",
    "left_behind",
    "list_repository",
    "measure",
    "next_daily",
    "next_db_due",
    "next_files_due",
    "note_backup_succeeded",
    "note_scheduled_backup_failed",
    "record_ledger",
    "record_listing",
    "repository_unreadable",
    "retry_after_failure",
    "site_snapshots",
    "snapshot_at",
    "snapshot_sizes",
]
