"""File operations inside site directories that never follow a link.

The panel runs as root; a site's PHP runs as www-data with its directory
writable (a bind mount), so anything in there may be a symlink planted to make
root write, chown or delete something else (``var/secrets``, ``/etc``...).
Everything here works from a directory fd opened on the trusted root
(``FARM_SITES_ROOT``: root's, not visible to any site) and goes down one
component at a time with ``O_NOFOLLOW``; files are written to a fresh
``O_EXCL`` name and renamed over the old entry (which replaces a link, never
writes through it); ownership is set on the fd the panel opened itself;
removal is ``shutil.rmtree`` with ``dir_fd`` (fd based, link safe on Linux).

A symlink where the panel expects a directory is removed (the link itself)
and replaced with the real directory; any other wrong kind of entry is
refused with a SiteFilesError that says what to move away.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from farm.errors import FarmError

DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
Owner = tuple[int, int]


class SiteFilesError(FarmError):
    pass


if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover (Linux always has it)
    raise ImportError("shutil.rmtree is not link safe on this platform; refusing to run as root.")


def _check_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise SiteFilesError(f"Refusing the path component {name!r}.")
    return name


def kind_of(parent: int, name: str) -> str | None:
    """``dir``, ``file``, ``symlink`` or ``other`` for the entry itself (lstat), None if absent."""
    try:
        mode = os.stat(_check_name(name), dir_fd=parent, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


@contextlib.contextmanager
def sites_root() -> Iterator[int]:
    """The trusted root as a directory fd (created if missing: a fresh farm has none).
    Its own path is the operator's to choose, links and all; below it nothing is followed."""
    root = Path(settings.FARM_SITES_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def opened(parent: int, name: str, *, where: str = "") -> Iterator[int]:
    """An existing directory ``name`` under ``parent``; a link there is refused, not followed."""
    fd = open_directory(parent, name, where=where)
    try:
        yield fd
    finally:
        os.close(fd)


def open_directory(parent: int, name: str, *, where: str = "") -> int:
    try:
        return os.open(_check_name(name), DIRECTORY_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            kind = kind_of(parent, name)
            raise SiteFilesError(
                f"{where or name} is a {kind or 'missing entry'}, not a directory; "
                "the panel does not follow links inside a site."
            ) from exc
        raise


@contextlib.contextmanager
def walk_to(parent: int, relative: str, *, where: str = "") -> Iterator[int]:
    """The directory at ``relative`` (``a/b/c``) under ``parent``, every component O_NOFOLLOW."""
    parts = [p for p in relative.split("/") if p]
    fd = os.dup(parent)
    try:
        for part in parts:
            child = open_directory(fd, part, where=where or relative)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def directory(
    parent: int,
    name: str,
    *,
    owner: Owner | None = None,
    mode: int = 0o755,
    notes: list[str] | None = None,
    where: str = "",
) -> Iterator[int]:
    """The directory ``name`` under ``parent``, made if missing, as an fd.

    A symlink there is removed (the link, never what it points to) and the real
    directory made; a file or anything else is refused. ``owner`` is applied
    with fchown on the fd opened here, so it can only ever reach this directory.
    """
    where = where or name
    kind = kind_of(parent, name)
    note = f"created {where}"
    if kind == "symlink":
        os.unlink(name, dir_fd=parent)
        note, kind = f"replaced the symlink {where} with a directory", None
    if kind is None:
        with contextlib.suppress(FileExistsError):  # made by someone else a moment ago
            os.mkdir(name, mode, dir_fd=parent)
            if notes is not None:
                notes.append(note)
    elif kind != "dir":
        raise SiteFilesError(
            f"{where} is a {kind}, not a directory: move it away, then repair the site."
        )
    fd = open_directory(parent, name, where=where)  # a link planted since the check: refused
    try:
        if owner is not None:
            chown_fd(fd, owner, where)
        yield fd
    finally:
        os.close(fd)


def chown_fd(fd: int, owner: Owner, where: str) -> None:
    try:
        os.fchown(fd, *owner)
    except PermissionError as exc:  # the panel runs as root where it manages files
        raise SiteFilesError(f"Cannot give {where} to uid {owner[0]}: {exc}") from exc


def read_regular(parent: int, name: str, *, limit: int = 1 << 20) -> bytes | None:
    """The content of a regular file ``name`` (never through a link), None if it is not one."""
    try:
        fd = os.open(
            _check_name(name),
            os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
            dir_fd=parent,
        )
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO, errno.EISDIR):
            return None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        size = 0
        while size <= limit and (chunk := os.read(fd, 1 << 16)):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_atomic(
    parent: int,
    name: str,
    data: bytes,
    *,
    owner: Owner | None = None,
    mode: int = 0o644,
    where: str = "",
) -> None:
    """Write ``name`` as a new file and rename it into place: whatever was there (a
    link, a hard link to another file) is replaced, never written through."""
    where = where or name
    if kind_of(parent, name) == "dir":
        raise SiteFilesError(f"{where} is a directory, not a file: move it away, then repair.")
    temporary = f".{_check_name(name)}.farm-{secrets.token_hex(8)}"
    fd = os.open(
        temporary,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        mode,
        dir_fd=parent,
    )
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
            if owner is not None:
                chown_fd(fd, owner, where)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=parent)
        raise


def remove(parent: int, name: str) -> bool:
    """Remove the entry ``name`` under ``parent``: a link or file is unlinked (what it
    points to is untouched), a directory removed with everything in it. False if absent."""
    for _ in range(3):  # the entry may change kind under us (a site writing to its directory)
        kind = kind_of(parent, name)
        if kind is None:
            return False
        try:
            if kind == "dir":
                shutil.rmtree(name, dir_fd=parent)
            else:
                os.unlink(name, dir_fd=parent)
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EISDIR, errno.ENOTDIR, errno.ELOOP, None):
                raise
            # rmtree refuses a link that replaced the directory after the check: look again
    raise SiteFilesError(f"{name} keeps changing; it could not be removed safely.")


def names(fd: int) -> list[str]:
    """The entries of an open directory (no ``.``/``..``), sorted."""
    return sorted(os.listdir(fd))


def empty(fd: int) -> int:
    """Remove everything inside the open directory; returns how many entries went."""
    removed = 0
    for name in names(fd):
        removed += remove(fd, name)
    return removed


def move(source: int, name: str, destination: int, new_name: str | None = None) -> None:
    """Rename one entry between two open directories (the entry itself, never a link's
    target). Refuses to replace an entry that is already there."""
    new_name = _check_name(new_name or name)
    if kind_of(destination, new_name) is not None:
        raise SiteFilesError(f"{new_name} is already there; refusing to replace it.")
    os.rename(_check_name(name), new_name, src_dir_fd=source, dst_dir_fd=destination)


def copy_directory_metadata(source: int, destination: int) -> None:
    """Mode and times of one open directory onto another (what shutil.copystat does)."""
    info = os.fstat(source)
    os.fchmod(destination, stat.S_IMODE(info.st_mode))
    os.utime(destination, ns=(info.st_atime_ns, info.st_mtime_ns))
