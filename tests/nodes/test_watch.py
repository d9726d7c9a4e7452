"""Issue 12, C12: the node watcher. A node that goes from ready to down starts exactly
one node.failover operation (with Swarm's down time); down to down does nothing; back
to ready resolves its NodeDown alert (at once by the watcher, and by the minute task).

The Swarm is the fake Docker Engine (tests/fakes/docker_engine.py), asked through the
failover client: the first of two managers is dead."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO

import pytest
from django.core.management import call_command

from farm.models import Operation
from farm.schedules import PERIODIC_TASKS
from monitoring.models import Alert
from monitoring.node_alerts import raise_node_down
from monitoring.tasks import resolve_node_down_alerts
from nodes.inventory import sync_nodes
from nodes.models import Node
from nodes.swarm import reset_client_cache
from nodes.watch import NodeWatcher, swarm_time
from tests.fakes.docker_engine import running_fake_engines
from tests.fakes.docker_swarm import FakeSwarm

pytestmark = pytest.mark.django_db


@pytest.fixture
def swarm(settings) -> Iterator[FakeSwarm]:
    settings.DOCKER_HOST = ""
    settings.FARM_PROCESS_ROLE = "all"
    settings.FARM_DOCKER_TIMEOUT = 5
    reset_client_cache()
    with running_fake_engines(["farm-node-1", "farm-node-2"]) as (one, two):
        two.swarm = one.swarm  # two managers of one swarm
        settings.FARM_DOCKER_HOSTS = [one.url, two.url]
        one.swarm.add_node("farm-node-1", role="manager", leader=True)
        one.swarm.add_node("farm-node-2", role="manager")
        one.swarm.add_node("farm-node-3")
        sync_nodes()
        one.stop()  # the first manager dies: the watcher asks the second
        reset_client_cache()
        yield one.swarm
    reset_client_cache()


def node_id(swarm: FakeSwarm, hostname: str) -> str:
    return next(i for i, n in swarm.nodes.items() if n["Description"]["Hostname"] == hostname)


def failovers() -> list[Operation]:
    return list(Operation.objects.filter(kind="node.failover"))


def test_ready_to_down_starts_exactly_one_failover(swarm):
    watcher = NodeWatcher()
    three = node_id(swarm, "farm-node-3")
    assert watcher.poll() == [] and failovers() == []

    swarm.set_state(three, "down")
    changes = watcher.poll()

    assert [(c.hostname, c.before, c.after) for c in changes] == [("farm-node-3", "ready", "down")]
    (operation,) = failovers()
    node = Node.objects.get(swarm_id=three)
    assert node.status == "down", "the rows were synced"
    assert operation.target_type == "node" and operation.target_id == str(node.pk)
    assert operation.params["down_at"] == swarm_time(swarm.nodes[three]["UpdatedAt"])

    assert watcher.poll() == [], "down → down: nothing"
    assert len(failovers()) == 1


def test_a_second_watcher_sees_no_transition_for_a_node_already_down(swarm):
    swarm.set_state(node_id(swarm, "farm-node-3"), "down")
    NodeWatcher().poll()

    assert NodeWatcher().poll() == [], "it starts from the rows, which say down"
    assert len(failovers()) == 1


def test_a_failover_already_unfinished_is_not_started_again(swarm):
    three = node_id(swarm, "farm-node-3")
    watcher = NodeWatcher()
    swarm.set_state(three, "down")
    watcher.poll()
    swarm.set_state(three, "ready")
    watcher.poll()
    swarm.set_state(three, "down")  # it flaps while the first failover is still queued

    watcher.poll()

    assert len(failovers()) == 1


def test_down_to_ready_resolves_node_down_through_the_command(swarm):
    three = node_id(swarm, "farm-node-3")
    swarm.set_state(three, "down")
    sync_nodes()
    raise_node_down(Node.objects.get(swarm_id=three), ["shop.acme.test"])
    swarm.set_state(three, "ready")
    out = StringIO()

    call_command("watch_nodes", "--once", stdout=out)

    assert "farm-node-3: down → ready" in out.getvalue()
    assert "NodeDown resolved" in out.getvalue()
    assert Alert.objects.get().status == "resolved"
    assert Node.objects.get(swarm_id=three).status == "ready"
    assert failovers() == []


def test_the_minute_task_resolves_node_down_only_for_nodes_ready_again(swarm):
    down, back = (
        Node.objects.get(hostname="farm-node-2"),
        Node.objects.get(hostname="farm-node-3"),
    )
    raise_node_down(down, [])
    raise_node_down(back, [])
    Node.objects.filter(pk=down.pk).update(status="down")

    assert resolve_node_down_alerts() == "1 NodeDown resolved"
    assert Alert.objects.get(node=down).status == "firing"
    assert Alert.objects.get(node=back).status == "resolved"
    task = next(t for t in PERIODIC_TASKS if t.func == "monitoring.tasks.resolve_node_down_alerts")
    assert task.minutes == 1


def test_swarms_nanosecond_times_are_read():
    assert swarm_time("1970-01-01T00:00:05.123456789Z") == pytest.approx(5.123456)
    assert swarm_time("1970-01-01T00:00:05Z") == 5.0
    assert swarm_time("") is None and swarm_time("yesterday") is None
