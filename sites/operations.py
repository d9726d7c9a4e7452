"""The operation kinds of a site's life: provision (and repair), suspend, resume, delete."""

from __future__ import annotations

from django.utils import timezone

from farm.models import Operation
from farm.operations import OperationKind, register_kind
from sites import lifecycle_steps, steps
from sites.models import Site, SiteStatus


class SiteKind(OperationKind):
    target_type = "site"

    def get_target(self, operation: Operation) -> Site:
        return Site.objects.select_related("tenant").get(pk=operation.target_id)

    def _set(self, operation: Operation, **fields: object) -> None:
        site = self.get_target(operation)
        for name, value in fields.items():
            setattr(site, name, value)
        site.save(update_fields=list(fields))


PROVISION_STEPS = (
    steps.Allocate(),
    steps.Database(),
    steps.Files(),
    steps.SwarmStack(),
    steps.Converge(),
    steps.Dns(),
    steps.Reachable(),
    steps.Monitoring(),
    steps.BackupSchedule(),
)


@register_kind
class ProvisionSite(SiteKind):
    name = "site.provision"
    label = "Provision"
    steps = PROVISION_STEPS

    def on_succeeded(self, operation: Operation) -> None:
        self._set(operation, status=SiteStatus.ACTIVE, last_error="", activated_at=timezone.now())

    def on_failed(self, operation: Operation) -> None:
        self._set(operation, status=SiteStatus.FAILED, last_error=operation.error)

    def on_cancelled(self, operation: Operation) -> None:
        self._set(operation, status=SiteStatus.FAILED, last_error="Provisioning was cancelled.")

    def on_rolled_back(self, operation: Operation) -> None:
        # Nothing of the site is left anywhere: the row stays for the record,
        # and its domain is free again.
        self._set(operation, status=SiteStatus.DELETED, last_error="")


@register_kind
class RepairSite(ProvisionSite):
    """Re-run the idempotent provision steps on a site that drifted."""

    name = "site.repair"
    label = "Repair"
    reversible = False
    operator_only = True  # started by operators only (sites.services.repair_site)

    def on_rolled_back(self, operation: Operation) -> None:
        self._set(operation, status=SiteStatus.FAILED, last_error="Repair was rolled back.")


@register_kind
class SuspendSite(SiteKind):
    name = "site.suspend"
    label = "Suspend"
    steps = (
        lifecycle_steps.PauseMonitoring(),
        lifecycle_steps.MaintenanceOn(),
        lifecycle_steps.ScaleDown(),
    )

    def on_succeeded(self, operation: Operation) -> None:
        self._set(operation, status=SiteStatus.SUSPENDED)


@register_kind
class ResumeSite(SiteKind):
    name = "site.resume"
    label = "Resume"
    steps = (
        lifecycle_steps.ScaleUp(),
        steps.Converge(),
        lifecycle_steps.MaintenanceOff(),
        steps.Monitoring(),
    )

    def on_succeeded(self, operation: Operation) -> None:
        self._set(operation, status=SiteStatus.ACTIVE)


@register_kind
class DeleteSite(SiteKind):
    name = "site.delete"
    label = "Delete"
    steps = (
        lifecycle_steps.RemoveMonitoring(),
        lifecycle_steps.RemoveDns(),
        lifecycle_steps.RemoveStack(),
        lifecycle_steps.DropDatabase(),
        lifecycle_steps.PurgeFiles(),
        lifecycle_steps.PurgeBackups(),
    )

    def requires_operator(self, operation: Operation) -> bool:
        # Only operators purge files and backups (sites.services.delete_site); a
        # tenant must not restart (or stop half-way) a purge an operator began.
        return bool(operation.params.get("purge")) or super().requires_operator(operation)

    def on_succeeded(self, operation: Operation) -> None:
        self._set(operation, status=SiteStatus.DELETED, maintenance=False)

    def on_failed(self, operation: Operation) -> None:
        self._set(operation, last_error=operation.error)
