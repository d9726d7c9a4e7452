"""Item 1 of issue 9: the panel (root) never follows a link a site planted in its directory.

A site's PHP runs as www-data with its directory writable, so anything in there
may be a symlink: to a file outside (a stand-in for ``var/secrets/restic-password``),
to a directory outside (a stand-in for a host directory), or dangling (a name the
panel would create as root). Provision and Repair (``ensure_site_files``) and delete
(``remove_site_files``) must leave everything outside the site directory exactly as
it was: same content, owner and mode, nothing written into it, nothing created.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sites import files
from sites.stack import WWW_DATA_UID
from sites.wordpress import MU_PLUGIN
from tests.support.planted import KINDS, Outside, plant

SITE_ID = 7


@pytest.fixture
def sites_root(settings, tmp_path: Path) -> Path:
    root = tmp_path / "sites"
    root.mkdir()
    settings.FARM_SITES_ROOT = root
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Outside:
    return Outside(tmp_path)


def assert_owned_by_www_data(path: Path) -> None:
    info = path.lstat()
    assert (info.st_uid, info.st_gid) == (WWW_DATA_UID, WWW_DATA_UID), path


# -- provision and repair -----------------------------------------------------------


DIRECTORIES = ("wp-content", "wp-content/upgrade", "wp-content/mu-plugins", "wp-content/uploads")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", DIRECTORIES)
def test_item_1_repair_replaces_a_symlinked_directory_and_never_follows_it(
    sites_root, outside, where, kind
):
    files.ensure_site_files(SITE_ID)
    site = files.site_path(SITE_ID)
    plant(site / where, outside.target(kind))

    done = files.ensure_site_files(SITE_ID)

    outside.assert_untouched()
    replaced = site / where
    assert replaced.is_dir() and not replaced.is_symlink()
    assert_owned_by_www_data(replaced)
    assert any(f"replaced the symlink {site.name}/{where}" in line for line in done), done
    plugin = site / "wp-content" / "mu-plugins" / "farm.php"
    assert not plugin.is_symlink() and plugin.read_text() == MU_PLUGIN


@pytest.mark.parametrize("kind", KINDS)
def test_item_1_repair_rewrites_a_symlinked_mu_plugin_without_writing_through_it(
    sites_root, outside, kind
):
    files.ensure_site_files(SITE_ID)
    plugin = files.site_path(SITE_ID) / "wp-content" / "mu-plugins" / "farm.php"
    plant(plugin, outside.target(kind))

    files.ensure_site_files(SITE_ID)

    outside.assert_untouched()
    assert plugin.is_file() and not plugin.is_symlink()
    assert plugin.read_text() == MU_PLUGIN
    assert_owned_by_www_data(plugin)


def test_item_1_repair_rewrites_a_hard_linked_mu_plugin_as_a_new_file(sites_root, outside):
    """A hard link shares the secret's inode: writing the plugin "in place" would
    overwrite the secret. The new plugin is a new file renamed over the link."""
    files.ensure_site_files(SITE_ID)
    plugin = files.site_path(SITE_ID) / "wp-content" / "mu-plugins" / "farm.php"
    plugin.unlink()
    os.link(outside.secret, plugin)

    files.ensure_site_files(SITE_ID)

    outside.assert_untouched()
    assert plugin.read_text() == MU_PLUGIN
    assert plugin.stat().st_ino != outside.secret.stat().st_ino


@pytest.mark.parametrize("kind", KINDS)
def test_item_1_provision_leaves_a_symlinked_index_php_alone(sites_root, outside, kind):
    files.ensure_site_files(SITE_ID)
    index = files.site_path(SITE_ID) / "wp-content" / "index.php"
    plant(index, outside.target(kind))

    files.ensure_site_files(SITE_ID)

    outside.assert_untouched()
    assert index.is_symlink(), "an index.php of the site's own is kept, and never followed"


@pytest.mark.parametrize("kind", KINDS)
def test_item_1_provision_into_a_directory_with_planted_links_changes_nothing_outside(
    sites_root, outside, kind
):
    """A retried provision (or a site directory left from before) full of links."""
    site = files.site_path(SITE_ID)
    content = site / "wp-content"
    content.mkdir(parents=True)
    for name in ("plugins", "themes", "languages"):
        (content / name).symlink_to(outside.target(kind))
    (content / "index.php").symlink_to(outside.target(kind))

    files.ensure_site_files(SITE_ID)

    outside.assert_untouched()
    for name in files.SUBDIRS:
        assert (content / name).is_dir() and not (content / name).is_symlink()
        assert_owned_by_www_data(content / name)


def test_item_1_a_file_where_a_directory_belongs_is_refused_with_a_clear_message(sites_root):
    files.ensure_site_files(SITE_ID)
    upgrade = files.site_path(SITE_ID) / "wp-content" / "upgrade"
    upgrade.rmdir()
    upgrade.write_text("not a directory")

    with pytest.raises(files.SiteFilesError, match="upgrade is a file, not a directory"):
        files.ensure_site_files(SITE_ID)
    assert upgrade.read_text() == "not a directory"


# -- delete and purge -----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_item_1_purge_removes_the_links_not_what_they_point_at(sites_root, outside, kind):
    files.ensure_site_files(SITE_ID)
    site = files.site_path(SITE_ID)
    plant(site / "wp-content" / "upgrade", outside.target(kind))
    (site / "wp-content" / "uploads" / "link").symlink_to(outside.target(kind))
    (site / "top-link").symlink_to(outside.target(kind))

    assert files.remove_site_files(SITE_ID) is True

    outside.assert_untouched()
    assert not site.exists() and not site.is_symlink()
    assert files.remove_site_files(SITE_ID) is False


@pytest.mark.parametrize("kind", KINDS)
def test_item_1_a_site_directory_that_is_itself_a_link_is_unlinked_not_followed(
    sites_root, outside, kind
):
    site = files.site_path(SITE_ID)
    site.symlink_to(outside.target(kind))

    assert files.remove_site_files(SITE_ID) is True

    outside.assert_untouched()
    assert not site.is_symlink()
