"""The steps of suspend and resume: the maintenance page, scaling, the probe."""

from __future__ import annotations

from collections.abc import Callable

from farm.operations import StepContext
from sites import service_states, swarm_site
from sites.maintenance import apply_maintenance
from sites.models import Site
from sites.steps.base import SiteStep
from sites.steps.provision import Monitoring


def set_maintenance(site: Site, on: bool, log: Callable[[str], None]) -> None:
    Site.objects.filter(pk=site.pk).update(maintenance=on)
    log(f"maintenance page {'on' if on else 'off'} (service {apply_maintenance()})")


class MaintenanceOn(SiteStep):
    name = "maintenance_on"
    label = "Show the maintenance page"

    def run(self, ctx: StepContext) -> None:
        set_maintenance(self.site(ctx), True, ctx.log)

    def undo(self, ctx: StepContext) -> None:
        set_maintenance(self.site(ctx), False, ctx.log)


class MaintenanceOff(SiteStep):
    name = "maintenance_off"
    label = "Remove the maintenance page"

    def run(self, ctx: StepContext) -> None:
        set_maintenance(self.site(ctx), False, ctx.log)


class ScaleDown(SiteStep):
    name = "scale_down"
    label = "Stop the site's containers"

    def run(self, ctx: StepContext) -> None:
        site_id = self.site(ctx).pk
        done = swarm_site.scale_stack(site_id, 0, ctx.log)
        if not done:
            ctx.log("already scaled to zero")
        service_states.record_site(site_id)

    def undo(self, ctx: StepContext) -> None:
        site_id = self.site(ctx).pk
        swarm_site.scale_stack(site_id, 1, ctx.log)
        service_states.record_site(site_id)


class ScaleUp(SiteStep):
    name = "scale_up"
    label = "Start the site's containers"

    def run(self, ctx: StepContext) -> None:
        site_id = self.site(ctx).pk
        done = swarm_site.scale_stack(site_id, 1, ctx.log)
        if not done:
            ctx.log("already running")
        service_states.record_site(site_id)


class PauseMonitoring(Monitoring):
    """A suspended site answers with the maintenance page on purpose: its probe goes
    while it sleeps, so no SiteDown fires for it (resume puts the probe back)."""

    name = "pause_monitoring"
    label = "Stop probing the site"

    def run(self, ctx: StepContext) -> None:
        Monitoring.undo(self, ctx)

    def undo(self, ctx: StepContext) -> None:
        Monitoring.run(self, ctx)
