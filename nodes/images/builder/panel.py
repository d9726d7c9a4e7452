"""The ``panel`` image's recipe: the panel itself, built offline like the farm's images.

Bookworm's Python is 3.11 and the panel needs 3.12 or newer, so the image carries the
interpreter the panel's venv was made from (``sys.base_prefix``, a self-contained
pyenv build linked against bookworm's libraries, docs/plans/multi-node.md D6, R9):
copied to /opt/python without its test suite, tkinter, idlelib, headers, static
library and the host's own site-packages. Beside it, from bookworm, the shared
libraries it and the wheels load (the list ``ldd`` gave; the build checks it again),
the MariaDB client library and tools, restic, tini and busybox.

The Python packages are the panel's dependencies and its ``panel`` extra (gunicorn,
whitenoise), **pinned to the versions installed in the venv that runs the build**:
the image runs what the tests ran. Their wheels are built on the host once into
``<cache>/panel-wheels`` and installed in the chroot with ``pip install --no-index``.
The application is the checkout's tracked files of the apps, templates, static and
manage.py (``git ls-files``, the working tree's bytes) in /opt/panel; ``collectstatic``
runs at build time. The tag hashes the interpreter's version, the pinned wheels and the
application files, so any change to the panel's code makes a new image.

This module reads the recipe (files, git, the venv's metadata: no Docker, no
network); ``panel_build`` holds what building it does on the host.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from nodes.images.builder.recipes import (
    IMAGEBUILD_DIR,
    ImageRecipe,
    RecipeFile,
    read_context_files,
)

PANEL_ROLE = "panel"
CHECKOUT = IMAGEBUILD_DIR.parents[2]
# What of the checkout is the panel (``git ls-files`` of these).
APP_DIRS = ("farm", "nodes", "sites", "backups", "monitoring", "templates", "static")
APP_TOP_FILES = ("manage.py",)
# The images' build contexts (everything under builder/ but its modules): a panel never
# builds images, and another image's file must not change the panel's tag.
_CONTEXTS = "nodes/images/builder/"
_IGNORED_PARTS = ("__pycache__",)
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", "~", ".orig", ".rej")
# In the recipe's files, under these prefixes: the app (laid in /opt/panel) and files
# laid in the rootfs as they are. The Docker build context ignores both (.dockerignore).
APP_PREFIX = "app/"
ROOTFS_PREFIX = "rootfs/"

PYTHON_HOME = "/opt/python"
PANEL_HOME = "/opt/panel"
PANEL_VAR = "/var/lib/panel"  # FARM_VAR_DIR: STATIC_ROOT is its static/
PANEL_UID = "10001"
WHEELS_INSIDE = "/farm-build/wheels"
REQUIREMENTS_INSIDE = "/farm-build/panel-requirements.txt"

# ldd of the interpreter, its extension modules and the wheels' (plan D6), then what the
# panel runs: the MariaDB client tools and restic (backups), tini, busybox (health check).
PANEL_PACKAGES = (
    "libssl3",
    "libsqlite3-0",
    "libffi8",
    "zlib1g",
    "libbz2-1.0",
    "liblzma5",
    "libreadline8",
    "libncursesw6",
    "libuuid1",
    "libexpat1",
    "libmariadb3",
    "ca-certificates",
    "restic",
    "mariadb-client-core",
    "mariadb-backup",
    "tini",
    "busybox",
)


def interpreter_excludes(pyver: str) -> tuple[str, ...]:
    """Paths (relative to the interpreter's prefix) left out of /opt/python; a directory
    leaves out everything below it. ``pyver`` is ``3.13``."""
    lib = f"lib/python{pyver}"
    return (
        "include",  # C headers and the static library: nothing is compiled in the image
        "share",
        "lib/pkgconfig",
        f"{lib}/test",
        f"{lib}/tkinter",
        f"{lib}/idlelib",
        f"{lib}/turtledemo",
        f"{lib}/turtle.py",
        f"{lib}/config-{pyver}-{platform.machine()}-linux-gnu",
        f"{lib}/site-packages",  # the host's own packages and .pth files; pip fills it anew
    )


# Never copied wherever they are: byte code (compiled again in the chroot) and the
# extension modules of the test suite and Tk.
_EXCLUDED_NAMES = re.compile(r"^(__pycache__|_tkinter\..*|_test.*\.so|_ctypes_test\..*|xx.*\.so)$")
_EXCLUDED_BINS = re.compile(r"^(idle.*|pip.*|pydoc.*|python.*-config|python.*-gdb\.py)$")


def excluded_from_interpreter(rel: str, pyver: str) -> bool:
    """Is ``rel`` (a POSIX path relative to the prefix) left out of /opt/python?"""
    parts = rel.split("/")
    if any(_EXCLUDED_NAMES.match(part) for part in parts):
        return True
    if len(parts) == 2 and parts[0] == "bin" and _EXCLUDED_BINS.match(parts[1]):
        return True
    return any(rel == ex or rel.startswith(ex + "/") for ex in interpreter_excludes(pyver))


@dataclass(frozen=True)
class Interpreter:
    prefix: Path
    pyver: str  # "3.13"
    description: str  # what the tag hashes: the full version (with its build) and machine


def host_interpreter() -> tuple[Interpreter | None, str]:
    """The venv's base interpreter, or None and why it cannot go into an image."""
    prefix = Path(sys.base_prefix).resolve()
    pyver = f"{sys.version_info.major}.{sys.version_info.minor}"
    binary = prefix / "bin" / f"python{pyver}"
    if prefix in (Path("/usr"), Path("/usr/local"), Path("/")):
        return None, (
            f"the panel image copies the interpreter the venv was made from, and "
            f"{prefix} is a system-wide Python, not a self-contained one (make the venv "
            "with a pyenv Python, FARM_PYTHON=/root/.pyenv/versions/3.13.0/bin/python3.13)"
        )
    if not binary.is_file() or not (prefix / "lib" / f"python{pyver}" / "os.py").is_file():
        return None, f"{prefix} does not look like a Python {pyver} installation ({binary})"
    description = f"{platform.python_implementation()} {sys.version} {platform.machine()}"
    return Interpreter(prefix, pyver, " ".join(description.split())), ""


def select_app_paths(tracked: Iterable[str]) -> list[str]:
    """The tracked paths that are the panel: the apps, templates, static files, manage.py."""
    chosen: set[str] = set()
    for path in tracked:
        parts = path.split("/")
        if parts[0] not in APP_DIRS and path not in APP_TOP_FILES:
            continue
        if path.startswith(_CONTEXTS) and not (len(parts) == 4 and path.endswith(".py")):
            continue  # nodes/images/builder/<role>/... (modules are one level deep)
        if any(p in _IGNORED_PARTS for p in parts) or path.endswith(_IGNORED_SUFFIXES):
            continue
        chosen.add(path)
    return sorted(chosen)


def tracked_files(root: Path) -> tuple[list[str], str]:
    """``git ls-files`` of the app paths in ``root``, or [] and why not."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--", *APP_DIRS, *APP_TOP_FILES],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"git ls-files could not run in {root} ({exc})"
    if done.returncode != 0:
        return [], f"{root} is not a git checkout: {done.stderr.decode(errors='replace').strip()}"
    return [p for p in done.stdout.decode().split("\0") if p], ""


def read_app_files(root: Path, paths: Iterable[str]) -> tuple[RecipeFile, ...]:
    """The working tree's bytes of ``paths`` (a tracked file deleted here is left out)."""
    files = []
    for rel in paths:
        path = root / rel
        if path.is_file() and not path.is_symlink():
            files.append(RecipeFile(APP_PREFIX + rel, path.read_bytes(), executable=False))
    return tuple(files)


def top_requirements(pyproject: str, extra: str = PANEL_ROLE) -> list[str]:
    """The project's dependencies and those of its ``extra``, as written in pyproject.toml."""
    project = tomllib.loads(pyproject)["project"]
    return [*project["dependencies"], *project.get("optional-dependencies", {})[extra]]


Lookup = Callable[[str], tuple[str, list[str]] | None]  # name -> (version, requires) or None


def installed(name: str) -> tuple[str, list[str]] | None:
    """The version and requirements of a distribution installed with this interpreter."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    return dist.version, list(dist.requires or [])


def pin_closure(top: Iterable[str], lookup: Lookup = installed) -> tuple[list[str], list[str]]:
    """Every distribution ``top`` needs (following the installed ones' requirements, with
    their extras and environment markers), pinned to the installed version: (sorted
    ``name==version`` lines, problems). A problem is a distribution that is not installed
    or whose installed version does not satisfy a requirement on it."""
    from packaging.requirements import Requirement  # the host's build tooling only
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    problems: list[str] = []
    queue = [(Requirement(line), "") for line in top]
    seen: set[tuple[str, frozenset[str]]] = set()
    while queue:
        requirement, extra = queue.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        found = lookup(name)
        if found is None:
            problems.append(f"{requirement} is not installed")
            continue
        version, requires = found
        if not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{name} {version} is installed, {requirement} is needed")
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        pins[name] = version
        for line in requires:
            sub = Requirement(line)
            wanted = [""] if sub.marker is None else ["", *sorted(requirement.extras)]
            for which in wanted:
                if sub.marker is None or sub.marker.evaluate({"extra": which}):
                    queue.append((sub, which))
                    break
    return sorted(f"{n}=={v}" for n, v in pins.items()), sorted(set(problems))


def post_install(pyver: str) -> tuple[tuple[str, ...], ...]:
    """The chroot commands once the interpreter, the wheels and the app are laid in."""
    python = f"{PYTHON_HOME}/bin/python3"
    pip = (python, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir")
    return (
        ("ldconfig",),  # /opt/python/lib (rootfs/etc/ld.so.conf.d): libpython3.x.so
        (python, "-m", "ensurepip", "--default-pip"),
        (
            *pip,
            "install",
            "--no-index",
            "--no-deps",
            "--root-user-action=ignore",
            "--find-links",
            WHEELS_INSIDE,
            "-r",
            REQUIREMENTS_INSIDE,
        ),
        (*pip, "uninstall", "--yes", "pip"),  # a running panel installs nothing
        # One process: the chroot has no /dev/shm for a pool's semaphores.
        # pip compiled what it installed.
        (
            python,
            "-m",
            "compileall",
            "-q",
            "-x",
            "/site-packages/",
            f"{PYTHON_HOME}/lib/python{pyver}",
            PANEL_HOME,
        ),
        ("groupadd", "--system", "--gid", PANEL_UID, "panel"),
        (
            "useradd",
            "--system",
            "--uid",
            PANEL_UID,
            "--gid",
            "panel",
            "--no-create-home",
            "--home-dir",
            PANEL_VAR,
            "--shell",
            "/usr/sbin/nologin",
            "panel",
        ),
        ("install", "-d", "-o", "panel", "-g", "panel", "-m", "0755", PANEL_VAR),
        # A throw-away key: with none, settings would write a development key into the image.
        (
            "env",
            f"FARM_VAR_DIR={PANEL_VAR}",
            "FARM_STATIC_WHITENOISE=1",
            "SECRET_KEY=collectstatic-at-image-build-only",
            python,
            f"{PANEL_HOME}/manage.py",
            "collectstatic",
            "--noinput",
            "-v",
            "0",
        ),
    )


def panel_recipe(suite: str, base_digest: str) -> ImageRecipe:
    """The recipe; when the panel cannot be imaged from this host, one whose
    ``unavailable`` says why (building it raises that; the other images are unaffected)."""
    context = read_context_files(IMAGEBUILD_DIR / PANEL_ROLE)
    interpreter, why = host_interpreter()
    paths, why_not_git = tracked_files(CHECKOUT)
    try:
        pins, problems = pin_closure(top_requirements((CHECKOUT / "pyproject.toml").read_text()))
    except ImportError as exc:  # packaging comes with the dev tools
        pins, problems = [], [f"packaging, which reads the requirements, is missing ({exc})"]
    reasons = [r for r in (why, why_not_git) if r]
    if problems:
        reasons.append(
            "the venv lacks what the image pins ("
            + "; ".join(problems)
            + "): install the panel extra (scripts/lib.sh ensure_venv does)"
        )
    pyver = interpreter.pyver if interpreter else f"{sys.version_info[0]}.{sys.version_info[1]}"
    return ImageRecipe(
        role=PANEL_ROLE,
        packages=PANEL_PACKAGES,
        files=(*context, *read_app_files(CHECKOUT, select_app_paths(paths))),
        suite=suite,
        base_digest=base_digest,
        post_install=post_install(pyver),
        inputs=(
            ("python", interpreter.description if interpreter else ""),
            ("python-excludes", " ".join(interpreter_excludes(pyver))),
            ("wheels", " ".join(pins)),
        ),
        unavailable="; ".join(reasons),
    )
