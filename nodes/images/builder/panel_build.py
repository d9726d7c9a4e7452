"""What building the ``panel`` image does on the host (its recipe is in ``panel``).

Into the chroot, after its Debian packages and before the recipe's post-install
commands: the venv's base interpreter (minus what ``panel.excluded_from_interpreter``
leaves out), the pinned wheels with their requirements file, and the application.
The wheels are built once into ``<cache>/panel-wheels`` with the host's pip (its own
configuration picks the index, as for the Traefik wheel); a wheel already there for
a pinned version is used without asking the index. After the post-install commands,
``ldd`` in the chroot must resolve every shared library of /opt/python, or the build
stops and names the library (a package missing from ``panel.PANEL_PACKAGES``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from nodes.images.builder.errors import ImageBuildError
from nodes.images.builder.panel import (
    APP_PREFIX,
    PANEL_HOME,
    PYTHON_HOME,
    REQUIREMENTS_INSIDE,
    ROOTFS_PREFIX,
    WHEELS_INSIDE,
    excluded_from_interpreter,
    host_interpreter,
)
from nodes.images.builder.recipes import ImageRecipe
from nodes.images.builder.system import chroot_env, run

Progress = Callable[[str], None]
WHEEL_CACHE = "panel-wheels"
_ELF = b"\x7fELF"


def copy_interpreter(prefix: Path, pyver: str, dest: Path) -> int:
    """Copy the interpreter at ``prefix`` to ``dest`` without the excluded paths
    (symlinks stay symlinks); returns how many files were copied."""
    copied = 0
    for dirpath, dirnames, filenames in os.walk(prefix):
        here = Path(dirpath)
        rel_dir = here.relative_to(prefix).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        (dest / rel_dir).mkdir(parents=True, exist_ok=True)
        kept = []
        for name in sorted(dirnames):
            if excluded_from_interpreter(rel_dir + name, pyver):
                continue
            if (here / name).is_symlink():
                os.symlink(os.readlink(here / name), dest / rel_dir / name)
            else:
                kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            if excluded_from_interpreter(rel_dir + name, pyver):
                continue
            source, target = here / name, dest / rel_dir / name
            if source.is_symlink():
                os.symlink(os.readlink(source), target)
            else:
                shutil.copy2(source, target)
                copied += 1
    (dest / "lib" / f"python{pyver}" / "site-packages").mkdir(parents=True, exist_ok=True)
    return copied


def find_wheels(wheel_dir: Path, pins: Iterable[str]) -> tuple[dict[str, Path], list[str]]:
    """The wheel in ``wheel_dir`` for each ``name==version`` pin that this interpreter
    can install, and the pins that have none."""
    from packaging.tags import sys_tags
    from packaging.utils import (
        InvalidWheelFilename,
        canonicalize_name,
        canonicalize_version,
        parse_wheel_filename,
    )

    supported = set(sys_tags())
    available: dict[tuple[str, str], Path] = {}
    for wheel in sorted(wheel_dir.glob("*.whl")) if wheel_dir.is_dir() else []:
        try:
            name, version, _build, tags = parse_wheel_filename(wheel.name)
        except InvalidWheelFilename:
            continue
        if supported & set(tags):
            available[(str(name), canonicalize_version(version))] = wheel
    found: dict[str, Path] = {}
    missing: list[str] = []
    for pin in pins:
        pin_name, _, pin_version = pin.partition("==")
        key = (str(canonicalize_name(pin_name)), canonicalize_version(pin_version))
        if key in available:
            found[pin] = available[key]
        else:
            missing.append(pin)
    return found, missing


def ensure_wheels(wheel_dir: Path, pins: list[str], progress: Progress) -> list[Path]:
    """A wheel for every pin, built with ``pip wheel`` for those the cache lacks."""
    found, missing = find_wheels(wheel_dir, pins)
    if missing:
        wheel_dir.mkdir(parents=True, exist_ok=True)
        progress(f"panel: pip wheel {len(missing)} of {len(pins)} pinned distributions")
        with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="panel-pins-") as listing:
            listing.write("\n".join(missing) + "\n")
            listing.flush()
            run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "--disable-pip-version-check",
                    "--quiet",
                    "--no-deps",  # the pins are the whole closure already
                    "--find-links",
                    str(wheel_dir),
                    "--wheel-dir",
                    str(wheel_dir),
                    "-r",
                    listing.name,
                ],
                what="pip wheel of the panel's pinned requirements",
                retryable=True,
            )
        found, missing = find_wheels(wheel_dir, pins)
        if missing:
            raise ImageBuildError(f"pip wheel made no installable wheel for {', '.join(missing)}")
    return [found[pin] for pin in pins]


def unresolved_libraries(ldd_output: str) -> dict[str, list[str]]:
    """From ``ldd FILE...`` output: file -> the libraries it needs that were not found."""
    missing: dict[str, list[str]] = {}
    current = ""
    for line in ldd_output.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = line[:-1]
        elif "=> not found" in line and current:
            missing.setdefault(current, []).append(line.split()[0])
    return missing


def shared_objects(rootfs: Path, inside: str = PYTHON_HOME) -> list[str]:
    """The ELF files under ``inside`` of the rootfs, as paths in the chroot."""
    found = []
    for dirpath, _dirnames, filenames in os.walk(rootfs / inside.lstrip("/")):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            with path.open("rb") as handle:
                if handle.read(4) == _ELF:
                    found.append("/" + path.relative_to(rootfs).as_posix())
    return sorted(found)


class PanelHostFiles:
    """The host's part of one panel image build (see the module docstring)."""

    def __init__(self, recipe: ImageRecipe, cache_dir: Path, progress: Progress) -> None:
        self.recipe = recipe
        self.inputs = dict(recipe.inputs)
        self.wheel_dir = cache_dir / WHEEL_CACHE
        self.progress = progress

    def lay(self, rootfs: Path) -> None:
        interpreter, why = host_interpreter()
        if interpreter is None:
            raise ImageBuildError(f"panel: {why}")
        if interpreter.description != self.inputs["python"]:
            raise ImageBuildError(
                f"panel: the interpreter changed since the recipe was read "
                f"({self.inputs['python']!r}, now {interpreter.description!r})"
            )
        pins = self.inputs["wheels"].split()
        wheels = ensure_wheels(self.wheel_dir, pins, self.progress)
        self.progress(f"panel: copying the interpreter {interpreter.prefix} to {PYTHON_HOME}")
        count = copy_interpreter(interpreter.prefix, interpreter.pyver, rootfs / PYTHON_HOME[1:])
        self.progress(f"panel: {count} interpreter files, {len(wheels)} wheels")
        wheel_dir = rootfs / WHEELS_INSIDE[1:]
        wheel_dir.mkdir(parents=True, exist_ok=True)
        for wheel in wheels:
            shutil.copy2(wheel, wheel_dir / wheel.name)
        (rootfs / REQUIREMENTS_INSIDE[1:]).write_text("\n".join(pins) + "\n")
        for item in self.recipe.files:
            if item.path.startswith(APP_PREFIX):
                target = rootfs / PANEL_HOME[1:] / item.path.removeprefix(APP_PREFIX)
            elif item.path.startswith(ROOTFS_PREFIX):
                target = rootfs / item.path.removeprefix(ROOTFS_PREFIX)
            else:
                continue  # the Docker build context (Dockerfile, .dockerignore)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(item.data)
            target.chmod(0o755 if item.executable else 0o644)

    def check_libraries(self, rootfs: Path) -> None:
        """Every shared library of /opt/python resolves in the image, or ImageBuildError."""
        objects = shared_objects(rootfs)
        if not objects:
            raise ImageBuildError(f"panel: no shared objects under {PYTHON_HOME} in the rootfs")
        done = subprocess.run(
            ["chroot", str(rootfs), "ldd", *objects],
            capture_output=True,
            text=True,
            errors="replace",
            env=chroot_env(),
            timeout=300,
            check=False,
        )
        missing = unresolved_libraries(done.stdout)
        if missing:
            listing = "; ".join(f"{path}: {', '.join(libs)}" for path, libs in missing.items())
            raise ImageBuildError(
                "panel: shared libraries the image lacks (add their Debian packages to "
                f"nodes/images/builder/panel.py PANEL_PACKAGES): {listing}"
            )
        self.progress(f"panel: ldd resolves every library of {len(objects)} shared objects")
