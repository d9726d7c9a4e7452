"""The local multi-node farm's plan as values (nodes/local_farm.py), without Docker:
the settings the panel drives it with, what goes into farm.env, and which images
each node is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodes import local_farm
from nodes.local_nodes import distribution, shared_files
from nodes.local_nodes.plan import plan_roles

TAGS = {
    role: f"farm/{role}:abc"
    for role in (
        "traefik",
        "mariadb",
        "redis",
        "prometheus",
        "alertmanager",
        "blackbox",
        "restic",
        "wordpress",
        "nginx",
    )
}


def test_three_nodes_are_driven_through_the_managers_sockets_node_1_first(settings) -> None:
    values = local_farm.farm_settings(plan_roles(3), encrypted=False)
    assert values["FARM_DOCKER_HOSTS"] == [
        f"unix:///run/wpfarm-nodes/farm-node-{i}/docker.sock" for i in (1, 2, 3)
    ]
    assert values["FARM_OVERLAY_ENCRYPTION"] == "off"
    # The singletons publish their ports on the db node; the edge answers on node-1.
    assert values["FARM_MARIADB_HOST"] == "10.213.0.11"
    assert values["FARM_SITE_DB_HOST"] == f"10.213.0.11:{settings.FARM_MARIADB_PORT}"
    assert values["FARM_ROUTES_HOST"] == "10.213.0.11"
    assert values["FARM_EDGE_URL"] == f"http://10.213.0.11:{settings.FARM_HTTP_PORT}"
    assert values["FARM_PANEL_URL_FROM_SWARM"] == "http://10.213.0.1:8000"


def test_the_farm_keeps_its_data_apart_from_the_single_node_farm(settings, tmp_path) -> None:
    settings.VAR_DIR = tmp_path
    values = local_farm.farm_settings(plan_roles(3), encrypted=True)
    assert values["FARM_OVERLAY_ENCRYPTION"] == "on"
    for key in ("FARM_MARIADB_DATA", "FARM_PROMETHEUS_TARGETS_DIR", "FARM_SITES_ROOT"):
        assert Path(values[key]).is_relative_to(tmp_path / "farm-nodes"), key
    assert local_farm.panel_settings()["DATABASE_URL"].endswith("farm-nodes/panel.sqlite3")


def test_five_nodes_have_three_managers_and_workers_are_never_clients() -> None:
    hosts = local_farm.farm_settings(plan_roles(5), encrypted=False)["FARM_DOCKER_HOSTS"]
    assert [h.split("/")[-2] for h in hosts] == ["farm-node-1", "farm-node-2", "farm-node-3"]


def test_the_env_file_is_one_line_per_setting_lists_comma_joined(settings, tmp_path) -> None:
    settings.VAR_DIR = tmp_path
    path = local_farm.write_env_file({"FARM_DOCKER_HOSTS": ["unix:///a", "unix:///b"], "X": 1})
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    assert lines == ["FARM_DOCKER_HOSTS=unix:///a,unix:///b", "X=1"]
    assert not path.with_suffix(".tmp").exists()


@pytest.mark.parametrize(
    ("index", "wanted"),
    [
        (1, {"traefik", "mariadb", "redis", "prometheus", "alertmanager", "blackbox", "restic"}),
        (2, {"traefik", "wordpress", "nginx", "redis", "restic"}),
    ],
)
def test_each_node_is_given_only_the_images_its_roles_run(index: int, wanted: set[str]) -> None:
    spec = plan_roles(3)[index - 1]
    assert set(distribution.images_for(spec, TAGS)) == {TAGS[r] for r in wanted}


def test_a_single_node_gets_every_image() -> None:
    assert set(distribution.images_for(plan_roles(1)[0], TAGS)) == set(TAGS.values())


def test_farm_down_finds_every_checkouts_gluster_mount_and_nothing_else() -> None:
    mounts = (
        "10.213.0.11:/farm-sites /work/main/var/test/farm-nodes/sites fuse.glusterfs rw 0 0\n"
        "10.213.0.12:/farm-sites /tmp/ci-A/var/test/farm-nodes/sites fuse.glusterfs rw 0 0\n"
        "10.9.9.9:/farm-sites /mnt/elsewhere fuse.glusterfs rw 0 0\n"
        "10.213.0.11:/other /mnt/other fuse.glusterfs rw 0 0\n"
        "overlay / overlay rw 0 0\n"
    )
    assert shared_files.farm_mounts(mounts) == [
        "/work/main/var/test/farm-nodes/sites",
        "/tmp/ci-A/var/test/farm-nodes/sites",
    ]
