"""farm_up / farm_down on the real Docker Engine, Traefik routing, node inventory."""

from __future__ import annotations

import subprocess
import time
import uuid
from dataclasses import replace

import pytest
import requests
from django.conf import settings
from django.urls import reverse

from nodes import platform, routes
from nodes.bootstrap import farm_down, farm_up, secret_value
from nodes.images import image_for
from nodes.inventory import sync_nodes
from nodes.models import Node
from nodes.swarm import (
    MANAGED_LABEL,
    Mount,
    ServiceDef,
    StaleOverlayState,
    SwarmError,
    apply_service,
    client,
    container_health,
    remove_service,
    service_tasks,
    wait_containers_gone,
    wait_converged,
)
from nodes.swarm_reset import delete_orphaned_vxlan_links
from tests.conftest import client_for
from tests.support.farm import ensure_farm, require_engine

pytestmark = [pytest.mark.swarm, pytest.mark.slow]


def managed_objects() -> dict[str, list[str]]:
    cli = client()
    label = {"label": f"{MANAGED_LABEL}=true"}
    return {
        "services": [s.name for s in cli.services.list(filters=label)],
        "networks": [n.name for n in cli.networks.list(filters=label)],
        "secrets": [s.name for s in cli.secrets.list(filters=label)],
        "configs": [c.name for c in cli.configs.list(filters=label)],
    }


def test_farm_up_from_nothing_gives_running_healthy_platform_services():
    require_engine()
    farm_down(purge_data=True)  # the test run's own var dir (scripts/test sets FARM_VAR_DIR)
    assert managed_objects()["services"] == []

    started = time.monotonic()
    report = farm_up(progress=lambda m: None)
    took = time.monotonic() - started
    print(f"\ncold farm_up (images present, empty datadir): {took:.1f} s; {report.timings}")

    cli = client()
    for sdef in platform.service_defs({name: secret_value(name) for name in platform.SECRET_FILES}):
        tasks = [t for t in service_tasks(cli, sdef.name) if t.desired == "running"]
        assert [t.state for t in tasks] == ["running"], (sdef.name, tasks)
        assert container_health(cli, tasks[0].container_id) == "healthy", sdef.name
        spec = cli.services.get(sdef.name).attrs["Spec"]
        assert spec["Labels"]["com.docker.stack.namespace"] == "farm"
        assert spec["TaskTemplate"]["RestartPolicy"]["Condition"] == "any"
        assert spec["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"] > 0
    made = managed_objects()
    assert set(platform.public_networks()) | {"farm-db", "farm-internal"} <= set(made["networks"])
    db_net = cli.networks.get("farm-db").attrs
    assert db_net["Options"].get("encrypted") == "true"
    assert any(c.startswith("farm_prometheus-") for c in made["configs"])
    assert "created service farm_traefik" in report.changes


def test_a_second_farm_up_reports_no_changes():
    ensure_farm()
    again = farm_up(progress=lambda m: None)
    assert again.changes == []
    assert again.no_changes


def test_traefik_routes_by_host_to_a_service_named_in_the_routing_redis():
    ensure_farm()
    cli = client()
    name = f"test-whoami-{uuid.uuid4().hex[:8]}"
    host = f"{name}.localhost"
    # The nginx image answers /healthz on 8080 from its default server.
    sdef = ServiceDef(
        name=name, image=image_for("nginx"), stack=name, networks={platform.public_network(1): []}
    )
    try:
        apply_service(cli, sdef)
        wait_converged(cli, [name], timeout_s=120)
        routes.put(routes.Route(name, host, url=f"http://{name}:8080"))
        url = f"http://127.0.0.1:{settings.FARM_HTTP_PORT}/healthz"
        deadline = time.monotonic() + 30
        response = None
        while time.monotonic() < deadline:
            response = requests.get(url, headers={"Host": host}, timeout=5)
            if response.status_code == 200:
                break
            time.sleep(0.5)
        assert response is not None and response.status_code == 200, response
        other = requests.get(url, headers={"Host": "nobody.localhost"}, timeout=5)
        assert other.status_code == 404, "unknown hosts get Traefik's 404"
    finally:
        routes.remove(name)
        remove_service(cli, name)


def test_an_update_swarm_rolls_back_fails_with_swarms_own_words():
    ensure_farm()
    cli = client()
    name = f"test-rollback-{uuid.uuid4().hex[:8]}"
    sdef = ServiceDef(name=name, image=image_for("nginx"), stack=name)
    try:
        apply_service(cli, sdef)
        wait_converged(cli, [name], timeout_s=120)
        # Docker takes the spec and every task of it is then rejected.
        broken = replace(sdef, mounts=[Mount("relative/dir", "/srv/x", type="bind")])
        assert apply_service(cli, broken) == "updated"
        with pytest.raises(SwarmError) as failed:
            wait_converged(cli, [name], timeout_s=120)
        assert "rollback" in failed.value.message
        assert "invalid bind mount source" in failed.value.message
    finally:
        remove_service(cli, name)


