"""Suspend a site (the maintenance page, no containers) and resume it."""

from __future__ import annotations

from farm.models import Operation
from farm.operations import register_kind
from sites import steps
from sites.models import SiteStatus
from sites.operations.base import SiteKind


@register_kind
class SuspendSite(SiteKind):
    name = "site.suspend"
    label = "Suspend"
    steps = (
        steps.PauseMonitoring(),
        steps.MaintenanceOn(),
        steps.ScaleDown(),
    )

    def on_succeeded(self, operation: Operation) -> None:
        self._set(operation, status=SiteStatus.SUSPENDED)


@register_kind
class ResumeSite(SiteKind):
    name = "site.resume"
    label = "Resume"
    steps = (
        steps.ScaleUp(),
        steps.Converge(),
        steps.MaintenanceOff(),
        steps.Monitoring(),
    )

    def on_succeeded(self, operation: Operation) -> None:
        self._set(operation, status=SiteStatus.ACTIVE)
