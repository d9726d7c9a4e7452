"""The Nodes page (operators only): the managers' quorum, and per node its sites, what
is reserved of its resources, its roles and availability; plus what the sync reads."""

from __future__ import annotations

import re
from datetime import timedelta
from itertools import count
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from nodes.inventory import node_fields, sync_nodes
from nodes.models import Node
from tests.conftest import client_for

numbers = count(1)


def swarm_node(
    node_id: str,
    hostname: str,
    *,
    role: str = "manager",
    reachability: str = "reachable",
    leader: bool = False,
    state: str = "ready",
    message: str = "",
) -> dict[str, Any]:
    """A node as ``GET /nodes`` returns it."""
    attrs: dict[str, Any] = {
        "ID": node_id,
        "Spec": {"Role": role, "Availability": "active", "Labels": {"farm.role.worker": "true"}},
        "Description": {
            "Hostname": hostname,
            "Resources": {"NanoCPUs": 2_000_000_000, "MemoryBytes": 4 * 1024**3},
            "Engine": {"EngineVersion": "29.0.0"},
        },
        "Status": {"State": state, "Addr": "10.0.0.1", "Message": message},
    }
    if role == "manager":
        attrs["ManagerStatus"] = {"Reachability": reachability, "Addr": "10.0.0.1:2377"}
        if leader:
            attrs["ManagerStatus"]["Leader"] = True
    return attrs


def fake_swarm(nodes: list[dict[str, Any]]) -> mock.MagicMock:
    docker = mock.MagicMock()
    docker.api.nodes.return_value = nodes
    docker.api.tasks.return_value = []
    return docker


def add_node(name: str, role: str = "worker", **fields: object) -> Node:
    values: dict[str, object] = {
        "status": "ready",
        "reachability": "reachable" if role == "manager" else "",
        "cpus": 2,
        "memory_bytes": 4 * 1024**3,
        **fields,
    }
    return Node.objects.create(
        swarm_id=f"id-{name}-{next(numbers)}", hostname=name, role=role, **values
    )


def test_the_sync_reads_a_managers_reachability_and_leadership_and_a_workers_has_none():
    leader = node_fields(swarm_node("a", "node-1", leader=True))
    assert (leader["role"], leader["reachability"], leader["is_leader"]) == (
        "manager",
        "reachable",
        True,
    )
    lost = node_fields(swarm_node("b", "node-2", reachability="unreachable", message="heartbeat"))
    assert (lost["reachability"], lost["is_leader"], lost["status_message"]) == (
        "unreachable",
        False,
        "heartbeat",
    )
    odd = node_fields(swarm_node("c", "node-3", reachability="something-new"))
    assert odd["reachability"] == "unknown"
    assert node_fields(swarm_node("d", "w-1", role="worker"))["reachability"] == ""


@pytest.mark.django_db
def test_status_changed_at_moves_only_when_the_status_changes():
    ready = [swarm_node("a", "node-1", leader=True)]
    with mock.patch("nodes.inventory.client", return_value=fake_swarm(ready)):
        sync_nodes()
    node = Node.objects.get(swarm_id="a")
    first = node.status_changed_at
    assert first is not None
    Node.objects.filter(pk=node.pk).update(status_changed_at=first - timedelta(hours=1))
    with mock.patch("nodes.inventory.client", return_value=fake_swarm(ready)):
        sync_nodes()
    node.refresh_from_db()
    assert node.status_changed_at == first - timedelta(hours=1), "same status: unchanged"
    down = [swarm_node("a", "node-1", state="down", reachability="unreachable")]
    with mock.patch("nodes.inventory.client", return_value=fake_swarm(down)):
        sync_nodes()
    node.refresh_from_db()
    assert node.status == "down" and node.reachability == "unreachable"
    assert node.status_changed_at is not None and node.status_changed_at >= first
    with mock.patch("nodes.inventory.client", return_value=fake_swarm([])):
        sync_nodes()
    node.refresh_from_db()
    assert node.status == "gone" and node.status_changed_at > first


