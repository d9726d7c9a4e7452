"""Manifests: what a backup held when it was taken, to verify a restore against.

A files manifest maps every path under a directory (relative, POSIX) to the
sha256 of its content; symlinks map to ``symlink:<target>``, empty directories
to ``directory`` and other special files to ``special:<mode>``, so nothing is
skipped. A restore compares the restored tree with what the snapshot itself
lists (``snapshot_manifest``), not with a listing taken before restic read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20
# restic's node types -> the letter stat.filemode gives them (files and dirs apart).
_RESTIC_SPECIAL = {"dev": "b", "chardev": "c", "fifo": "p", "socket": "s", "irregular": "?"}


def _sha256(dir_fd: int, name: str) -> str | None:
    """The sha256 of the regular file ``name``, opened without following a link (None
    when the entry is not a regular file by the time it is opened)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        digest = hashlib.sha256()
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def files_manifest(
    directory: Path | str, *, content: bool = True, dir_fd: int | None = None
) -> dict[str, str]:
    """Relative POSIX path -> sha256 hex (or the kind of entry) of all under ``directory``.

    ``content=False`` records ``size:<bytes>`` instead of the sha256: an inventory
    made from metadata alone, for when restic checks the content itself (restores
    run ``restic restore --verify``).

    The walk is fd based (``os.fwalk``) and follows no link: a site's own files
    may be links planted to make the panel read something else. With ``dir_fd``,
    ``directory`` is relative to that open directory (``"."``: the directory itself).
    """
    manifest: dict[str, str] = {}
    walk = os.fwalk(directory, follow_symlinks=False, dir_fd=dir_fd)
    for dirpath, dirnames, filenames, here in walk:
        relative = Path(os.path.relpath(dirpath, directory))
        if not dirnames and not filenames and relative != Path("."):
            manifest[relative.as_posix()] = "directory"
        for name in [*dirnames, *filenames]:
            key = (relative / name).as_posix()
            try:
                info = os.stat(name, dir_fd=here, follow_symlinks=False)
            except FileNotFoundError:
                continue  # gone since it was listed
            if stat.S_ISDIR(info.st_mode):
                continue  # walked into (fwalk never enters a link)
            if stat.S_ISLNK(info.st_mode):
                manifest[key] = "symlink:" + os.readlink(name, dir_fd=here)
            elif stat.S_ISREG(info.st_mode):
                digest = _sha256(here, name) if content else None
                manifest[key] = digest or f"size:{info.st_size}"
            else:
                manifest[key] = f"special:{stat.filemode(info.st_mode)[0]}"
    return dict(sorted(manifest.items()))


def snapshot_manifest(
    nodes: list[dict[str, Any]], root: str, link_targets: dict[str, str]
) -> dict[str, str]:
    """What a snapshot holds under ``root`` (restic's own ``ls --json`` nodes), in the
    form ``files_manifest(content=False)`` gives a directory: this is what restic
    read and stored, so a file that changed while the backup ran cannot disagree.

    restic 0.14 does not list link targets; ``link_targets`` (relative path ->
    target) supplies them from the copy ``restic restore --verify`` just wrote.
    """
    prefix = root.rstrip("/") + "/"
    manifest: dict[str, str] = {}
    directories: set[str] = set()
    parents: set[str] = set()
    for node in nodes:
        path = str(node.get("path", ""))
        if not path.startswith(prefix):
            continue
        key = path[len(prefix) :]
        parents.add(key.rpartition("/")[0])
        kind = node.get("type")
        if kind == "dir":
            directories.add(key)
        elif kind == "file":
            manifest[key] = f"size:{int(node.get('size') or 0)}"
        elif kind == "symlink":
            manifest[key] = "symlink:" + link_targets.get(key, "?")
        else:
            manifest[key] = f"special:{_RESTIC_SPECIAL.get(str(kind), '?')}"
    for key in directories - parents:
        manifest[key] = "directory"
    return dict(sorted(manifest.items()))


def write_manifest(path: Path | str, manifest: dict[str, Any]) -> Path:
    """Write a manifest as JSON, atomically (a reader never sees half of it)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".manifest-")
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(manifest, file, sort_keys=True, indent=1)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def read_manifest(path: Path | str) -> dict[str, Any]:
    value = json.loads(Path(path).read_text())
    if not isinstance(value, dict):
        raise ValueError(f"{path} does not hold a manifest.")
    return value


def compare_manifests(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """What differs, one line per entry: missing, unexpected or changed."""
    problems = [f"missing: {key}" for key in expected if key not in actual]
    problems += [f"unexpected: {key}" for key in actual if key not in expected]
    problems += [
        f"changed: {key}" for key in expected if key in actual and expected[key] != actual[key]
    ]
    return problems
