"""Host commands (argv lists, never a shell), chroots and bind mounts."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from nodes.images.builder.errors import ImageBuildError

CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PASSED_ENV = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


def run(
    argv: Sequence[str],
    *,
    what: str,
    retryable: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 1800,
) -> str:
    """Run argv (never through a shell); raise ImageBuildError with its output tail."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            errors="replace",
            env=env,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ImageBuildError(f"{what}: {argv[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise ImageBuildError(f"{what}: timed out after {timeout:.0f}s", retryable=True) from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ImageBuildError(
            f"{what} failed (exit {done.returncode}):\n{tail}", retryable=retryable
        )
    return done.stdout


def chroot_env() -> dict[str, str]:
    env = {
        "PATH": CHROOT_PATH,
        "DEBIAN_FRONTEND": "noninteractive",
        "LANG": "C.UTF-8",
        "HOME": "/root",
    }
    env.update({k: v for k, v in os.environ.items() if k in _PASSED_ENV})
    return env


def in_chroot(rootfs: Path, argv: Sequence[str], *, what: str, retryable: bool = False) -> str:
    return run(["chroot", str(rootfs), *argv], what=what, retryable=retryable, env=chroot_env())


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (from /proc/self/mountinfo)."""
    prefix = str(path.resolve())
    points: list[str] = []
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        for line in info:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return points


def remove_tree(path: Path) -> None:
    """rm -rf, but never through a bind mount into the cache."""
    if not path.exists():
        return
    for point in sorted(mounts_under(path), reverse=True):
        subprocess.run(["umount", point], capture_output=True, check=False)
    if mounts_under(path):
        raise ImageBuildError(f"{path} still has mounts inside; not deleting it")
    shutil.rmtree(path)


@contextmanager
def bind_mounts(rootfs: Path, pairs: Sequence[tuple[Path, str]]) -> Iterator[None]:
    """Bind-mount host dirs into the rootfs; always unmounted on the way out."""
    mounted: list[Path] = []
    try:
        for source, inside in pairs:
            source.mkdir(parents=True, exist_ok=True)
            target = rootfs / inside
            target.mkdir(parents=True, exist_ok=True)
            run(["mount", "--bind", str(source), str(target)], what=f"mount {inside}")
            mounted.append(target)
        yield
    finally:
        for target in reversed(mounted):
            if subprocess.run(["umount", str(target)], capture_output=True, check=False).returncode:
                subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)
