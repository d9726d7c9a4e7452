"""Manifests: what a backup held when it was taken, to verify a restore against.

A files manifest maps every path under a directory (relative, POSIX) to the
sha256 of its content; symlinks map to ``symlink:<target>``, empty directories
to ``directory`` and other special files to ``special:<mode>``, so nothing is
skipped. File backups carry the manifest file in the same snapshot.
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


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def files_manifest(directory: Path | str, *, content: bool = True) -> dict[str, str]:
    """Relative POSIX path -> sha256 hex (or the kind of entry) of all under ``directory``.

    ``content=False`` records ``size:<bytes>`` instead of the sha256: an inventory
    made from metadata alone, for when restic checks the content itself (a file
    backup's manifest; restores run ``restic restore --verify``).
    """
    root = Path(directory)
    manifest: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        relative = Path(dirpath).relative_to(root)
        if not dirnames and not filenames and relative != Path("."):
            manifest[relative.as_posix()] = "directory"
        # os.walk lists symlinks to directories with the directories; it does not enter them.
        linked = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in [*filenames, *linked]:
            path = os.path.join(dirpath, name)
            key = (relative / name).as_posix()
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                manifest[key] = "symlink:" + os.readlink(path)
            elif stat.S_ISREG(mode):
                manifest[key] = _sha256(path) if content else f"size:{os.lstat(path).st_size}"
            else:
                manifest[key] = f"special:{stat.filemode(mode)[0]}"
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
