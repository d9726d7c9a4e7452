"""Steps of a restore: safety backup, maintenance page, database, files, verification.

A restore runs as an operation on its Restore row and holds its site's lock, so
no backup of that site interleaves with it. In place, the site's current state
is backed up first and the previous files are kept aside until verification
passed; beside, a preview site is provisioned with the same steps as any site.
"""

from __future__ import annotations

import json
import secrets
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from backups import dumps, restic
from backups.manifests import files_manifest, snapshot_manifest
from backups.models import Backup, Restore, RestoreScope, RestoreTarget
from backups.steps import DB_FILENAME, backup_site_db, backup_site_files
from farm.errors import FarmError
from farm.operations import Step, StepContext
from nodes import mariadb, proxysql
from sites import files, safe_files
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


PREVIEW_PREFIX = "restore-"


def preview_domain(site: Site) -> str:
    """``restore-<site id>-<16 random hex>.<FARM_PREVIEW_DOMAIN>``: never the same twice,
    never guessable, so nobody can take a preview's name before it exists."""
    label = f"{PREVIEW_PREFIX}{site.pk}-{secrets.token_hex(8)}"
    return f"{label}.{settings.FARM_PREVIEW_DOMAIN}"


def create_preview_site(restore: Restore) -> Site:
    """The preview site of a restore beside, counted as a live site of the tenant from
    now on (quota and capacity were checked by the caller, holding the tenant's lock)."""
    for _attempt in range(5):
        try:
            with transaction.atomic():
                return Site.objects.create(
                    tenant=restore.site.tenant,
                    domain=preview_domain(restore.site),
                    status=SiteStatus.RESTORING,
                    image_choice=restore.site.image_choice,
                    cache_enabled=restore.site.cache_enabled,
                    created_by=restore.requested_by,
                )
        except IntegrityError:
            continue  # the name is taken (claimed by hand, or drawn twice): draw another
    raise FarmError("No free name for the preview site was found; try again.", retryable=True)


def abandon_preview(restore: Restore, why: str) -> None:
    """A restore beside that failed or was cancelled: its preview is marked failed, so
    that the panel can delete it like any failed site (instead of leaving it
    Restoring for good); a failed one is then removed by rolling its steps back."""
    if restore.target != RestoreTarget.BESIDE or restore.preview_site_id is None:
        return
    Site.objects.filter(pk=restore.preview_site_id, status=SiteStatus.RESTORING).update(
        status=SiteStatus.FAILED, last_error=f"Restore #{restore.pk} did not finish: {why}"
    )


class PreviewSite(Step):
    name = "preview_site"
    label = "Create the preview site"

    def run(self, ctx: StepContext) -> None:
        restore = restore_of(ctx)
        if restore.target != RestoreTarget.BESIDE:
            ctx.skip("restoring in place")
        preview = restore.preview_site
        if preview is not None and preview.status != SiteStatus.DELETED:
            ctx.log(f"preview {preview.domain} (stack {preview.stack_name})")
            return
        # Restores started before previews were made with the restore itself.
        preview = create_preview_site(restore)
        restore.preview_site = preview
        restore.save(update_fields=["preview_site"])
        ctx.log(f"preview site {preview.domain} (stack {preview.stack_name})")

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
        dumps.restore_db(
            restic.repository_from_settings(),
            restore.safety_db_backup.snapshot_id,
            DB_FILENAME,
            mariadb.admin_endpoint(),
            restore.site.db_name,
        )
        ctx.log(f"put the safety backup {restore.safety_db_backup.snapshot_id[:8]} back")


def aside_dir(site: Site, restore: Restore) -> Path:
    """Where the site's previous files wait until the restore is verified: beside the
    site directories, under the root no site can see."""
    return files.site_path(site.pk).with_name(f".pre-restore-{restore.pk}-{site.stack_name}")


def _staging(restore: Restore) -> Path:
    return Path(settings.FARM_SITES_ROOT) / f".restore-{restore.pk}"


def manifest_path(restore: Restore) -> Path:
    return Path(settings.VAR_DIR) / "restores" / f"{restore.pk}-files.json"


# Where a files restore is, checkpointed in the operation's state: a worker that dies
# while moving the originals aside must not make the next attempt delete the ones it
# had not moved yet. Only once every original is aside may the target be emptied
# (what is in it then are restored copies).
FILES_PHASE = "restore_files_phase"
MOVING_ASIDE = "moving aside"
ALL_ASIDE = "all originals aside"
RESTORED = "restored copies in place"


def _move_children(source: int, destination: int) -> list[str]:
    """Move what is inside ``source`` into ``destination`` (entries themselves, links
    never followed). The site directory itself never moves: the running containers
    bind-mount it, and a bind mount follows the directory it was made from, not its
    path. A name already in ``destination`` is kept and the newcomer gets a
    ``.restore-conflict-N`` suffix; returns those renames."""
    renamed = []
    for name in safe_files.names(source):
        new_name, n = name, 0
        while safe_files.kind_of(destination, new_name) is not None:
            n += 1
            new_name = f"{name}.restore-conflict-{n}"
        safe_files.move(source, name, destination, new_name)
        if new_name != name:
            renamed.append(f"{name} -> {new_name}")
    return renamed


