"""Retention: forget snapshots by each site's policy, then prune once for the repository."""

from __future__ import annotations

import logging

from backups import restic
from backups.models import Backup, BackupKind, BackupPolicy, BackupStatus
from backups.restic_cli import run

logger = logging.getLogger(__name__)


def apply_retention(*, prune: bool = True) -> dict[str, int]:
    repo = restic.repository_from_settings()
    removed: list[str] = []
    for policy in BackupPolicy.objects.select_related("site"):
        for kind in (BackupKind.DB, BackupKind.FILES, BackupKind.CONFIG):
            removed += restic.forget_by_policy(
                repo,
                tags={"site": str(policy.site_id), "kind": kind},
                keep_daily=policy.keep_daily,
                keep_weekly=policy.keep_weekly,
                keep_monthly=policy.keep_monthly,
                prune=False,
            )
    if removed:
        Backup.objects.filter(snapshot_id__in=removed).update(status=BackupStatus.FORGOTTEN)
        if prune:
            run(repo, ["prune"])  # one prune for the whole repository: it rewrites packs
    logger.info("retention forgot %d snapshot(s)", len(removed))
    return {"forgotten": len(removed)}
