"""The farm's container images: which image each role runs, and the offline builder.

- ``mapping.py``: the image map. ``image_for(role)`` is what a stack or platform
  service runs (our local builds, the upstream images, or an override), and
  ``site_runtime(key)`` is a PHP/WordPress runtime a site can choose.
- ``build.py``: ``build_images()``, which builds the local images that are missing
  (its docstring holds each image's contract), and ``local_image_map()``, their
  content tags, computed without Docker.
- ``distribute.py``: getting the images onto every node of a multi-node farm:
  ``push_images`` to the private registry by digest, ``write_manifest`` /
  ``read_manifest`` (the image map of ``FARM_IMAGES=registry``), ``side_load`` from
  engine to engine, ``pre_pull``.
- ``builder/``: how one image is built (recipes and their hashes, debootstrap and
  chroot, the build schedule) and the ``<role>/`` build contexts; see its README.

This ``__init__`` is the package's API: code outside ``nodes.images`` imports from
here, never from its modules (an import-linter contract checks it).
"""

from __future__ import annotations

from nodes.images.build import (
    EXTRA_ROLES,
    ROLES,
    BuildReport,
    ImageBuildError,
    ImageOutcome,
    ImageRecipe,
    build_images,
    default_cache_dir,
    local_image_map,
    recipes,
)
from nodes.images.distribute import (
    ImageDistributionError,
    pre_pull,
    push_images,
    read_manifest,
    side_load,
    write_manifest,
)
from nodes.images.mapping import (
    UPSTREAM_IMAGES,
    SiteRuntime,
    image_for,
    image_map,
    registry_image_map,
    site_runtime,
    site_runtimes,
)

__all__ = [
    "EXTRA_ROLES",
    "ROLES",
    "UPSTREAM_IMAGES",
    "BuildReport",
    "ImageBuildError",
    "ImageDistributionError",
    "ImageOutcome",
    "ImageRecipe",
    "SiteRuntime",
    "build_images",
    "default_cache_dir",
    "image_for",
    "image_map",
    "local_image_map",
    "pre_pull",
    "push_images",
    "read_manifest",
    "recipes",
    "registry_image_map",
    "side_load",
    "site_runtime",
    "site_runtimes",
    "write_manifest",
]
