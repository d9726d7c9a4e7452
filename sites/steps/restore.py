"""Steps of a restore: safety backup, maintenance page, database, files, verification.

A restore runs as an operation on its Restore row and holds its site's lock, so
no backup of that site interleaves with it. In place, the site's current state
is backed up first and the previous files are kept aside until verification
passed; beside, a preview site is provisioned with the same steps as any site
(``sites.steps.preview``). The files are put in place by ``sites.steps.restore_files``.
"""

from __future__ import annotations

import time
from abc import abstractmethod

from backups import restic
from backups.mariadb import DB_FILENAME, restore_db
from backups.models import Restore, RestoreScope, RestoreTarget
from farm.errors import FarmError
from farm.operations import Step, StepContext
from nodes import mariadb
from sites.models import Site, SiteStatus
from sites.steps.backup import backup_site_db, backup_site_files
from sites.steps.lifecycle import set_maintenance


def restore_of(ctx: StepContext) -> Restore:
    restore: Restore = ctx.refresh_target()
    return restore


def target_site(restore: Restore) -> Site:
    """The site whose data is replaced: the site itself, or its preview."""
    if restore.target == RestoreTarget.BESIDE:
        if restore.preview_site is None:
            raise FarmError("The preview site has not been created yet.")
        return restore.preview_site
    return restore.site


def preview_of(ctx: StepContext) -> Site:
    """The preview site, for the provision steps a restore beside reuses (they skip
    themselves when the restore is in place)."""
    restore = restore_of(ctx)
    if restore.target != RestoreTarget.BESIDE:
        ctx.skip("restoring in place")
    if restore.preview_site is None:
        raise FarmError("The preview site has not been created yet.")
    return restore.preview_site


def wants(restore: Restore, part: str) -> bool:
    return restore.scope in (part, RestoreScope.BOTH)


class RestoreStep(Step):
    """Runs only for the targets it names (in place, beside)."""

    targets: tuple[str, ...] = (RestoreTarget.IN_PLACE, RestoreTarget.BESIDE)

    def run(self, ctx: StepContext) -> None:
        restore = restore_of(ctx)
        if restore.target not in self.targets:
            ctx.skip(f"not part of a restore {restore.get_target_display().lower()}")
        self.restore(ctx, restore)

    @abstractmethod
    def restore(self, ctx: StepContext, restore: Restore) -> None:
        """The step's work, for a restore whose target it names."""


class SafetyBackup(RestoreStep):
    name = "safety_backup"
    label = "Back up the site as it is now"
    targets = (RestoreTarget.IN_PLACE,)

    def restore(self, ctx: StepContext, restore: Restore) -> None:
        site = restore.site
        fields = []
        if wants(restore, "db") and restore.safety_db_backup_id is None:
            restore.safety_db_backup = backup_site_db(
                site, reason="safety", operation_id=ctx.operation.pk, log=ctx.log
            )
            fields.append("safety_db_backup")
        if wants(restore, "files") and restore.safety_files_backup_id is None:
            restore.safety_files_backup = backup_site_files(
                site, reason="safety", operation_id=ctx.operation.pk, log=ctx.log
            )
            fields.append("safety_files_backup")
        if fields:
            restore.save(update_fields=fields)
        else:
            ctx.log("the safety backup was already taken")


class Maintenance(RestoreStep):
    name = "maintenance_on"
    label = "Show the maintenance page"
    targets = (RestoreTarget.IN_PLACE,)

    def restore(self, ctx: StepContext, restore: Restore) -> None:
        Site.objects.filter(pk=restore.site_id).update(status=SiteStatus.RESTORING)
        set_maintenance(restore.site, True, ctx.log)

    def undo(self, ctx: StepContext) -> None:
        restore = restore_of(ctx)
        if restore.target == RestoreTarget.IN_PLACE:
            set_maintenance(restore.site, False, ctx.log)


class EndMaintenance(RestoreStep):
    name = "maintenance_off"
    label = "Remove the maintenance page"
    targets = (RestoreTarget.IN_PLACE,)

    def restore(self, ctx: StepContext, restore: Restore) -> None:
        set_maintenance(restore.site, False, ctx.log)


class RestoreDatabase(RestoreStep):
    name = "restore_db"
    label = "Restore the database"

    def run(self, ctx: StepContext) -> None:
        restore = restore_of(ctx)
        if not wants(restore, "db"):
            ctx.skip("the database is not part of this restore")
        super().run(ctx)

    def restore(self, ctx: StepContext, restore: Restore) -> None:
        site = target_site(restore)
        started = time.monotonic()
        restore_db(
            restic.repository_from_settings(),
            restore.db_snapshot_id,
            DB_FILENAME,
            mariadb.admin_endpoint(),
            site.db_name,
        )
        ctx.log(
            f"snapshot {restore.db_snapshot_id[:8]} restored into {site.db_name} in "
            f"{time.monotonic() - started:.1f} s"
        )

    def undo(self, ctx: StepContext) -> None:
        restore = restore_of(ctx)
        if restore.target != RestoreTarget.IN_PLACE or restore.safety_db_backup is None:
            ctx.log("nothing to put back")
            return
        restore_db(
            restic.repository_from_settings(),
            restore.safety_db_backup.snapshot_id,
            DB_FILENAME,
            mariadb.admin_endpoint(),
            restore.site.db_name,
        )
        ctx.log(f"put the safety backup {restore.safety_db_backup.snapshot_id[:8]} back")
