"""The site's own directory under FARM_SITES_ROOT (GlusterFS in production).

Layout: ``<root>/wp-<id>/wp-content/{plugins,themes,uploads,languages,upgrade,mu-plugins}``,
owned by www-data (uid 33) inside the containers. Paths are built from the
site's id only. The site's PHP can write anything inside its directory,
symlinks included, so every change here goes through ``sites.safe_files``:
from the root's fd, one component at a time, never following a link.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from sites import safe_files
from sites.safe_files import SiteFilesError
from sites.stack import WWW_DATA_UID, stack_name
from sites.wordpress import MU_PLUGIN

__all__ = ["SUBDIRS", "SiteFilesError", "ensure_site_files", "remove_site_files", "site_path"]

SUBDIRS = ("plugins", "themes", "uploads", "languages", "upgrade", "mu-plugins")
WWW_DATA = (WWW_DATA_UID, WWW_DATA_UID)
INDEX_PHP = b"<?php\n// Silence is golden.\n"


def site_path(site_id: int) -> Path:
    """Where the site's directory is (for messages, restic and the stack's bind mount);
    the panel itself never changes anything through this path."""
    root = Path(settings.FARM_SITES_ROOT).resolve()
    path = root / stack_name(int(site_id))
    if path.parent != root:
        raise SiteFilesError(f"Refusing a site path outside {root}: {path}")
    return path


def ensure_site_files(site_id: int) -> list[str]:
    """Make the layout and the farm's must-use plugin; returns what was changed.

    Planted links are replaced, never followed: a symlinked directory becomes a
    real one, ``farm.php`` is written to a new file renamed over whatever was
    there, and an existing ``index.php`` of any kind is left as it is.
    """
    done: list[str] = []
    plugin = MU_PLUGIN.encode()
    base = site_path(site_id)
    name = base.name
    with (
        safe_files.sites_root() as root,
        safe_files.directory(root, name, owner=WWW_DATA, notes=done, where=str(base)) as site,
        safe_files.directory(
            site, "wp-content", owner=WWW_DATA, notes=done, where=f"{name}/wp-content"
        ) as content,
    ):
        for sub in SUBDIRS:
            where = f"{name}/wp-content/{sub}"
            with safe_files.directory(content, sub, owner=WWW_DATA, notes=done, where=where) as fd:
                if sub == "mu-plugins" and safe_files.read_regular(fd, "farm.php") != plugin:
                    safe_files.write_atomic(
                        fd, "farm.php", plugin, owner=WWW_DATA, where=f"{where}/farm.php"
                    )
                    done.append(f"wrote {base / 'wp-content' / 'mu-plugins' / 'farm.php'}")
        if safe_files.kind_of(content, "index.php") is None:
            safe_files.write_atomic(content, "index.php", INDEX_PHP, owner=WWW_DATA)
    return done


def remove_site_files(site_id: int) -> bool:
    """Delete the site's directory; a link in its place is removed, never followed."""
    with safe_files.sites_root() as root:
        return safe_files.remove(root, stack_name(int(site_id)))
