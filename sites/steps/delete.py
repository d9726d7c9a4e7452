"""The steps of delete: each provision step in reverse, then (only when purging)
the files and the backups."""

from __future__ import annotations

from backups import policy
from farm.operations import StepContext
from sites import files
from sites.steps.base import SiteStep
from sites.steps.provision import Database, Dns, Monitoring, SwarmStack


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
        if not ctx.params.get("purge"):
            ctx.skip("kept the backups (not purged)")
        site = self.site(ctx)
        forgotten = policy.forget_site_snapshots(site.pk)
        ctx.log(f"forgot {forgotten} snapshot(s) of {site.domain} and pruned the repository")