@pytest.mark.django_db
def test_an_operator_sees_the_quorum_kept_and_each_nodes_load(operator):
    add_node("node-1", "manager", is_leader=True)
    add_node("node-2", "manager")
    add_node("node-3", "manager", reachability="unreachable", status="down")
    add_node(
        "node-4",
        reserved_cpus=0.5,
        reserved_memory_bytes=1024**3,
        seen_site_ids=[3, 4, 9],
        farm_roles=["worker"],
        availability="drain",
    )
    page = client_for(operator).get(reverse("node_list"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Managers 2 of 3 reachable, quorum kept (needs 2), leader node-1" in body
    assert 'data-quorum="kept"' in body
    assert 'data-sites="3"' in body
    assert "0.50 / 2" in body and "1.0 / 4.0 GiB" in body
    assert "Drained" in body and "(unreachable)" in body


@pytest.mark.django_db
def test_a_lost_quorum_is_a_warning_that_the_swarm_cannot_change(operator):
    add_node("node-1", "manager", is_leader=True, reachability="unreachable")
    add_node("node-2", "manager", reachability="unreachable")
    add_node("node-3", "manager")
    body = client_for(operator).get(reverse("node_list")).content.decode()
    assert "Managers 1 of 3 reachable, quorum LOST (needs 2), no leader" in body
    assert 'role="alert"' in body and "the Swarm cannot change" in body
    assert "quorum kept" not in body


@pytest.mark.django_db
def test_the_htmx_refresh_carries_the_quorum_line(operator):
    add_node("node-1", "manager", is_leader=True)
    partial = client_for(operator).get(reverse("node_list"), headers={"HX-Request": "true"})
    body = partial.content.decode()
    assert "Managers 1 of 1 reachable, quorum kept (needs 1), leader node-1" in body
    assert "<h1>" not in body


@pytest.mark.django_db
def test_tenants_are_refused_and_the_page_is_get_only(owner, member, outsider, operator):
    add_node("node-1", "manager", is_leader=True)
    for user in (owner, member, outsider):
        assert client_for(user).get(reverse("node_list")).status_code == 403
    assert client_for(operator).post(reverse("node_list")).status_code == 405


@pytest.mark.django_db
def test_the_page_costs_the_same_queries_however_many_nodes(operator):
    client = client_for(operator)
    add_node("node-1", "manager", is_leader=True)
    client.get(reverse("node_list"))  # the first page of a session costs a few more

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("node_list")).status_code == 200
        return len(captured.captured_queries)

    small = queries()
    for n in range(2, 30):
        add_node(f"node-{n}", "manager" if n <= 5 else "worker", seen_site_ids=[n])
    assert queries() == small
    assert Node.objects.count() == 29


def site_task(node_id: str, stack: str, memory_mb: int) -> dict[str, Any]:
    """A running task as ``GET /tasks`` returns it, with its stack label and reservation."""
    return {
        "NodeID": node_id,
        "Status": {"State": "running"},
        "Spec": {
            "Resources": {"Reservations": {"MemoryBytes": memory_mb * 1024**2}},
            "ContainerSpec": {"Labels": {"com.docker.stack.namespace": stack}},
        },
    }


def site_counts(body: str) -> dict[str, str]:
    rows = re.findall(r'<tr data-node="([^"]+)">.*?data-sites="(\d+)"', body, flags=re.S)
    return dict(rows)


@pytest.mark.django_db
def test_each_workers_row_counts_the_sites_its_tasks_belong_to(operator):
    """The local 3-node farm: node-1 (edge, db) runs the platform, the two workers run
    the sites; a site whose services landed on both counts on both."""
    nodes = [
        swarm_node("a", "farm-node-1", leader=True),
        swarm_node("b", "farm-node-2"),
        swarm_node("c", "farm-node-3"),
    ]
    nodes[0]["Spec"]["Labels"] = {"farm.role.edge": "true", "farm.role.db": "true"}
    docker = fake_swarm(nodes)
    docker.api.tasks.return_value = [
        site_task("a", "farm", 512),
        site_task("b", "wp-3", 96),
        site_task("b", "wp-3", 16),
        site_task("b", "wp-4", 96),
        site_task("c", "wp-4", 16),
        site_task("c", "wp-5", 96),
        site_task("c", "wp-5", 16),
        site_task("c", "wp-6", 96),
    ]
    with mock.patch("nodes.inventory.client", return_value=docker):
        sync_nodes()
    body = client_for(operator).get(reverse("node_list")).content.decode()
    assert site_counts(body) == {"farm-node-1": "0", "farm-node-2": "2", "farm-node-3": "3"}

    # farm-node-3 leaves the Swarm: its row stays for history, with no sites.
    docker.api.nodes.return_value = nodes[:2]
    docker.api.tasks.return_value = docker.api.tasks.return_value[:4]
    with mock.patch("nodes.inventory.client", return_value=docker):
        sync_nodes()
    gone = Node.objects.get(swarm_id="c")
    assert (gone.status, gone.seen_site_ids, gone.reserved_memory_bytes) == ("gone", [], 0)
    body = client_for(operator).get(reverse("node_list")).content.decode()
    assert site_counts(body) == {"farm-node-1": "0", "farm-node-2": "2", "farm-node-3": "0"}


@pytest.mark.django_db
def test_a_node_removed_by_the_panel_counts_no_sites_before_the_next_sync(operator):
    # node.remove marks the row gone itself; its last sync's sites are history.
    add_node("farm-node-3", status="gone", seen_site_ids=[4, 5])
    body = client_for(operator).get(reverse("node_list")).content.decode()
    assert site_counts(body) == {"farm-node-3": "0"}
