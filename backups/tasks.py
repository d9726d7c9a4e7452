"""Queue entry points for backups: ids in, nothing clever. The entry points of a site's
backups (the tick, the RPO check, the drills) are sites' (``sites.tasks``)."""

from __future__ import annotations

from datetime import date

from django.utils import timezone

from backups import policy, restic
from backups.models import Backup, BackupStatus, RepositoryCheck
from farm.errors import FarmError, OperationConflict
from farm.operations import start_operation
from monitoring.alerts import raise_alert, resolve_alert


def subset_for(day: date) -> str:
    """n/30 with n the day of a 30-day cycle: the whole repository is read every 30 days."""
    return f"{day.toordinal() % 30 + 1}/30"


CHECK_ALERT = "restic-check-failed"
NOTHING_TO_CHECK = "nothing to check yet"


def check_repository() -> str:
    """The daily ``restic check``. A repository that is not there because no backup
    has run yet is "nothing to check yet", not a failure (the first backup creates
    it); one that is gone although backups were made is a failure."""
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


def apply_retention() -> str:
    return str(policy.apply_retention())


def back_up_cluster() -> str:
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


# -- moved to sites.tasks ------------------------------------------------------------
# Tasks already queued (and Schedule rows not yet updated by ensure_schedules) under
# the old dotted paths are handed on by name: backups imports nothing of sites.
# Delete these in the release after the one that moved them.


def _forward(name: str) -> str:
    from django_q.tasks import async_task

    async_task(f"sites.tasks.{name}", group="backups")
    return f"handed on to sites.tasks.{name}"


def backup_tick() -> str:
    return _forward("backup_tick")


def start_claimed_backups() -> str:
    return _forward("start_claimed_backups")


def check_rpo() -> str:
    return _forward("check_rpo")


def run_drills() -> str:
    return _forward("run_drills")
