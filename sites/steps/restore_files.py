"""The files step of a restore: restic restores (and verifies) the snapshot into a
staging directory, the site's previous files go aside, the restored ones take their
place. Every move goes through ``sites.safe_files`` (no link is ever followed), and
the phase is checkpointed so that a worker dying half-way loses no original."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from backups import restic
from backups.models import Backup, Restore, RestoreTarget
from backups.restic import files_manifest, snapshot_manifest
from farm.errors import FarmError
from farm.operations import StepContext
from sites import files, safe_files
from sites.models import Site
from sites.steps.restore import RestoreStep, restore_of, target_site, wants


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
