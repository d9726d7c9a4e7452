"""Debian root filesystems for the farm images: debootstrap once, chroot per image.

The base rootfs is cached under the hash of its recipe. Each image starts
from a copy of it; apt's lists and downloaded packages live in the cache
and are bind-mounted into the chroot, so they never reach an image. The
build-time apt sources (see aptsources.py) are deleted before the rootfs
becomes an image.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from nodes.images.builder.aptsources import AptSource, deb822, host_check_valid_until
from nodes.images.builder.errors import ImageBuildError
from nodes.images.builder.recipes import LOCAL_DEBS_DIR, BaseRecipe, ImageRecipe
from nodes.images.builder.system import bind_mounts, in_chroot, remove_tree, run

Progress = Callable[[str], None]

# Written into the chroot only while it builds; _CLEANED removes them.
BUILD_SOURCES = "etc/apt/sources.list.d/farm-build.sources"
BUILD_APT_CONF = "etc/apt/apt.conf.d/99farm-build"
POLICY_RC_D = "usr/sbin/policy-rc.d"
# Scratch space inside the chroot while it builds.
INSIDE_WORK = "/farm-build"
_RECIPE_ERRORS = ("Unable to locate package", "has no installation candidate", "unmet dependencies")
_CLEANED = (
    "var/lib/apt/lists/*",
    "var/cache/apt/*",
    "var/log/apt/*",
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/log/bootstrap.log",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "var/cache/ldconfig/aux-cache",
    "tmp/*",
    "var/tmp/*",
    "root/.cache",
    INSIDE_WORK[1:],
    "etc/apt/sources.list",
    BUILD_SOURCES,
    BUILD_APT_CONF,
    POLICY_RC_D,
    # Docker provides these at run time; debootstrap copied the host's.
    "etc/resolv.conf",
    "etc/hostname",
)


def _delete_globs(rootfs: Path, patterns: Sequence[str]) -> None:
    for pattern in patterns:
        for match in glob.glob(str(rootfs / pattern)):
            path = Path(match)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


def _lay_files(rootfs: Path, files: Sequence[tuple[str, bytes, bool]]) -> None:
    for rel, data, executable in files:
        target = rootfs / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o755 if executable else 0o644)


@dataclass
class RootfsBuilder:
    """Builds root filesystems under ``cache_dir`` for one build_images call."""

    cache_dir: Path
    sources: list[AptSource]
    progress: Progress
    _download_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def apt_lists(self) -> Path:
        return self.cache_dir / "apt" / "lists"

    @property
    def apt_archives(self) -> Path:
        return self.cache_dir / "apt" / "archives"

    def base(self, recipe: BaseRecipe) -> Path:
        """The debootstrapped base rootfs, built once per recipe digest."""
        home = self.cache_dir / f"base-{recipe.digest()[:16]}"
        if (home / ".complete").exists():
            self.progress(f"base: reusing cached {recipe.suite} rootfs {home.name}")
            return home / "rootfs"
        remove_tree(home)
        staging = Path(tempfile.mkdtemp(prefix=".base-", dir=self.cache_dir))
        try:
            mirror = self.sources[0].uri
            self.progress(f"base: debootstrap --variant={recipe.variant} {recipe.suite} ...")
            run(
                [
                    "debootstrap",
                    f"--variant={recipe.variant}",
                    f"--include={','.join(recipe.include)}",
                    "--components=main",
                    recipe.suite,
                    str(staging / "rootfs"),
                    mirror,
                ],
                what="debootstrap",
                retryable=True,
            )
            rootfs = staging / "rootfs"
            overlay = [
                (f.path.removeprefix("rootfs/"), f.data, f.executable)
                for f in recipe.files
                if f.path.startswith("rootfs/")
            ]
            _lay_files(rootfs, overlay)
            # dpkg's path-excludes only act on later installs: trim what is there.
            in_chroot(
                rootfs,
                ["find", "/usr/share/doc", "-type", "f", "!", "-name", "copyright", "-delete"],
                what="trim docs",
            )
            _delete_globs(rootfs, ("usr/share/man/*", "usr/share/info/*", "usr/share/lintian/*"))
            for locale in (rootfs / "usr/share/locale").glob("*"):
                if locale.name != "locale.alias":
                    shutil.rmtree(locale) if locale.is_dir() else locale.unlink()
            _delete_globs(rootfs, _CLEANED)
            staging.rename(home)
            (home / ".complete").write_text(recipe.digest() + "\n")
        finally:
            remove_tree(staging)
        return home / "rootfs"

    def _copy_base(self, base: Path, workdir: Path) -> Path:
        """A fresh copy of the base rootfs with the build-time apt setup laid in."""
        rootfs = workdir / "rootfs"
        remove_tree(workdir)
        workdir.mkdir(parents=True)
        run(["cp", "-a", "--reflink=auto", str(base), str(rootfs)], what="copy base rootfs")
        build_conf = 'Acquire::Languages "none";\n'
        if not host_check_valid_until():
            build_conf += 'Acquire::Check-Valid-Until "false";\n'
        resolv = Path("/etc/resolv.conf")
        _lay_files(
            rootfs,
            [
                (BUILD_SOURCES, deb822(self.sources).encode(), False),
                (BUILD_APT_CONF, build_conf.encode(), False),
                (
                    POLICY_RC_D,
                    b"#!/bin/sh\n# no services start while building an image\nexit 101\n",
                    True,
                ),
                ("etc/resolv.conf", resolv.read_bytes() if resolv.exists() else b"", False),
            ],
        )
        (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
        return rootfs

    def _apt_mounts(self, rootfs: Path) -> AbstractContextManager[None]:
        return bind_mounts(
            rootfs,
            [(self.apt_lists, "var/lib/apt/lists"), (self.apt_archives, "var/cache/apt/archives")],
        )

    def update_lists(self, base: Path) -> None:
        """apt-get update into the shared lists folder, once per build (in a throwaway copy)."""
        workdir = self.cache_dir / "work" / "apt-update"
        try:
            rootfs = self._copy_base(base, workdir)
            with self._apt_mounts(rootfs):
                self.progress("apt-get update")
                in_chroot(rootfs, ["apt-get", "update"], what="apt-get update", retryable=True)
        finally:
            remove_tree(workdir)

    def prepare(
        self,
        recipe: ImageRecipe,
        base: Path,
        workdir: Path,
        static_tar: Path | None = None,
        export_static_to: Path | None = None,
        lay_host_files: Callable[[Path], None] | None = None,
    ) -> Path:
        """Copy the base, install the recipe's packages, clean up; returns the rootfs.

        ``lay_host_files(rootfs)`` puts files from the host in (the panel's interpreter,
        wheels and app) after the packages and before the post-install commands.

        Several prepare() calls may run at once (threads): downloads into the
        shared package cache take turns, and the installs, which only read it,
        run without apt's archive lock.
        """
        rootfs = self._copy_base(base, workdir)
        with self._apt_mounts(rootfs):
            debs = self._build_local_debs(recipe, rootfs)
            install = ["apt-get", "install", "-y", "--no-install-recommends", *debs]
            with self._download_lock:
                self.progress(f"{recipe.role}: apt-get install {' '.join(recipe.packages)}")
                try:
                    in_chroot(
                        rootfs,
                        [*install, "--download-only", *recipe.packages],
                        what=f"{recipe.role}: apt-get download",
                        retryable=True,
                    )
                except ImageBuildError as exc:
                    # A package the mirror does not have will not appear on a retry.
                    if any(sign in exc.message for sign in _RECIPE_ERRORS):
                        exc.retryable = False
                    raise
            in_chroot(
                rootfs,
                [*install, "-o", "Debug::NoLocking=true", *recipe.packages],
                what=f"{recipe.role}: apt-get install",
                retryable=True,
            )
        if lay_host_files is not None:
            lay_host_files(rootfs)
        for argv in recipe.post_install:
            in_chroot(rootfs, argv, what=f"{recipe.role}: {' '.join(argv)}")
        if export_static_to is not None:
            self._export_tree(rootfs, "/usr/share/wordpress", export_static_to)
        if static_tar is not None:
            target = rootfs / "usr/share/wordpress"
            target.mkdir(parents=True, exist_ok=True)
            run(
                ["tar", "-xf", str(static_tar), "-C", str(target)],
                what="unpack WordPress static files",
            )
        _delete_globs(rootfs, recipe.remove_paths)
        _delete_globs(rootfs, _CLEANED)
        return rootfs

    def _build_local_debs(self, recipe: ImageRecipe, rootfs: Path) -> list[str]:
        built: list[str] = []
        for name in recipe.local_debs:
            prefix = f"{LOCAL_DEBS_DIR}/{name}/"
            _lay_files(
                rootfs,
                [
                    (f"{INSIDE_WORK[1:]}/{f.path}", f.data, f.executable)
                    for f in recipe.files
                    if f.path.startswith(prefix)
                ],
            )
            deb = f"{INSIDE_WORK}/{name}.deb"
            in_chroot(
                rootfs,
                [
                    "dpkg-deb",
                    "--root-owner-group",
                    "--build",
                    f"{INSIDE_WORK}/{LOCAL_DEBS_DIR}/{name}",
                    deb,
                ],
                what=f"build local package {name}",
            )
            built.append(deb)
        return built

    def _export_tree(self, rootfs: Path, inside: str, dest: Path) -> None:
        """Tar a tree with its symlinks followed inside the chroot, without PHP files."""
        self.progress(f"exporting {inside} static files (symlinks dereferenced)")
        (rootfs / INSIDE_WORK[1:]).mkdir(exist_ok=True)
        in_chroot(
            rootfs,
            [
                "tar",
                "--dereference",
                "--exclude=*.php",
                "--exclude=./.htaccess",
                "-C",
                inside,
                "-cf",
                f"{INSIDE_WORK}/static-export.tar",
                ".",
            ],
            what=f"export {inside}",
        )
        partial = dest.with_suffix(".partial")
        shutil.move(str(rootfs / INSIDE_WORK[1:] / "static-export.tar"), partial)
        partial.rename(dest)


def rootfs_tar_chunks(rootfs: Path, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Stream ``tar -c`` of a rootfs (device nodes left out: Docker makes /dev)."""
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            ["tar", "--numeric-owner", "--exclude=./dev/*", "-C", str(rootfs), "-cf", "-", "."],
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        assert proc.stdout is not None
        try:
            while chunk := proc.stdout.read(chunk_size):
                yield chunk
            if proc.wait() != 0:
                errors.seek(0)
                raise ImageBuildError(
                    f"tar of {rootfs} failed: {errors.read()[-2000:].decode(errors='replace')}"
                )
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
