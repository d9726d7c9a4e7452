"""Issue 12, C11: the drain check. A task on a node to be drained needs another node
that is ready, active and meets its placement constraints, matched as Swarm's scheduler
matches them; otherwise the drain is refused with the service and what it needs."""

from __future__ import annotations

from typing import Any

import pytest

from nodes.swarm_client import SwarmError
from nodes.swarm_nodes import drain_refusal, matches, stranded_services


def node(
    node_id: str,
    *,
    role: str = "worker",
    state: str = "ready",
    availability: str = "active",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "ID": node_id,
        "Spec": {"Role": role, "Availability": availability, "Labels": labels or {}},
        "Description": {
            "Hostname": f"farm-{node_id}",
            "Platform": {"OS": "linux", "Architecture": "x86_64"},
            "Engine": {"Labels": {"zone": "a"}},
        },
        "Status": {"State": state},
    }


def task(service: str, node_id: str, *constraints: str, desired: str = "running") -> dict[str, Any]:
    return {
        "ServiceID": service,
        "NodeID": node_id,
        "DesiredState": desired,
        "Status": {"State": "running"},
        "Spec": {"Placement": {"Constraints": list(constraints)}},
    }


DB = "node.labels.farm.role.db == true"
NAMES = {"db": "farm_mariadb", "web": "wp-3_nginx", "mgr": "farm_panel-worker"}


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ("node.labels.farm.role.db == true", True),
        ("node.labels.farm.role.db != true", False),
        ("node.labels.missing == true", False),
        ("node.labels.missing != true", True),
        ("node.role == manager", True),
        ("node.role==Manager", True),
        ("node.role != manager", False),
        ("node.hostname == farm-node-1", True),
        ("node.id == node-1", True),
        ("node.platform.os == linux", True),
        ("node.platform.arch == aarch64", False),
        ("engine.labels.zone == a", True),
    ],
)
def test_constraints_match_as_swarm_matches_them(constraint, expected):
    manager = node("node-1", role="manager", labels={"farm.role.db": "true"})
    assert matches(constraint, manager) is expected


def test_an_unreadable_constraint_is_an_error_not_a_guess():
    with pytest.raises(SwarmError, match=r"Unknown placement constraint attribute 'node\.color'"):
        matches("node.color == red", node("n"))
    with pytest.raises(SwarmError, match="Cannot read the placement constraint"):
        matches("node.role ~ manager", node("n"))


def test_a_task_that_another_ready_active_node_can_run_is_not_stranded():
    nodes = [node("node-1"), node("node-2")]
    assert stranded_services("node-1", nodes, [task("web", "node-1")], NAMES) == []


def test_down_paused_and_drained_nodes_are_no_place_to_go():
    nodes = [
        node("node-1", labels={"farm.role.db": "true"}),
        node("node-2", labels={"farm.role.db": "true"}, state="down"),
        node("node-3", labels={"farm.role.db": "true"}, availability="pause"),
        node("node-4", labels={"farm.role.db": "true"}, availability="drain"),
        node("node-5"),  # ready and active, but not a db node
    ]
    stranded = stranded_services("node-1", nodes, [task("db", "node-1", DB)], NAMES)

    assert [(s.service, s.needs) for s in stranded] == [("farm_mariadb", "db role")]
    assert drain_refusal("farm-node-1", stranded) == (
        "farm-node-1 runs farm_mariadb (db role), which no other node can run: draining it "
        "would stop it. Add or activate a node that meets the constraints first."
    )


def test_only_live_tasks_on_the_node_count_and_each_service_is_named_once():
    nodes = [node("node-1", role="manager"), node("node-2")]
    tasks = [
        task("mgr", "node-1", "node.role == manager"),
        task("mgr", "node-1", "node.role == manager"),
        task("db", "node-1", DB, desired="shutdown"),  # an old task, being stopped
        task("db", "node-2", DB),  # another node's
    ]
    stranded = stranded_services("node-1", nodes, tasks, NAMES)

    assert [(s.service, s.needs) for s in stranded] == [
        ("farm_panel-worker", "node.role == manager")
    ]
    assert drain_refusal("farm-node-1", []) == ""
