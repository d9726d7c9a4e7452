"""Provision a site, and repair one that drifted (the same idempotent steps)."""

from __future__ import annotations

from django.utils import timezone

from farm.models import Operation
from farm.operations import register_kind
from sites import steps
from sites.models import SiteStatus
from sites.operations.base import SiteKind

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