def snapshot_root(restore: Restore, nodes: list[dict[str, Any]]) -> str:
    """The site directory's path inside the files snapshot."""
    backup = Backup.objects.filter(snapshot_id=restore.files_snapshot_id).first()
    recorded = str((backup.manifest.get("root") if backup else None) or "")
    if recorded:
        return recorded
    # No Backup row (a panel database older than the repository): the snapshot's
    # directory named after the site.
    suffix = "/" + restore.site.stack_name
    candidates = [
        str(n["path"]) for n in nodes if n.get("type") == "dir" and str(n["path"]).endswith(suffix)
    ]
    if not candidates:
        raise FarmError("The snapshot holds no site directory; it was not made by the farm.")
    return min(candidates, key=len)


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
        started = time.monotonic()
        snapshot_short = restore.files_snapshot_id[:8]
        with safe_files.sites_root() as root:
            safe_files.remove(root, staging.name)
            # --verify: restic reads every restored file back and checks it against the
            # snapshot's own content hashes before anything is moved into place.
            restic.restore(repo, restore.files_snapshot_id, staging, verify=True)
            nodes = restic.ls(repo, restore.files_snapshot_id)
            root_in_snapshot = snapshot_root(restore, nodes)
            with (
                safe_files.opened(root, staging.name) as staged,
                safe_files.walk_to(staged, root_in_snapshot, where="the restored files") as source,
            ):
                expected = self._expected(nodes, root_in_snapshot, source)
                keep = manifest_path(restore)
                keep.parent.mkdir(parents=True, exist_ok=True)
                keep.write_text(json.dumps(expected))
                with safe_files.directory(root, site.stack_name) as target:
                    self._put_in_place(ctx, restore, site, root, source, target)
                    safe_files.copy_directory_metadata(source, target)
            safe_files.remove(root, staging.name)
        ctx.state[FILES_PHASE] = RESTORED
        ctx.save_state()
        ctx.log(
            f"{len(expected)} entries from snapshot {snapshot_short} in place at "
            f"{files.site_path(site.pk)} in {time.monotonic() - started:.1f} s (previous "
            f"files kept at {aside_dir(site, restore).name} until verified)"
        )

    @staticmethod
    def _expected(nodes: list[dict[str, Any]], root: str, source: int) -> dict[str, str]:
        """What the snapshot holds, checked against the copy restic just verified."""
        restored = files_manifest(".", content=False, dir_fd=source)
        links = {
            k: v.removeprefix("symlink:") for k, v in restored.items() if v.startswith("symlink:")
        }
        expected = snapshot_manifest(nodes, root, links)
        if restored != expected:
            wrong = sorted(
                k for k in set(expected) | set(restored) if expected.get(k) != restored.get(k)
            )
            raise FarmError(
                f"restic restored something other than the snapshot lists: {', '.join(wrong[:10])}"
            )
        return expected

    @staticmethod
    def _put_in_place(
        ctx: StepContext, restore: Restore, site: Site, root: int, source: int, target: int
    ) -> None:
        aside_name = aside_dir(site, restore).name
        phase = ctx.state.get(FILES_PHASE)
        if phase is None and safe_files.kind_of(root, aside_name) is not None:
            phase = MOVING_ASIDE  # aside from a run that recorded no phase: keep every original
        if phase in (None, MOVING_ASIDE):
            ctx.state[FILES_PHASE] = MOVING_ASIDE
            ctx.save_state()
            with safe_files.directory(root, aside_name, mode=0o700) as aside:
                renamed = _move_children(target, aside)  # kept until the restore is verified
            if renamed:
                ctx.log("kept both of names seen twice: " + "; ".join(renamed))
            ctx.state[FILES_PHASE] = ALL_ASIDE
            ctx.save_state()
        else:  # every original is aside: what the target holds are restored copies
            removed = safe_files.empty(target)
            ctx.log(f"removed {removed} entries restored by an earlier attempt")
        for name in safe_files.names(source):
            # Every original is aside: anything else here was written during the restore.
            safe_files.remove(target, name)
            safe_files.move(source, name, target)

    def undo(self, ctx: StepContext) -> None:
        restore = restore_of(ctx)
        site = restore.site if restore.target == RestoreTarget.IN_PLACE else restore.preview_site
        if site is None:
            return
        aside_name = aside_dir(site, restore).name
        phase = ctx.state.get(FILES_PHASE)
        with safe_files.sites_root() as root:
            if safe_files.kind_of(root, aside_name) != "dir":
                ctx.log("no previous files to put back")
                return
            with (
                safe_files.opened(root, aside_name) as aside,
                safe_files.directory(root, site.stack_name) as target,
            ):
                if phase in (ALL_ASIDE, RESTORED):
                    safe_files.empty(target)  # restored copies only: the originals are aside
                kept = []
                for name in safe_files.names(aside):
                    if safe_files.kind_of(target, name) is None:
                        safe_files.move(aside, name, target)
                    else:  # not every original had gone aside: the site has a newer one
                        kept.append(name)
            if kept:
                ctx.log(f"kept {', '.join(kept)} in {aside_name}: the site has newer ones")
            else:
                safe_files.remove(root, aside_name)
        ctx.state.pop(FILES_PHASE, None)
        ctx.save_state()
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
            mariadb.drop_site_database(name=preview.db_name, user=preview.db_user)
            proxysql.remove_site_user(user=preview.db_user)
        files.remove_site_files(preview.pk)
        preview.status = SiteStatus.DELETED
        preview.save(update_fields=["status"])
        ctx.log(f"removed {preview.domain}")
