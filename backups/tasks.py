"""Queue entry points for backups: ids in, nothing clever."""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.utils import timezone

from backups import restic, rpo, schedule, services
from backups.models import RepositoryCheck
from farm.errors import FarmError


def backup_tick() -> int:
    return schedule.tick()


def start_claimed_backups() -> str:
    return str(services.start_claimed_backups())


def check_rpo() -> str:
    return str(rpo.check_rpo())


def subset_for(day: date) -> str:
    """n/30 with n the day of a 30-day cycle: the whole repository is read every 30 days."""
    return f"{day.toordinal() % 30 + 1}/30"


def check_repository() -> str:
    subset = subset_for(timezone.now().date())
    record = RepositoryCheck.objects.create(read_data_subset=subset)
    try:
        result = restic.check(restic.repository_from_settings(), read_data_subset=subset)
    except FarmError as exc:
        # Not reached at all is a failed check too (not one left "running" for ever).
        result = restic.CheckResult(ok=False, output=exc.message, seconds=0.0)
    record.ok = result.ok
    record.output = result.output[-20000:]
    record.seconds = result.seconds
    record.finished_at = timezone.now()
    record.save()
    if not result.ok:
        from monitoring.alerts import raise_alert

        raise_alert(
            fingerprint="restic-check-failed",
            name="RepositoryCheckFailed",
            severity="critical",
            source="backup",
            summary=f"restic check of subset {subset} failed",
            description=result.output[-2000:],
        )
    return f"subset {subset}: {'ok' if result.ok else 'FAILED'}"


def run_drills() -> str:
    return str(services.run_drills(settings.FARM_DRILL_SAMPLE))


def apply_retention() -> str:
    from backups.retention import apply_retention as apply

    return str(apply())


def back_up_cluster() -> str:
    from farm.errors import OperationConflict
    from farm.operations import start_operation

    try:
        operation = start_operation(
            "backup.cluster",
            target_type="cluster",
            target_id="farm",
            target_repr="farm MariaDB",
            params={"reason": "scheduled"},
        )
    except OperationConflict as exc:
        return exc.message
    return f"operation {operation.pk}"
