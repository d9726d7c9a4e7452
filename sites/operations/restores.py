"""The operation kinds of a restore: in place or beside (with its preview site), the
daily drill, and the switch of a site to its verified preview."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar

from django.utils import timezone

from backups.models import Restore, RestoreStatus, RestoreTarget
from farm.errors import FarmError
from farm.models import Operation
from farm.models.operations import OperationMode
from farm.operations import OperationKind, Step, register_kind, roll_back_operation
from sites import steps
from sites.models import Site, SiteStatus

logger = logging.getLogger(__name__)


class RestoreKind(OperationKind):
    target_type = "restore"

    def get_target(self, operation: Operation) -> Restore:
        return Restore.objects.select_related("site", "site__tenant", "preview_site").get(
            pk=operation.target_id
        )


PREVIEW_STEPS = (
    steps.PreviewSite(),
    steps.Allocate(
        site=steps.preview_of, name="preview_allocate", label="Preview: allocate names and secrets"
    ),
    steps.Database(
        site=steps.preview_of, name="preview_database", label="Preview: create its database"
    ),
    steps.Files(site=steps.preview_of, name="preview_files", label="Preview: create its directory"),
    steps.SwarmStack(
        site=steps.preview_of, name="preview_swarm", label="Preview: deploy its stack"
    ),
    steps.Converge(
        site=steps.preview_of, name="preview_converge", label="Preview: wait for its tasks"
    ),
)


@register_kind
class RestoreSite(RestoreKind):
    name = "restore.site"
    label = "Restore"
    steps: ClassVar[Sequence[Step]] = (
        steps.SafetyBackup(),
        *PREVIEW_STEPS,
        steps.Maintenance(),
        steps.RestoreDatabase(),
        steps.RestoreFiles(),
        steps.EndMaintenance(),
        steps.Verify(),
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
            steps.abandon_preview(restore, operation.error)
            if operation.mode == OperationMode.FORWARD:
                # A failed restore beside (or drill) removes its preview: roll back
                # its steps (stack, database, files). Should that fail too, the
                # preview stays failed, and deletable from its page.
                try:
                    roll_back_operation(operation, note="the restore failed: remove the preview")
                except FarmError as exc:
                    logger.warning("restore %s: preview not cleaned up: %s", restore.pk, exc)

    def on_cancelled(self, operation: Operation) -> None:
        steps.abandon_preview(self.get_target(operation), "cancelled")

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
    steps = (*RestoreSite.steps, steps.RemovePreview())

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
        steps.SwapDomains(),
        steps.ApplyBothStacks(),
        steps.ConvergeBoth(),
        steps.VerifySwitched(),
        steps.ConfigBackup(
            site=steps.preview_of, name="config_backup", label="Snapshot the new config"
        ),
    )

    def on_succeeded(self, operation: Operation) -> None:
        Restore.objects.filter(pk=operation.target_id).update(
            status=RestoreStatus.SWITCHED, switched_at=timezone.now()
        )
