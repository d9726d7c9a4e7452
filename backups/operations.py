"""Operation kinds of the backups app: site backup, cluster backup, restore, switch, drill."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar

from django.utils import timezone

from backups import restore_steps as rs
from backups import switch_steps as ss
from backups import verify
from backups.models import BackupKind, BackupPolicy, Restore, RestoreStatus, RestoreTarget
from backups.schedule import retry_after_failure
from backups.steps import SiteBackupStep
from farm.errors import FarmError
from farm.models import Operation
from farm.models.operations import OperationMode
from farm.operations import OperationKind, Step, register_kind, roll_back_operation
from monitoring.alerts import raise_alert, resolve_alert
from sites import lifecycle_steps
from sites import steps as site_steps
from sites.models import Site, SiteStatus

logger = logging.getLogger(__name__)


def backup_alert_fingerprint(site_id: int) -> str:
    return f"backup-failed-site-{site_id}"


@register_kind
class BackUpSite(OperationKind):
    name = "backup.site"
    label = "Back up"
    target_type = "site"
    steps = (
        SiteBackupStep(BackupKind.DB, "Database: mariadb-dump into restic"),
        SiteBackupStep(BackupKind.FILES, "Files: the site directory into restic"),
        SiteBackupStep(BackupKind.CONFIG, "Config: the site's spec as JSON"),
    )

    def get_target(self, operation: Operation) -> Site:
        return Site.objects.select_related("tenant").get(pk=operation.target_id)

    def on_succeeded(self, operation: Operation) -> None:
        BackupPolicy.objects.filter(site_id=operation.target_id).update(failures=0)
        resolve_alert(backup_alert_fingerprint(int(operation.target_id)))

    def on_failed(self, operation: Operation) -> None:
        site = self.get_target(operation)
        policy = BackupPolicy.objects.filter(site=site).first()
        retry_note = ""
        if policy is not None and operation.params.get("reason") == "scheduled":
            policy.failures += 1
            retry_at = retry_after_failure(policy.failures, timezone.now())
            if retry_at is not None:
                kinds = operation.params.get("kinds", [])
                # Retry what failed: the database, the files, or both.
                if BackupKind.DB in kinds:
                    policy.next_db_at = min(policy.next_db_at or retry_at, retry_at)
                if BackupKind.FILES in kinds:
                    policy.next_files_at = min(policy.next_files_at or retry_at, retry_at)
                retry_note = f" Retrying at {retry_at:%H:%M}."
            policy.save(update_fields=["failures", "next_db_at", "next_files_at"])
        raise_alert(
            fingerprint=backup_alert_fingerprint(site.pk),
            name="BackupFailed",
            severity="critical",
            site_id=site.pk,
            tenant_id=site.tenant_id,
            source="backup",
            summary=f"Backup of {site.domain} failed",
            description=operation.error + retry_note,
        )


class RestoreKind(OperationKind):
    target_type = "restore"

    def get_target(self, operation: Operation) -> Restore:
        return Restore.objects.select_related("site", "site__tenant", "preview_site").get(
            pk=operation.target_id
        )


PREVIEW_STEPS = (
    rs.PreviewSite(),
    site_steps.Allocate(
        site=rs.preview_of, name="preview_allocate", label="Preview: allocate names and secrets"
    ),
    site_steps.Database(
        site=rs.preview_of, name="preview_database", label="Preview: create its database"
    ),
    site_steps.Files(
        site=rs.preview_of, name="preview_files", label="Preview: create its directory"
    ),
    site_steps.SwarmStack(
        site=rs.preview_of, name="preview_swarm", label="Preview: deploy its stack"
    ),
    site_steps.Converge(
        site=rs.preview_of, name="preview_converge", label="Preview: wait for its tasks"
    ),
)


@register_kind
class RestoreSite(RestoreKind):
    name = "restore.site"
    label = "Restore"
    steps: ClassVar[Sequence[Step]] = (
        rs.SafetyBackup(),
        *PREVIEW_STEPS,
        rs.Maintenance(),
        rs.RestoreDatabase(),
        rs.RestoreFiles(),
        rs.EndMaintenance(),
        verify.Verify(),
    )

    def on_succeeded(self, operation: Operation) -> None:
        restore = self.get_target(operation)
        now = timezone.now()
        restore.status = RestoreStatus.SUCCEEDED
        restore.finished_at = now
        restore.error = ""
        restore.save(update_fields=["status", "finished_at", "error"])
        if restore.target == RestoreTarget.IN_PLACE:
            Site.objects.filter(pk=restore.site_id).update(status=SiteStatus.ACTIVE, last_error="")
        elif restore.preview_site_id and not restore.is_drill:  # a drill removed its preview
            Site.objects.filter(pk=restore.preview_site_id).update(status=SiteStatus.ACTIVE)

    def on_failed(self, operation: Operation) -> None:
        restore = self.get_target(operation)
        restore.status = RestoreStatus.FAILED
        restore.finished_at = timezone.now()
        restore.error = operation.error
        restore.save(update_fields=["status", "finished_at", "error"])
        if restore.target == RestoreTarget.IN_PLACE:
            Site.objects.filter(pk=restore.site_id).update(
                status=SiteStatus.FAILED, last_error=f"Restore failed: {operation.error}"
            )
        else:
            rs.abandon_preview(restore, operation.error)
            if operation.mode == OperationMode.FORWARD:
                # A failed restore beside (or drill) removes its preview: roll back
                # its steps (stack, database, files). Should that fail too, the
                # preview stays failed, and deletable from its page.
                try:
                    roll_back_operation(operation, note="the restore failed: remove the preview")
                except FarmError as exc:
                    logger.warning("restore %s: preview not cleaned up: %s", restore.pk, exc)

    def on_cancelled(self, operation: Operation) -> None:
        rs.abandon_preview(self.get_target(operation), "cancelled")

    def on_rolled_back(self, operation: Operation) -> None:
        restore = self.get_target(operation)
        restore.status = RestoreStatus.FAILED
        restore.error = (restore.error or operation.error) + " (rolled back)"
        restore.save(update_fields=["status", "error"])
        if restore.target == RestoreTarget.IN_PLACE:
            Site.objects.filter(pk=restore.site_id).update(status=SiteStatus.ACTIVE)


@register_kind
class RestoreDrill(RestoreSite):
    """A scheduled proof: restore beside, verify, measure the RTO, remove the preview."""

    name = "restore.drill"
    label = "Restore drill"
    # The farm's own proof, started by its schedule: a tenant neither retries nor stops it.
    operator_only = True
    steps = (*RestoreSite.steps, rs.RemovePreview())

    def on_succeeded(self, operation: Operation) -> None:
        super().on_succeeded(operation)
        Restore.objects.filter(pk=operation.target_id).update(status=RestoreStatus.DISCARDED)


@register_kind
class SwitchToPreview(RestoreKind):
    """Route the site's domain to the verified preview; the old stack keeps the
    preview's name until someone deletes it. Rolling it back gives the domain and
    the backup policy back to the original site and re-applies both stacks
    (``SwapDomains.undo``)."""

    name = "restore.switch"
    label = "Switch to the preview"
    steps = (
        ss.SwapDomains(),
        ss.ApplyBothStacks(),
        ss.ConvergeBoth(),
        ss.VerifySwitched(),
        lifecycle_steps.ConfigBackup(
            site=rs.preview_of, name="config_backup", label="Snapshot the new config"
        ),
    )

    def on_succeeded(self, operation: Operation) -> None:
        Restore.objects.filter(pk=operation.target_id).update(
            status=RestoreStatus.SWITCHED, switched_at=timezone.now()
        )


class ClusterBackupStep(Step):
    name = "cluster"
    label = "mariabackup of the farm's MariaDB into restic"

    def run(self, ctx: rs.StepContext) -> None:
        from backups.cluster import backup_cluster

        backup = backup_cluster(
            reason=ctx.params.get("reason", "scheduled"), operation_id=ctx.operation.pk, log=ctx.log
        )
        ctx.state["backup"] = backup.pk


@register_kind
class BackUpCluster(OperationKind):
    name = "backup.cluster"
    label = "Cluster backup"
    target_type = "cluster"
    operator_only = True
    steps = (ClusterBackupStep(),)

    def on_failed(self, operation: Operation) -> None:
        raise_alert(
            fingerprint="backup-failed-cluster",
            name="ClusterBackupFailed",
            severity="critical",
            source="backup",
            summary="The cluster database backup failed",
            description=operation.error,
        )

    def on_succeeded(self, operation: Operation) -> None:
        resolve_alert("backup-failed-cluster")