def test_item19_converged_means_the_tasks_of_the_spec_just_written_run():
    """Right after an update, before Swarm has even set UpdateStatus, the old task still
    runs and is healthy: that is not convergence. Checked at once after the update."""
    ensure_farm()
    cli = client()
    name = f"test-converged-{uuid.uuid4().hex[:8]}"
    sdef = ServiceDef(name=name, image=image_for("nginx"), stack=name)
    try:
        apply_service(cli, sdef)
        wait_converged(cli, [name], timeout_s=120)
        broken = replace(sdef, mounts=[Mount("relative/dir", "/srv/x", type="bind")])
        assert apply_service(cli, broken) == "updated"
        with pytest.raises(SwarmError) as failed:
            wait_converged(cli, [name], timeout_s=120)
        assert "rollback" in failed.value.message, failed.value.message
        assert "invalid bind mount source" in failed.value.message
        # What it waited for: tasks of the current spec, which the old one is not.
        again = replace(sdef, env={"FARM_TEST": "changed"})
        assert apply_service(cli, again) == "updated"
        old_running = [t for t in service_tasks(cli, name) if t.state == "running"]
        current = service_tasks(cli, name, up_to_date=True)
        assert old_running and not {t.task_id for t in old_running} & {t.task_id for t in current}
        wait_converged(cli, [name], timeout_s=120)
        running = [t for t in service_tasks(cli, name, up_to_date=True) if t.state == "running"]
        spec_env = cli.api.inspect_task(running[0].task_id)["Spec"]["ContainerSpec"]["Env"]
        assert "FARM_TEST=changed" in spec_env
    finally:
        remove_service(cli, name)


def test_item20_a_stale_vxlan_interface_is_named_with_its_fix_and_the_reset_clears_it():
    """What an earlier swarm left with `swarm leave --force` strands: a VXLAN interface
    of the engine's own naming in the host namespace, holding a VXLAN id that a new
    network is given. Reproduced on the real engine with one such interface."""
    ensure_farm()
    cli = client()
    tag = uuid.uuid4().hex[:8]
    name = f"test-vxlan-{tag}"
    net = cli.networks.create(name, driver="overlay", scope="swarm")
    net.reload()
    vni = int(net.attrs["Options"]["com.docker.network.driver.overlay.vxlanid_list"])
    stray = f"vx-{vni:06x}-{tag[:5]}"
    sdef = ServiceDef(name=name, image=image_for("nginx"), stack=name, networks={name: []})
    subprocess.run(
        ["ip", "link", "add", stray, "type", "vxlan", "id", str(vni), "dstport", "4789"],
        check=True,
    )
    try:
        apply_service(cli, sdef)
        with pytest.raises(StaleOverlayState) as stale:
            wait_converged(cli, [name], timeout_s=60)
        assert "error creating vxlan interface: file exists" in stale.value.message
        assert "manage.py farm_down --reset-engine" in stale.value.message

        assert f"deleted orphaned VXLAN interface {stray}" in delete_orphaned_vxlan_links(print)
        # The next farm_up's services: they start as soon as the id is free again.
        apply_service(cli, replace(sdef, env={"FARM_TEST": "after the reset"}))
        wait_converged(cli, [name], timeout_s=120)
    finally:
        subprocess.run(["ip", "link", "delete", stray], capture_output=True, check=False)
        remove_service(cli, name)
        wait_containers_gone(cli, {name})
        net.remove()


@pytest.mark.django_db
def test_node_sync_shows_the_local_node_with_its_role_and_resources(operator):
    ensure_farm()
    result = sync_nodes()
    assert result["created"] + result["updated"] >= 1
    info = client().info()
    node = Node.objects.get(swarm_id=info["Swarm"]["NodeID"])
    assert node.role == Node.Role.MANAGER and node.is_leader
    assert node.status == Node.Status.READY and node.availability == "active"
    assert int(node.cpus) == info["NCPU"]
    assert node.memory_bytes == info["MemTotal"]
    assert set(node.farm_roles) == {"edge", "worker", "db"}
    assert node.engine_version == info["ServerVersion"]
    page = client_for(operator).get(reverse("node_list"))
    assert page.status_code == 200
    assert f'data-node="{node.hostname}"' in page.content.decode()
    assert "Ready" in page.content.decode()


def test_farm_down_removes_everything_it_made():
    ensure_farm()
    report = farm_down()
    assert any("removed service farm_traefik" in c for c in report.changes)
    assert managed_objects() == {"services": [], "networks": [], "secrets": [], "configs": []}
    volumes = {v.name for v in client().volumes.list()}
    assert platform.PROMETHEUS_VOLUME not in volumes
    labels = client().nodes.list()[0].attrs["Spec"].get("Labels") or {}
    assert not [k for k in labels if k.startswith("farm.role.")]
    # Leave the farm up for whatever runs next.
    ensure_farm()
