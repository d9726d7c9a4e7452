"""When backups fall due, the claims the minute tick makes, and the back-off after a failure.

The tick (``sites.tasks.backup_tick``) must cost the same whatever the number of
sites: it claims due policies with two UPDATEs (``claim_due``) and enqueues one
task when anything was claimed, or when a claim was left behind (``STALE_CLAIM``).
That task (a worker, not the tick) starts one backup operation per claimed site,
moves each policy's next time on, and leaves a site whose previous backup is
still running claimed, for a later tick to hand over again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from backups.models import BackupKind, BackupPolicy

# Back-off after a failed scheduled backup: 5 min, 15 min, 45 min, then the
# normal schedule (an Alert is already firing by then).
BACKOFF = (timedelta(minutes=5), timedelta(minutes=15), timedelta(minutes=45))

# A claim still there this long after the tick made it was not started: its site was
# busy (a restore holds its lock) or the task was lost. The tick hands it to the worker
# again; it is never claimed twice, so nothing else would.
STALE_CLAIM = timedelta(minutes=2)


def next_daily(at: time, now: datetime) -> datetime:
    local = now.astimezone(timezone.get_current_timezone())
    today = local.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
    return today if today > now else today + timedelta(days=1)


def next_db_due(policy: BackupPolicy, after: datetime) -> datetime:
    """The earlier of the daily slot and ``after`` + the interval (keeps the 6 h RPO)."""
    daily = next_daily(policy.db_daily_at, after)
    if policy.db_every_hours:
        return min(daily, after + timedelta(hours=policy.db_every_hours))
    return daily


def next_files_due(policy: BackupPolicy, after: datetime) -> datetime:
    return next_daily(policy.files_daily_at, after)


def first_due_times(policy: BackupPolicy, now: datetime) -> tuple[datetime, datetime]:
    """A new site gets its first database backup within minutes (until then it has
    no restore point at all), then follows its schedule; files at the daily slot."""
    return now + timedelta(minutes=2), next_files_due(policy, now)


def retry_after_failure(failures: int, now: datetime) -> datetime | None:
    """When to try a failed scheduled backup again, or None to wait for the schedule."""
    if 1 <= failures <= len(BACKOFF):
        return now + BACKOFF[failures - 1]
    return None


def note_backup_succeeded(site_id: int) -> None:
    BackupPolicy.objects.filter(site_id=site_id).update(failures=0)


def note_scheduled_backup_failed(
    site_id: int, kinds: Sequence[str], now: datetime
) -> datetime | None:
    """A scheduled backup of the site failed: count the failure and bring what failed
    (the database, the files, or both) forward by the back-off. Returns when it is
    tried again; None when it waits for its schedule (or the site has no policy)."""
    policy = BackupPolicy.objects.filter(site_id=site_id).first()
    if policy is None:
        return None
    policy.failures += 1
    retry_at = retry_after_failure(policy.failures, now)
    if retry_at is not None:
        if BackupKind.DB in kinds:
            policy.next_db_at = min(policy.next_db_at or retry_at, retry_at)
        if BackupKind.FILES in kinds:
            policy.next_files_at = min(policy.next_files_at or retry_at, retry_at)
    policy.save(update_fields=["failures", "next_db_at", "next_files_at"])
    return retry_at


def claim_due(now: datetime, *, site_statuses: Sequence[str]) -> int:
    """Claim every due backup of the sites in ``site_statuses`` (two UPDATEs, one per
    kind, whatever the number of sites); returns how many were claimed."""
    enabled = BackupPolicy.objects.filter(enabled=True, site__status__in=site_statuses)
    claimed = enabled.filter(next_db_at__lte=now, db_claimed_at__isnull=True).update(
        db_claimed_at=now
    )
    claimed += enabled.filter(next_files_at__lte=now, files_claimed_at__isnull=True).update(
        files_claimed_at=now
    )
    return claimed


def left_behind(now: datetime) -> QuerySet[BackupPolicy]:
    stale = now - STALE_CLAIM
    return BackupPolicy.objects.filter(Q(db_claimed_at__lte=stale) | Q(files_claimed_at__lte=stale))


def claimed_policies() -> list[BackupPolicy]:
    return list(
        BackupPolicy.objects.select_related("site", "site__tenant")
        .filter(Q(db_claimed_at__isnull=False) | Q(files_claimed_at__isnull=False))
        .order_by("db_claimed_at", "files_claimed_at")
    )
