"""The site's own directory under FARM_SITES_ROOT (GlusterFS in production).

Layout: ``<root>/wp-<id>/wp-content/{plugins,themes,uploads,languages,upgrade,mu-plugins}``,
owned by www-data (uid 33) inside the containers. Paths are built from the
site's id only, and checked to stay under the root before anything is removed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from django.conf import settings

from farm.errors import FarmError
from sites.stack import WWW_DATA_UID, stack_name
from sites.wordpress import MU_PLUGIN

SUBDIRS = ("plugins", "themes", "uploads", "languages", "upgrade", "mu-plugins")


class SiteFilesError(FarmError):
    pass


def site_path(site_id: int) -> Path:
    root = Path(settings.FARM_SITES_ROOT).resolve()
    path = (root / stack_name(int(site_id))).resolve()
    if path.parent != root:
        raise SiteFilesError(f"Refusing a site path outside {root}: {path}")
    return path


def _chown(path: Path) -> None:
    try:
        os.chown(path, WWW_DATA_UID, WWW_DATA_UID)
    except PermissionError as exc:  # the panel runs as root where it manages files
        raise SiteFilesError(f"Cannot give {path} to www-data: {exc}") from exc


def ensure_site_files(site_id: int) -> list[str]:
    done = []
    base = site_path(site_id)
    content = base / "wp-content"
    for directory in (base, content, *(content / d for d in SUBDIRS)):
        if not directory.exists():
            directory.mkdir(mode=0o755, parents=True)
            done.append(f"created {directory}")
        _chown(directory)
    plugin = content / "mu-plugins" / "farm.php"
    if not plugin.exists() or plugin.read_text() != MU_PLUGIN:
        plugin.write_text(MU_PLUGIN)
        _chown(plugin)
        done.append(f"wrote {plugin}")
    index = content / "index.php"
    if not index.exists():
        index.write_text("<?php\n// Silence is golden.\n")
        _chown(index)
    return done


def remove_site_files(site_id: int) -> bool:
    path = site_path(site_id)
    if not path.exists():
        return False
    shutil.rmtree(path)
    return True
