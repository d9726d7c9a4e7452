"""Issue 12, C7: with FARM_IMAGES=registry the image map is the manifest file written
after the push, and nothing else: no apt sources, no Docker (R10: it must work inside
the panel's own containers). A missing file or role is an error naming the file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nodes.images import (
    ROLES,
    ImageDistributionError,
    image_for,
    image_map,
    read_manifest,
    site_runtimes,
    write_manifest,
)
from tests.support.processes import ROOT


def pinned(role: str, registry: str = "127.0.0.1:5000") -> str:
    return f"{registry}/farm/{role}@sha256:{format(ROLES.index(role), 'x') * 64}"


FULL = {role: pinned(role) for role in ROLES}


@pytest.fixture
def registry_mode(settings, tmp_path, monkeypatch):
    settings.FARM_IMAGES = "registry"
    settings.FARM_IMAGE_OVERRIDES = {}
    settings.FARM_IMAGE_MANIFEST_FILE = tmp_path / "farm-nodes" / "images.json"

    def no_local_builds() -> dict[str, str]:
        raise AssertionError("registry mode read the local recipes (the host's apt sources)")

    monkeypatch.setattr("nodes.images.mapping.local_image_map", no_local_builds)
    return settings.FARM_IMAGE_MANIFEST_FILE


def test_the_image_map_is_the_manifest_file(registry_mode: Path):
    write_manifest(registry_mode, FULL)

    assert image_map() == FULL
    assert image_for("nginx") == "127.0.0.1:5000/farm/nginx@sha256:" + "1" * 64
    assert json.loads(registry_mode.read_text()) == FULL


def test_overrides_still_pin_a_single_role(registry_mode: Path, settings):
    write_manifest(registry_mode, FULL)
    settings.FARM_IMAGE_OVERRIDES = {"traefik": "mirror.example/traefik:v3.5"}

    assert image_map()["traefik"] == "mirror.example/traefik:v3.5"
    assert image_map()["nginx"] == FULL["nginx"]


def test_a_missing_manifest_is_an_error_naming_the_file(registry_mode: Path):
    with pytest.raises(ImageDistributionError, match="does not exist") as caught:
        image_for("nginx")
    assert str(registry_mode) in caught.value.message
    assert "push the images first" in caught.value.message


def test_a_manifest_without_a_role_names_the_file_and_the_role(registry_mode: Path):
    write_manifest(registry_mode, {r: ref for r, ref in FULL.items() if r != "mariadb"})

    with pytest.raises(ImageDistributionError, match="has no image for mariadb") as caught:
        image_map()
    assert str(registry_mode) in caught.value.message


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '["farm/nginx"]',
        json.dumps({**FULL, "nginx": "127.0.0.1:5000/farm/nginx:0123456789ab"}),  # a tag
        json.dumps({**FULL, "nginx": pinned("redis")}),  # another role's image
    ],
)
def test_a_manifest_that_pins_nothing_is_refused(registry_mode: Path, content: str):
    registry_mode.parent.mkdir(parents=True)
    registry_mode.write_text(content)

    with pytest.raises(ImageDistributionError) as caught:
        image_map()
    assert str(registry_mode) in caught.value.message


def test_write_manifest_replaces_the_file_whole_and_leaves_no_temporary(tmp_path: Path):
    path = tmp_path / "images.json"
    write_manifest(path, {"nginx": pinned("nginx")})
    write_manifest(path, FULL)

    assert read_manifest(path) == FULL
    assert [p.name for p in tmp_path.iterdir()] == ["images.json"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_write_manifest_refuses_an_unpinned_image_and_keeps_the_old_file(tmp_path: Path):
    path = tmp_path / "images.json"
    write_manifest(path, FULL)

    with pytest.raises(ImageDistributionError, match="no pinned image of role 'nginx'"):
        write_manifest(path, {**FULL, "nginx": "farm/nginx:0123456789ab"})
    assert read_manifest(path) == FULL


def test_the_registry_images_have_the_local_runtimes(registry_mode: Path, settings):
    registry = site_runtimes()
    settings.FARM_IMAGES = "local"
    assert registry == site_runtimes()
    assert registry["php8.2"].wp_root == "/usr/share/wordpress"


def test_registry_mode_and_address_come_from_the_environment():
    def boot(**env: str) -> subprocess.CompletedProcess[str]:
        code = (
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.FARM_IMAGES, settings.FARM_REGISTRY, settings.FARM_IMAGE_MANIFEST_FILE)"
        )
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "farm.settings", **env},
        )

    default = boot(FARM_IMAGES="registry", FARM_VAR_DIR="/srv/farm-var")
    assert default.returncode == 0, default.stderr
    assert default.stdout.split() == [
        "registry",
        "127.0.0.1:5000",
        "/srv/farm-var/farm-nodes/images.json",
    ]
    bad = boot(FARM_REGISTRY="http://127.0.0.1:5000")
    assert bad.returncode != 0
    assert "FARM_REGISTRY='http://127.0.0.1:5000' is not a registry address" in bad.stderr
