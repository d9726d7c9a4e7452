"""Queue entry points for backups: ids in, nothing clever."""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.utils import timezone

from backups import restic, rpo, schedule, services
from backups.models import Backup, BackupStatus, RepositoryCheck
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


CHECK_ALERT = "restic-check-failed"
NOTHING_TO_CHECK = "nothing to check yet"


def check_repository() -> str:
    """The daily ``restic check``. A repository that is not there because no backup
    has run yet is "nothing to check yet", not a failure (the first backup creates
    it); one that is gone although backups were made is a failure."""
    from monitoring.alerts import raise_alert, resolve_alert

    subset = subset_for(timezone.now().date())
    record = RepositoryCheck.objects.create(read_data_subset=subset)
    nothing_to_check = False
    try:
        repo = restic.repository_from_settings()
        result = restic.check(repo, read_data_subset=subset)
    except restic.ResticError as exc:
        nothing_to_check = exc.kind == "not_initialised" and not _backups_were_made(repo.url)
        if nothing_to_check:
            output = f"{NOTHING_TO_CHECK}: no backup has run yet ({exc.message})"
            result = restic.CheckResult(ok=True, output=output, seconds=0.0)
        else:
            result = restic.CheckResult(ok=False, output=exc.message, seconds=0.0)
    except FarmError as exc:
        # Not reached at all is a failed check too (not one left "running" for ever).
        result = restic.CheckResult(ok=False, output=exc.message, seconds=0.0)
    record.ok = result.ok
    record.output = result.output[-20000:]
    record.seconds = result.seconds
    record.finished_at = timezone.now()
    record.save()
    if not result.ok:
        raise_alert(
            fingerprint=CHECK_ALERT,
            name="RepositoryCheckFailed",
            severity="critical",
            source="backup",
            summary=f"restic check of subset {subset} failed",
            description=result.output[-2000:],
        )
    else:
        resolve_alert(CHECK_ALERT)
    if nothing_to_check:
        return f"subset {subset}: {NOTHING_TO_CHECK}"
    return f"subset {subset}: {'ok' if result.ok else 'FAILED'}"


def _backups_were_made(repository: str) -> bool:
    """Whether a snapshot was ever recorded in this repository (so it should exist)."""
    return (
        Backup.objects.filter(repository=repository)
        .exclude(snapshot_id="")
        .filter(status__in=[BackupStatus.SUCCEEDED, BackupStatus.FORGOTTEN])
        .exists()
    )


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
