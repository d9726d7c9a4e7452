"""The farm/registry image's recipe (issue 12, C3/C7), without Docker.

Built only on request, like farm/node; its build context carries the registry's config
file. Building and pushing to the image needs Docker and is not done here.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from nodes.images import EXTRA_ROLES, ROLES, local_image_map, recipes
from nodes.images.build import _select_roles
from nodes.images.builder import recipes as recipes_module


def test_the_registry_is_an_extra_role_built_only_when_asked_for() -> None:
    assert "registry" in EXTRA_ROLES and "registry" not in ROLES
    assert "registry" not in local_image_map()
    assert "registry" not in _select_roles(None)
    assert _select_roles(["node", "registry", "redis"]) == ["redis", "registry", "node"]


def test_the_registry_recipe_is_debians_registry_with_busybox_and_a_content_tag() -> None:
    registry = recipes()["registry"]
    assert set(registry.packages) == {"docker-registry", "busybox"}
    assert re.fullmatch(r"farm/registry:[0-9a-f]{12}", registry.content_tag())
    assert registry.image_labels()["farm.image.role"] == "registry"
    assert ("install", "-d", "-m", "0755", "/var/lib/docker-registry") in registry.post_install
    files = {f.path: f for f in registry.files}
    assert set(files) == {"Dockerfile", "config.yml"}


def test_the_dockerfile_serves_the_config_on_5000_with_a_busybox_health_check() -> None:
    files = {f.path: f.data.decode() for f in recipes()["registry"].files}
    dockerfile = files["Dockerfile"]
    assert "FROM ${ROOTFS}" in dockerfile
    assert "COPY config.yml /etc/docker/registry/config.yml" in dockerfile
    assert 'ENTRYPOINT ["/usr/bin/docker-registry"]' in dockerfile
    assert 'CMD ["serve", "/etc/docker/registry/config.yml"]' in dockerfile
    assert "EXPOSE 5000" in dockerfile
    assert '"busybox", "wget"' in dockerfile and "http://127.0.0.1:5000/v2/" in dockerfile


def test_the_config_stores_on_the_filesystem_and_listens_on_5000() -> None:
    # PyYAML is no dependency of the project: the few keys are checked as lines.
    files = {f.path: f.data.decode() for f in recipes()["registry"].files}
    lines = [line.rstrip() for line in files["config.yml"].splitlines()]
    assert "version: 0.1" in lines
    storage = lines.index("storage:")
    assert lines[storage + 1 : storage + 3] == [
        "  filesystem:",
        "    rootdirectory: /var/lib/docker-registry",
    ]
    assert lines[lines.index("http:") + 1] == "  addr: :5000"
    assert lines[lines.index("  delete:") + 1] == "    enabled: false"
    assert "auth:" not in lines  # loopback only; production puts TLS and auth in front


def test_changing_the_registry_config_changes_the_registry_tag_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "imagebuild"
    shutil.copytree(recipes_module.IMAGEBUILD_DIR, copy)
    monkeypatch.setattr(recipes_module, "IMAGEBUILD_DIR", copy)
    before = {role: r.content_tag() for role, r in recipes().items()}
    with (copy / "registry" / "config.yml").open("a") as config:
        config.write("# changed\n")
    after = {role: r.content_tag() for role, r in recipes().items()}
    assert {role for role in after if after[role] != before[role]} == {"registry"}
