"""Steps of a restore: safety backup, maintenance page, database, files, verification.

A restore runs as an operation on its Restore row and holds its site's lock, so
no backup of that site interleaves with it. In place, the site's current state
is backed up first and the previous files are kept aside until verification
passed; beside, a preview site is provisioned with the same steps as any site.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from abc import abstractmethod
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from backups import dumps, restic
from backups.models import Backup, Restore, RestoreScope, RestoreTarget
from backups.steps import DB_FILENAME, MANIFEST_NAME, backup_site_db, backup_site_files
from farm.errors import FarmError
from farm.operations import Step, StepContext
from sites import database, files
from sites.lifecycle_steps import set_maintenance
from sites.models import Site, SiteStatus


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


class PreviewSite(Step):
    name = "preview_site"
    label = "Create the preview site"

    def run(self, ctx: StepContext) -> None:
        restore = restore_of(ctx)
        if restore.target != RestoreTarget.BESIDE:
            ctx.skip("restoring in place")
        if restore.preview_site is not None:
            ctx.log(f"preview {restore.preview_site.domain} already exists")
            return
        stamp = timezone.localtime(restore.started_at).strftime("%Y%m%d%H%M")
        domain = f"restore-{restore.site_id}-{stamp}.{settings.FARM_PREVIEW_DOMAIN}"
        preview = Site.objects.create(
            tenant=restore.site.tenant,
            domain=domain,
            status=SiteStatus.RESTORING,
            image_choice=restore.site.image_choice,
            cache_enabled=restore.site.cache_enabled,
            created_by=restore.requested_by,
        )
        restore.preview_site = preview
        restore.save(update_fields=["preview_site"])
        ctx.log(f"preview site {domain} (stack {preview.stack_name})")

    def undo(self, ctx: StepContext) -> None:
        restore = restore_of(ctx)
        if restore.preview_site is not None:
            Site.objects.filter(pk=restore.preview_site.pk).update(
                status=SiteStatus.DELETED, domain_claim=None
            )
            ctx.log(f"preview site {restore.preview_site.domain} marked deleted")


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
        dumps.restore_db(
            restic.repository_from_settings(),
            restore.db_snapshot_id,
            DB_FILENAME,
            database.admin_endpoint(),
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
        dumps.restore_db(
            restic.repository_from_settings(),
            restore.safety_db_backup.snapshot_id,
            DB_FILENAME,
            database.admin_endpoint(),
            restore.site.db_name,
        )
        ctx.log(f"put the safety backup {restore.safety_db_backup.snapshot_id[:8]} back")


def aside_dir(site: Site, restore: Restore) -> Path:
    return files.site_path(site.pk).with_name(f".pre-restore-{restore.pk}-{site.stack_name}")


def _move_children(source: Path, destination: Path) -> None:
    """Move what is inside ``source`` into ``destination``. The site directory itself
    never moves: the running containers bind-mount it, and a bind mount follows the
    directory it was made from, not its path."""
    for child in source.iterdir():
        os.rename(child, destination / child.name)


def _empty(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _staging(restore: Restore) -> Path:
    return Path(settings.FARM_SITES_ROOT) / f".restore-{restore.pk}"


def manifest_path(restore: Restore) -> Path:
    return Path(settings.VAR_DIR) / "restores" / f"{restore.pk}-files.json"


class RestoreFiles(RestoreStep):
    name = "restore_files"
    label = "Restore the files"

    def run(self, ctx: StepContext) -> None:
        restore = restore_of(ctx)
        if not wants(restore, "files"):
            ctx.skip("the files are not part of this restore")
        super().run(ctx)

    def restore(self, ctx: StepContext, restore: Restore) -> None:
        site = target_site(restore)
        repo = restic.repository_from_settings()
        staging = _staging(restore)
        if staging.exists():
            shutil.rmtree(staging)
        started = time.monotonic()
        # --verify: restic reads every restored file back and checks it against the
        # snapshot's own content hashes before anything is moved into place.
        restic.restore(repo, restore.files_snapshot_id, staging, verify=True)
        backup = Backup.objects.filter(snapshot_id=restore.files_snapshot_id).first()
        recorded = (backup.manifest.get("manifest_path") if backup else None) or ""
        manifest_file = staging / recorded.lstrip("/") if recorded else None
        if manifest_file is None or not manifest_file.is_file():
            manifest_file = next(staging.rglob(MANIFEST_NAME), None)
        if manifest_file is None:
            raise FarmError("The snapshot carries no file manifest; it was not made by the farm.")
        manifest = json.loads(manifest_file.read_text())
        restored_root = staging / manifest["root"].lstrip("/")
        if not restored_root.is_dir():
            raise FarmError(f"The snapshot has no {manifest['root']}.")
        snapshot_short = restore.files_snapshot_id[:8]
        keep = manifest_path(restore)
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_text(json.dumps(manifest["files"]))
        target = files.site_path(site.pk)
        target.mkdir(exist_ok=True)
        aside = aside_dir(site, restore)
        if aside.exists():  # a second run: the previous files are already aside
            _empty(target)
        else:
            aside.mkdir()
            _move_children(target, aside)  # kept until the restore is verified
        _move_children(restored_root, target)
        shutil.copystat(restored_root, target)
        shutil.rmtree(staging)
        ctx.log(
            f"{len(manifest['files'])} files from snapshot {snapshot_short} in place at "
            f"{target} in {time.monotonic() - started:.1f} s (previous files kept at "
            f"{aside.name} until verified)"
        )

    def undo(self, ctx: StepContext) -> None:
        restore = restore_of(ctx)
        site = restore.site if restore.target == RestoreTarget.IN_PLACE else restore.preview_site
        if site is None:
            return
        aside = aside_dir(site, restore)
        if aside.exists():
            target = files.site_path(site.pk)
            _empty(target)
            _move_children(aside, target)
            aside.rmdir()
            ctx.log("put the previous files back")


class RemovePreview(Step):
    """Drills end by removing the preview they made."""

    name = "remove_preview"
    label = "Remove the preview site"

    def run(self, ctx: StepContext) -> None:
        from sites.swarm_site import remove_stack

        restore = restore_of(ctx)
        preview = restore.preview_site
        if preview is None:
            ctx.skip("there is no preview")
        remove_stack(preview.pk, ctx.log)
        if preview.db_name:
            database.drop_site_database(name=preview.db_name, user=preview.db_user)
        files.remove_site_files(preview.pk)
        preview.status = SiteStatus.DELETED
        preview.save(update_fields=["status"])
        ctx.log(f"removed {preview.domain}")
