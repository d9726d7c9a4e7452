"""Links a site's PHP can plant in its directory, and what they point at.

Three kinds: to a file outside (a stand-in for ``var/secrets/restic-password``),
to a directory outside (a stand-in for a host directory), and dangling (a name
the panel would create as root if it followed the link). ``Outside`` records
everything they point at, so a test can check that none of it changed.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

KINDS = ("file", "dir", "dangling")


def tree_state(top: Path) -> dict[str, tuple[int, int, int, bytes | str | None]]:
    """Every entry under ``top`` (top included), never following a link: mode, owner,
    group and content (a file's bytes, a link's target)."""
    state = {}
    for path in [top, *sorted(top.rglob("*"))]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            content: bytes | str | None = os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            content = path.read_bytes()
        else:
            content = None
        state[str(path.relative_to(top.parent))] = (
            info.st_mode,
            info.st_uid,
            info.st_gid,
            content,
        )
    return state


class Outside:
    """What a planted link points at: all of it must stay as it was."""

    def __init__(self, tmp_path: Path) -> None:
        self.top = tmp_path / "outside"
        self.top.mkdir()
        self.secret = self.top / "restic-password"
        self.secret.write_text("the-real-repository-password\n")
        self.secret.chmod(0o600)
        self.hostdir = self.top / "etc"
        self.hostdir.mkdir(mode=0o700)
        (self.hostdir / "shadow").write_text("root:*:19000:0:99999:7:::\n")
        self.hostdir.chmod(0o700)
        self.nowhere = self.top / "nothing-here"  # a dangling link's target: never created
        os.chown(self.top, 0, 0)
        self.before = tree_state(self.top)

    def target(self, kind: str) -> Path:
        return {"file": self.secret, "dir": self.hostdir, "dangling": self.nowhere}[kind]

    def assert_untouched(self) -> None:
        assert tree_state(self.top) == self.before, "something outside the site changed"
        assert not self.nowhere.exists()


def plant(path: Path, target: Path) -> None:
    """Replace whatever is at ``path`` with a symlink to ``target``, as tenant PHP can."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    path.symlink_to(target)
