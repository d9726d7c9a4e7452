"""The steps of a site's later operations: suspend and resume (the maintenance
page, scaling), delete (each provision step in reverse) and the config backup.
The provision steps they build on are in sites/steps.py."""

from __future__ import annotations

from collections.abc import Callable

from farm.operations import StepContext
from sites import files, swarm_site
from sites.maintenance import apply_maintenance
from sites.models import Site
from sites.steps import Database, Dns, Monitoring, SiteStep, SwarmStack, back_up_config


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
        done = swarm_site.scale_stack(self.site(ctx).pk, 0, ctx.log)
        if not done:
            ctx.log("already scaled to zero")

    def undo(self, ctx: StepContext) -> None:
        swarm_site.scale_stack(self.site(ctx).pk, 1, ctx.log)


class ScaleUp(SiteStep):
    name = "scale_up"
    label = "Start the site's containers"

    def run(self, ctx: StepContext) -> None:
        done = swarm_site.scale_stack(self.site(ctx).pk, 1, ctx.log)
        if not done:
            ctx.log("already running")


class RemoveStack(SwarmStack):
    name = "remove_stack"
    label = "Remove services, network, secrets and config"

    def run(self, ctx: StepContext) -> None:
        SwarmStack.undo(self, ctx)

    def undo(self, ctx: StepContext) -> None:
        ctx.log("A deleted stack is not brought back by roll back; restore from a backup.")


class RemoveDns(Dns):
    name = "remove_dns"
    label = "Remove the DNS record"

    def run(self, ctx: StepContext) -> None:
        Dns.undo(self, ctx)

    def undo(self, ctx: StepContext) -> None:
        ctx.log("Nothing to undo.")


class RemoveMonitoring(Monitoring):
    name = "remove_monitoring"
    label = "Remove the site from monitoring"

    def run(self, ctx: StepContext) -> None:
        Monitoring.undo(self, ctx)

    def undo(self, ctx: StepContext) -> None:
        ctx.log("Nothing to undo.")


class PauseMonitoring(Monitoring):
    """A suspended site answers with the maintenance page on purpose: its probe goes
    while it sleeps, so no SiteDown fires for it (resume puts the probe back)."""

    name = "pause_monitoring"
    label = "Stop probing the site"

    def run(self, ctx: StepContext) -> None:
        Monitoring.undo(self, ctx)

    def undo(self, ctx: StepContext) -> None:
        Monitoring.run(self, ctx)


class DropDatabase(Database):
    name = "drop_database"
    label = "Drop the database and its user"

    def run(self, ctx: StepContext) -> None:
        Database.undo(self, ctx)

    def undo(self, ctx: StepContext) -> None:
        ctx.log("Nothing to undo.")


class PurgeFiles(SiteStep):
    name = "purge_files"
    label = "Delete files (only when purging)"

    def run(self, ctx: StepContext) -> None:
        if not ctx.params.get("purge"):
            ctx.skip(f"kept {files.site_path(self.site(ctx).pk)} (not purged)")
        removed = files.remove_site_files(self.site(ctx).pk)
        ctx.log("deleted the site directory" if removed else "no site directory")


class PurgeBackups(SiteStep):
    name = "purge_backups"
    label = "Forget backups (only when purging)"

    def run(self, ctx: StepContext) -> None:
        from backups.services import purge_site_backups

        if not ctx.params.get("purge"):
            ctx.skip("kept the backups (not purged)")
        purge_site_backups(self.site(ctx), ctx.log)


class ConfigBackup(SiteStep):
    name = "config_backup"
    label = "Snapshot the site's config"

    def run(self, ctx: StepContext) -> None:
        back_up_config(self.site(ctx), ctx)
