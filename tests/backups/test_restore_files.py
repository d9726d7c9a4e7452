"""Restoring a site's files, with a real restic repository and no Docker.

- Item 1 of issue 9: the backup of the files, restore's move-aside and copy-back,
  its undo, the verified clean-up and a drill's removal of its preview never follow
  a link the site planted (to a file outside, a directory outside, or dangling).
- Item 11: a worker that dies while the originals are being moved aside does not
  make the next attempt delete the ones it had not moved yet.
- Item 14: the restored files are compared with what restic stored, so a file the
  site changed while the backup ran does not fail verification, and a real
  corruption still does.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from backups import restic
from backups.models import Backup, Restore, RestoreScope, RestoreTarget
from backups.restic import commands as restic_commands
from backups.restic import files_manifest
from farm.models import Operation
from farm.operations import StepContext, get_kind, start_operation
from nodes import edge
from sites import files
from sites.models import Site, SiteStatus
from sites.steps import RemovePreview, RestoreFiles, aside_dir, backup_site_files, verify
from tests.support.planted import KINDS, Outside, plant

pytestmark = pytest.mark.django_db

# How RestoreFiles checkpoints its progress in the operation's state.
FILES_PHASE = "restore_files_phase"
MOVING_ASIDE = "moving aside"
ALL_ASIDE = "all originals aside"


@pytest.fixture
def farm_dirs(settings, tmp_path: Path) -> Path:
    settings.FARM_SITES_ROOT = tmp_path / "sites"
    settings.VAR_DIR = tmp_path / "var"
    settings.FARM_BACKUP_REPOSITORY = str(tmp_path / "repo")
    settings.FARM_RESTIC_PASSWORD = "restore-files-test"
    settings.FARM_RESTIC_CACHE_DIR = str(tmp_path / "restic-cache")
    return tmp_path


@pytest.fixture
def outside(tmp_path: Path) -> Outside:
    return Outside(tmp_path)


@pytest.fixture
def site(tenant, farm_dirs) -> Site:
    site = Site.objects.create(tenant=tenant, domain="files.acme.test", status=SiteStatus.ACTIVE)
    files.ensure_site_files(site.pk)
    root = files.site_path(site.pk)
    (root / ".htaccess").write_text("# rules\n")
    for name in ("a.txt", "b.txt", "c.txt"):
        (root / name).write_text(f"top-level {name}\n")
    uploads = root / "wp-content" / "uploads"
    (uploads / "2026").mkdir()
    (uploads / "2026" / "photo.jpg").write_bytes(bytes(range(256)) * 64)
    (uploads / "empty-album").mkdir()
    (root / "wp-content" / "latest.jpg").symlink_to("uploads/2026/photo.jpg")
    return site


def back_up(site: Site) -> Backup:
    return backup_site_files(site, reason="manual", operation_id=None, log=lambda m: None)


def restore_of(site: Site, backup: Backup) -> Restore:
    return Restore.objects.create(
        site=site,
        scope=RestoreScope.FILES,
        target=RestoreTarget.IN_PLACE,
        point_in_time=timezone.now(),
        files_snapshot_id=backup.snapshot_id,
    )


def context(restore: Restore, step: str = "restore_files") -> StepContext:
    """The step's context as a worker builds it: the operation read from the database."""
    if restore.operation is None:
        restore.operation = start_operation(
            "restore.site",
            target_type="restore",
            target_id=restore.pk,
            lock_name=f"site:{restore.site_id}",
        )
        restore.save(update_fields=["operation"])
    operation = Operation.objects.get(pk=restore.operation.pk)
    return StepContext(operation, operation.steps.get(name=step), get_kind(operation.kind))


def listing(top: Path) -> dict[str, str]:
    """Relative path -> content (files), link target (links) or "dir"; no link followed."""
    out = {}
    for path in sorted(top.rglob("*")):
        key = path.relative_to(top).as_posix()
        if path.is_symlink():
            out[key] = "-> " + os.readlink(path)
        elif path.is_dir():
            out[key] = "dir"
        else:
            out[key] = path.read_bytes().hex()
    return out


def files_report(restore: Restore, monkeypatch) -> dict[str, Any]:
    monkeypatch.setattr(edge, "get", _no_http)
    report: dict[str, Any] = verify.verify_restore(restore)["files"]
    return report


def _no_http(*args: object, **kwargs: object) -> None:
    raise edge.EdgeError("no edge in this test")


# -- item 1: links the site planted ------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_item_1_a_files_backup_records_planted_links_as_links(site, outside, kind):
    root = files.site_path(site.pk)
    (root / "wp-content" / "uploads" / "planted").symlink_to(outside.target(kind))
    plant(root / "wp-content" / "upgrade", outside.target(kind))

    backup = back_up(site)

    outside.assert_untouched()
    nodes = {
        n["path"]: n["type"]
        for n in restic.ls(restic.repository_from_settings(), backup.snapshot_id)
    }
    assert nodes[f"{root}/wp-content/uploads/planted"] == "symlink"
    assert nodes[f"{root}/wp-content/upgrade"] == "symlink"
    assert not any(p.startswith(f"{root}/wp-content/upgrade/") for p in nodes), "not followed"


