"""Issue 12, C11/C12: drain, activate, remove and fail over a Swarm node, as operations.

The Swarm is a fake Docker Engine on a unix socket (tests/fakes/docker_engine.py and
docker_swarm.py) that the real docker SDK client talks to; the edge is a fake Traefik
that routes by Host (tests/fakes/edge.py). Operations run through farm.runner."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from farm.models import Operation, OperationStatus
from farm.operations import start_operation
from farm.runner import run_operation
from monitoring.models import Alert
from nodes.inventory import sync_nodes
from nodes.models import Node
from nodes.swarm import reset_client_cache
from sites.models import Site, SiteOutage
from tests.fakes.docker_engine import running_fake_engines
from tests.fakes.docker_swarm import FakeSwarm
from tests.fakes.edge import FakeEdge, running_fake_edge

pytestmark = pytest.mark.django_db

DB = "node.labels.farm.role.db == true"
WORKER = "node.labels.farm.role.worker == true"


@dataclass
class Farm:
    swarm: FakeSwarm
    edge: FakeEdge
    site: Site
    ids: dict[str, str]  # hostname -> Swarm node id

    def node(self, hostname: str) -> Node:
        return Node.objects.get(hostname=hostname)


@pytest.fixture
def farm(settings, tenant) -> Iterator[Farm]:
    """node-1: the manager with the db role (MariaDB); node-2 and node-3: workers, and
    one site whose nginx runs on node-2, answering through the edge."""
    settings.DOCKER_HOST = ""
    settings.FARM_PROCESS_ROLE = "all"
    settings.FARM_DOCKER_TIMEOUT = 5
    settings.FARM_OUTAGE_PROBE_EVERY = 0.05
    settings.FARM_NODE_MOVE_TIMEOUT = 3
    settings.FARM_OUTAGE_TIMEOUT = 3
    reset_client_cache()
    with running_fake_engines(["farm-node-1"]) as (engine,), running_fake_edge() as edge:
        settings.FARM_DOCKER_HOSTS = [engine.url]
        settings.FARM_EDGE_URL = edge.url
        swarm = engine.swarm
        ids = {
            "farm-node-1": swarm.add_node(
                "farm-node-1",
                role="manager",
                leader=True,
                labels={"farm.role.db": "true", "farm.role.edge": "true"},
            ),
            "farm-node-2": swarm.add_node("farm-node-2", labels={"farm.role.worker": "true"}),
            "farm-node-3": swarm.add_node("farm-node-3", labels={"farm.role.worker": "true"}),
        }
        swarm.add_task(swarm.add_service("farm_mariadb", constraints=[DB]), ids["farm-node-1"])
        site = Site.objects.create(tenant=tenant, domain="shop.acme.test", status="active")
        nginx = swarm.add_service(
            f"wp-{site.pk}_nginx", constraints=[WORKER], stack=site.stack_name
        )
        swarm.add_task(nginx, ids["farm-node-2"])
        edge.route(site.domain, "/", 200, "hello")
        sync_nodes()
        yield Farm(swarm, edge, site, ids)
    reset_client_cache()


def start(kind: str, node: Node, **params: object) -> Operation:
    return start_operation(
        kind, target_type="node", target_id=node.pk, target_repr=node.hostname, params=params
    )


def log_of(operation: Operation, step: str) -> str:
    return operation.steps.get(name=step).log


# -- drain -------------------------------------------------------------------------------


def test_a_drain_is_refused_when_a_task_has_no_other_node_and_nothing_changes(farm):
    operation = start("node.drain", farm.node("farm-node-1"))

    assert run_operation(operation.pk) == OperationStatus.FAILED

    operation.refresh_from_db()
    assert "farm-node-1 runs farm_mariadb (db role), which no other node can run" in (
        operation.error
    )
    assert farm.swarm.updates == [], "the node was not touched"
    assert farm.node("farm-node-1").availability == "active"


def test_a_drain_is_refused_when_the_only_other_node_that_could_run_it_is_drained(farm):
    farm.swarm.nodes[farm.ids["farm-node-3"]]["Spec"]["Availability"] = "drain"
    operation = start("node.drain", farm.node("farm-node-2"))

    assert run_operation(operation.pk) == OperationStatus.FAILED

    operation.refresh_from_db()
    name = f"wp-{farm.site.pk}_nginx"
    assert f"farm-node-2 runs {name} (worker role), which no other node can run" in (
        operation.error
    )


def test_a_drain_moves_the_sites_and_records_how_long_each_was_unreachable(farm):
    farm.swarm.drain_moves_to = farm.ids["farm-node-3"]
    farm.swarm.moved_state = "starting"
    farm.edge.route(farm.site.domain, "/", 502, "Bad Gateway")  # its task is moving

    def started() -> None:  # after 3 failed GETs the new task runs and the site answers
        deadline = time.monotonic() + 10
        while len(farm.edge.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        farm.swarm.start_tasks()
        farm.edge.route(farm.site.domain, "/", 200, "hello")

    threading.Thread(target=started, daemon=True).start()
    operation = start("node.drain", farm.node("farm-node-2"))

    assert run_operation(operation.pk) == OperationStatus.SUCCEEDED, Operation.objects.get().error

    operation.refresh_from_db()
    assert operation.state["sites"] == [
        {"id": farm.site.pk, "domain": "shop.acme.test", "stack": farm.site.stack_name}
    ]
    outage = SiteOutage.objects.get()
    assert (outage.site, outage.node, outage.cause) == (
        farm.site,
        farm.node("farm-node-2"),
        "drain",
    )
    assert outage.operation_id == operation.pk and outage.moved_to == "farm-node-3"
    # 3 failed GETs, FARM_OUTAGE_PROBE_EVERY (0.05 s) apart, then the answer
    assert outage.unreachable_s is not None and 0.1 <= outage.unreachable_s < 3
    assert outage.rto_s is None and outage.answered_at is not None
    line = log_of(operation, "wait-sites-answer")
    assert re.search(rf"wp-{farm.site.pk} farm-node-2 → farm-node-3, unreachable \d+\.\d s", line)
    assert farm.swarm.nodes[farm.ids["farm-node-2"]]["Spec"]["Availability"] == "drain"
    assert farm.node("farm-node-2").availability == "drain"


def test_a_drain_waits_for_the_replacements_swarm_has_not_made_yet(farm):
    """Swarm stops a drained node's tasks at once and makes their replacements a moment
    later: in between nothing runs on the node and nothing is starting elsewhere, which
    is not "moved"."""
    farm.swarm.drain_replaces_later = True
    placed_at: list[float] = []

    def orchestrator() -> None:
        deadline = time.monotonic() + 10
        node = farm.swarm.nodes[farm.ids["farm-node-2"]]
        while node["Spec"].get("Availability") != "drain" and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        farm.swarm.place_later(farm.ids["farm-node-3"])
        placed_at.append(time.monotonic())

    threading.Thread(target=orchestrator, daemon=True).start()
    operation = start("node.drain", farm.node("farm-node-2"))

    assert run_operation(operation.pk) == OperationStatus.SUCCEEDED, Operation.objects.get().error

    operation.refresh_from_db()
    assert placed_at, "the drain finished before its tasks were placed again"
    assert operation.state["moved_to"] == {str(farm.site.pk): ["farm-node-3"]}


def test_setting_the_availability_twice_changes_the_node_once(farm):
    node = farm.node("farm-node-2")
    first = start("node.activate", node)
    assert run_operation(first.pk) == OperationStatus.SUCCEEDED
    assert farm.swarm.updates == [], "it was active already"
    assert "farm-node-2 was already active" in log_of(first, "set-active")

    farm.swarm.nodes[farm.ids["farm-node-2"]]["Spec"]["Availability"] = "drain"
    again = start("node.activate", node)
    assert run_operation(again.pk) == OperationStatus.SUCCEEDED
    third = start("node.activate", node)
    assert run_operation(third.pk) == OperationStatus.SUCCEEDED

    assert [spec["Availability"] for _, spec in farm.swarm.updates] == ["active"]
    spec = farm.swarm.updates[0][1]
    assert spec["Labels"] == {"farm.role.worker": "true"}, "the whole spec is written back"
    assert "farm-node-2 set active" in log_of(again, "set-active")


def test_rolling_back_a_drain_activates_the_node(farm):
    farm.swarm.drain_moves_to = farm.ids["farm-node-3"]
    farm.edge.route(farm.site.domain, "/", 404, "404 page not found\n")  # it never answers
    operation = start("node.drain", farm.node("farm-node-2"))
    assert run_operation(operation.pk) == OperationStatus.FAILED
    assert "shop.acme.test (HTTP 404)" in Operation.objects.get().error

    from farm.operations import roll_back_operation

    roll_back_operation(operation)
    assert run_operation(operation.pk) == OperationStatus.ROLLED_BACK
    assert farm.swarm.nodes[farm.ids["farm-node-2"]]["Spec"]["Availability"] == "active"
    assert farm.node("farm-node-2").availability == "active"


# -- remove ------------------------------------------------------------------------------


def test_an_active_node_is_not_removed(farm):
    operation = start("node.remove", farm.node("farm-node-3"))

    assert run_operation(operation.pk) == OperationStatus.FAILED
    assert "farm-node-3 is ready and active: drain it first." in Operation.objects.get().error
    assert farm.swarm.removed == []


def test_a_drained_idle_worker_is_removed(farm):
    farm.swarm.nodes[farm.ids["farm-node-3"]]["Spec"]["Availability"] = "drain"
    sync_nodes()
    operation = start("node.remove", farm.node("farm-node-3"))

    assert run_operation(operation.pk) == OperationStatus.SUCCEEDED
    assert farm.swarm.removed == [farm.ids["farm-node-3"]]
    assert farm.node("farm-node-3").status == "gone"
    assert operation.steps.get(name="demote").status == "skipped"


def test_a_down_manager_is_demoted_then_removed_and_the_quorum_is_kept(farm):
    two = farm.swarm.add_node("farm-node-4", role="manager")
    farm.swarm.add_node("farm-node-5", role="manager")
    farm.swarm.set_state(two, "down")
    sync_nodes()
    operation = start("node.remove", Node.objects.get(swarm_id=two))

    assert run_operation(operation.pk) == OperationStatus.SUCCEEDED, Operation.objects.get().error
    assert [(n, s["Role"]) for n, s in farm.swarm.updates] == [(two, "worker")]
    assert farm.swarm.removed == [two]


def test_removing_a_reachable_manager_is_refused_when_the_quorum_would_be_lost(farm):
    four = farm.swarm.add_node("farm-node-4", role="manager", availability="drain")
    five = farm.swarm.add_node("farm-node-5", role="manager")
    farm.swarm.set_state(five, "down")  # 3 managers, 2 reachable: one more lost is too many
    sync_nodes()
    operation = start("node.remove", Node.objects.get(swarm_id=four))

    assert run_operation(operation.pk) == OperationStatus.FAILED
    error = Operation.objects.get().error
    assert "Removing farm-node-4 would lose the managers' quorum" in error
    assert "1 of 2 reachable, 2 needed" in error
    assert farm.swarm.updates == [] and farm.swarm.removed == []


# -- failover ----------------------------------------------------------------------------


def test_a_failover_raises_node_down_and_records_each_sites_rto(farm):
    farm.swarm.set_state(farm.ids["farm-node-2"], "down")  # its task is still listed
    sync_nodes()
    node = farm.node("farm-node-2")
    down_at = time.time() - 5
    operation = start("node.failover", node, down_at=down_at)

    assert run_operation(operation.pk) == OperationStatus.SUCCEEDED, Operation.objects.get().error

    alert = Alert.objects.get()
    assert (alert.fingerprint, alert.severity, alert.status) == (
        f"node-down:{node.swarm_id}",
        "critical",
        "firing",
    )
    assert alert.node == node and "shop.acme.test" in alert.description
    outage = SiteOutage.objects.get()
    assert outage.cause == "node_down" and outage.node == node
    assert outage.rto_s is not None and 5 <= outage.rto_s < 8
    assert outage.started_at.timestamp() == pytest.approx(down_at, abs=0.01), "Swarm's down time"
    assert "RTO" in log_of(operation, "wait-sites-answer")


def test_raising_node_down_twice_keeps_one_firing_alert(farm):
    farm.swarm.set_state(farm.ids["farm-node-2"], "down")
    sync_nodes()
    node = farm.node("farm-node-2")
    first = start("node.failover", node, down_at=time.time())
    assert run_operation(first.pk) == OperationStatus.SUCCEEDED
    second = start("node.failover", node, down_at=time.time())
    assert run_operation(second.pk) == OperationStatus.SUCCEEDED

    assert Alert.objects.count() == 1
    assert Alert.objects.get().status == "firing"
    assert SiteOutage.objects.count() == 2, "one row per site and operation"
