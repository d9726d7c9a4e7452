"""When backups fall due, from a site's policy (pure functions of the policy and a time)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.utils import timezone

from backups.models import BackupPolicy


def next_daily(at: time, now: datetime) -> datetime:
    today = now.astimezone(timezone.get_current_timezone()).replace(
        hour=at.hour, minute=at.minute, second=0, microsecond=0
    )
    return today if today > now else today + timedelta(days=1)


def next_db_due(policy: BackupPolicy, after: datetime) -> datetime:
    """The earlier of the daily slot and ``after`` + the interval (keeps the 6 h RPO)."""
    daily = next_daily(policy.db_daily_at, after)
    if policy.db_every_hours:
        return min(daily, after + timedelta(hours=policy.db_every_hours))
    return daily


def first_due_times(policy: BackupPolicy, now: datetime) -> tuple[datetime, datetime]:
    """A new site gets its first database backup soon (a new site has no restore point
    at all), then follows its schedule; files at the next daily slot."""
    return now + timedelta(minutes=5), next_daily(policy.files_daily_at, now)