def test_item_1_a_manifest_never_hashes_through_a_link_swapped_in_while_it_walks(
    tmp_path, outside, monkeypatch
):
    """The file is regular when looked at, and a link to the secret when opened."""
    tree = tmp_path / "tree"
    tree.mkdir()
    swapped = tree / "swapped.txt"
    swapped.write_text("an ordinary upload\n")
    real_stat, real_lstat = os.stat, os.lstat

    def swap_after(real: Callable[..., os.stat_result]) -> Callable[..., os.stat_result]:
        def look(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            result = real(path, *args, **kwargs)
            named = isinstance(path, str | bytes | os.PathLike)
            looked_at = named and os.path.basename(os.fsdecode(path)) == "swapped.txt"
            if looked_at and not stat.S_ISLNK(real_lstat(swapped).st_mode):
                os.unlink(swapped)
                os.symlink(outside.secret, swapped)
            return result

        return look

    monkeypatch.setattr(os, "stat", swap_after(real_stat))
    monkeypatch.setattr(os, "lstat", swap_after(real_lstat))
    manifest = files_manifest(tree)
    monkeypatch.undo()

    secret_sha = hashlib.sha256(outside.secret.read_bytes()).hexdigest()
    assert secret_sha not in manifest.values()
    outside.assert_untouched()


@pytest.mark.parametrize("kind", KINDS)
def test_item_1_restore_in_place_moves_planted_links_aside_and_back_without_following_them(
    site, outside, kind
):
    root = files.site_path(site.pk)
    (root / "wp-content" / "uploads" / "in-backup").symlink_to(outside.target(kind))
    backup = back_up(site)
    backed_up = listing(root)
    # Planted after the backup: links where the restore moves, empties and copies back.
    plant(root / "wp-content" / "upgrade", outside.target(kind))
    plant(root / "a.txt", outside.target(kind))
    (root / "planted").symlink_to(outside.target(kind))
    vandalised = listing(root)
    restore = restore_of(site, backup)

    RestoreFiles().run(context(restore))
    outside.assert_untouched()
    assert listing(root) == backed_up, "the snapshot's links come back as links"
    assert listing(aside_dir(site, restore)) == vandalised

    RestoreFiles().undo(context(restore))
    outside.assert_untouched()
    assert listing(root) == vandalised
    assert not aside_dir(site, restore).exists()


@pytest.mark.parametrize("kind", KINDS)
def test_item_1_verifying_walks_and_clears_the_aside_copy_without_following_links(
    site, outside, kind, monkeypatch
):
    root = files.site_path(site.pk)
    (root / "wp-content" / "uploads" / "in-backup").symlink_to(outside.target(kind))
    restore = restore_of(site, back_up(site))
    plant(root / "wp-content" / "themes", outside.target(kind))
    RestoreFiles().run(context(restore))

    assert files_report(restore, monkeypatch)["mismatched_count"] == 0
    monkeypatch.setattr(verify, "verify_restore", lambda r: {"ok": True})
    verify.Verify().run(context(restore, "verify"))

    outside.assert_untouched()
    assert not aside_dir(site, restore).exists()
    assert (root / "wp-content" / "uploads" / "in-backup").is_symlink()


@pytest.mark.parametrize("kind", KINDS)
def test_item_1_a_drill_removes_its_preview_without_following_planted_links(
    site, outside, kind, monkeypatch
):
    removed: list[int] = []
    monkeypatch.setattr("sites.swarm_site.remove_stack", lambda pk, log: removed.append(pk))
    monkeypatch.setattr("nodes.mariadb.drop_site_database", lambda **kw: [])
    preview = Site.objects.create(
        tenant=site.tenant, domain="restore-1-abc.localhost", status=SiteStatus.RESTORING
    )
    files.ensure_site_files(preview.pk)
    preview_root = files.site_path(preview.pk)
    plant(preview_root / "wp-content", outside.target(kind))
    (preview_root / "planted").symlink_to(outside.target(kind))
    restore = restore_of(site, back_up(site))
    restore.target, restore.preview_site = RestoreTarget.BESIDE, preview
    restore.save()

    RemovePreview().run(context(restore, "restore_files"))

    outside.assert_untouched()
    assert removed == [preview.pk]
    assert not preview_root.exists() and not preview_root.is_symlink()
    preview.refresh_from_db()
    assert preview.status == SiteStatus.DELETED


# -- item 11: a worker dies while the originals are moved aside --------------------------


class WorkerDied(Exception):
    pass


def dying_after(renames: int) -> Callable[..., None]:
    """os.rename that kills the "worker" after ``renames`` successful renames."""
    real = os.rename
    done = 0

    def rename(*args: Any, **kwargs: Any) -> None:
        nonlocal done
        if done >= renames:
            raise WorkerDied("the worker was killed here")
        done += 1
        real(*args, **kwargs)

    return rename


def test_item_11_a_second_attempt_finishes_moving_the_originals_aside_instead_of_deleting_them(
    site, monkeypatch
):
    root = files.site_path(site.pk)
    backup = back_up(site)
    backed_up = listing(root)
    for name in ("a.txt", "b.txt", "c.txt"):
        (root / name).write_text(f"changed since the backup: {name}\n")
    (root / "new-since-backup.txt").write_text("only in the site as it is now\n")
    originals = listing(root)
    originals_top = [p.name for p in root.iterdir()]
    restore = restore_of(site, backup)

    with monkeypatch.context() as patched:
        patched.setattr(os, "rename", dying_after(2))
        with pytest.raises(WorkerDied):
            RestoreFiles().run(context(restore))
    aside = aside_dir(site, restore)
    assert len(list(aside.iterdir())) == 2, "two originals were moved aside"
    assert len(list(root.iterdir())) == len(originals_top) - 2, "the others not yet"

    RestoreFiles().run(context(restore))  # the next attempt, as another worker

    assert listing(aside) == originals, "every original is aside, none was deleted"
    assert listing(root) == backed_up, "and the restore completed"
    assert restore.operation is not None
    state = Operation.objects.get(pk=restore.operation.pk).state
    assert state.get(FILES_PHASE) not in (None, MOVING_ASIDE), "the phase is checkpointed"

    RestoreFiles().undo(context(restore))
    assert listing(root) == originals, "roll back puts every original back"


def test_item_11_a_second_attempt_after_all_originals_went_aside_replaces_only_restored_copies(
    site, monkeypatch
):
    root = files.site_path(site.pk)
    backup = back_up(site)
    backed_up = listing(root)
    (root / "b.txt").write_text("changed since the backup\n")
    originals = listing(root)
    restore = restore_of(site, backup)
    ctx = context(restore)
    ctx.state[FILES_PHASE] = ALL_ASIDE  # as left by a worker that died while copying back
    ctx.save_state()
    aside = aside_dir(site, restore)
    aside.mkdir()
    for child in root.iterdir():
        child.rename(aside / child.name)
    (root / "a.txt").write_text("a restored copy, half written\n")

    RestoreFiles().run(context(restore))

    assert listing(aside) == originals
    assert listing(root) == backed_up


# -- item 14: the manifest is what restic stored -----------------------------------------


def test_item_14_a_file_changed_while_restic_reads_does_not_fail_verification(site, monkeypatch):
    root = files.site_path(site.pk)
    busy = root / "wp-content" / "uploads" / "busy.log"
    busy.write_text("first line\n")
    real_backup_paths = restic.backup_paths

    def site_writes_meanwhile(*args: Any, **kwargs: Any) -> restic.Summary:
        with busy.open("a") as log:  # PHP appends between the listing and restic's read
            log.write("a line written while the backup ran\n")
        (root / "wp-content" / "uploads" / "new-upload.jpg").write_bytes(b"\xff\xd8 new")
        return real_backup_paths(*args, **kwargs)

    monkeypatch.setattr(restic_commands, "backup_paths", site_writes_meanwhile)
    backup = back_up(site)
    monkeypatch.undo()
    stored = listing(root)
    (root / "a.txt").write_text("vandalised\n")
    restore = restore_of(site, backup)

    RestoreFiles().run(context(restore))

    assert listing(root) == stored
    report = files_report(restore, monkeypatch)
    assert report["mismatched_count"] == 0 and report["extra"] == [], report


def test_item_14_a_restored_file_that_differs_from_the_snapshot_still_fails(site, monkeypatch):
    root = files.site_path(site.pk)
    restore = restore_of(site, back_up(site))
    RestoreFiles().run(context(restore))
    assert files_report(restore, monkeypatch)["mismatched_count"] == 0

    (root / "wp-content" / "uploads" / "2026" / "photo.jpg").write_bytes(b"truncated")
    (root / "b.txt").unlink()
    (root / "wp-content" / "uploads" / "dropped.php").write_text("<?php // not in the backup")
    (root / "wp-content" / "latest.jpg").unlink()
    (root / "wp-content" / "latest.jpg").symlink_to("/etc/passwd")

    report = files_report(restore, monkeypatch)
    assert report["mismatched"] == [
        "b.txt",
        "wp-content/latest.jpg",
        "wp-content/uploads/2026/photo.jpg",
    ]
    assert report["extra"] == ["wp-content/uploads/dropped.php"]


def test_item_14_a_corrupted_repository_fails_the_restore_before_anything_moves(site):
    root = files.site_path(site.pk)
    restore = restore_of(site, back_up(site))
    before = listing(root)
    repo = Path(restic.repository_from_settings().url)
    for pack in (repo / "data").rglob("*"):
        if pack.is_file():
            data = bytearray(pack.read_bytes())
            data[len(data) // 2] ^= 0xFF
            pack.write_bytes(bytes(data))

    with pytest.raises(restic.ResticError):
        RestoreFiles().run(context(restore))
    assert listing(root) == before
    assert not aside_dir(site, restore).exists()
