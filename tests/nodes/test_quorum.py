"""Manager quorum: the Swarm can change while a majority of its managers is reachable."""

from __future__ import annotations

import pytest

from nodes.models import Node
from nodes.quorum import quorum


def manager(name: str, reachability: str = "reachable", **fields: object) -> Node:
    values: dict[str, object] = {"status": "ready", **fields}
    return Node(hostname=name, role="manager", reachability=reachability, **values)


def worker(name: str) -> Node:
    return Node(hostname=name, role="worker", status="ready")


@pytest.mark.parametrize(
    ("reachable", "total", "needed", "writable"),
    [(3, 3, 2, True), (2, 3, 2, True), (1, 3, 2, False), (1, 1, 1, True), (0, 1, 1, False)],
)
def test_a_majority_of_the_managers_keeps_the_quorum(reachable, total, needed, writable):
    rows = [
        manager(f"node-{i}", "reachable" if i <= reachable else "unreachable")
        for i in range(1, total + 1)
    ]
    q = quorum([*rows, worker("w1"), worker("w2")])
    assert (q.total, q.reachable, q.needed, q.writable) == (total, reachable, needed, writable)


def test_no_managers_is_no_quorum():
    q = quorum([worker("w1")])
    assert (q.total, q.reachable, q.needed, q.writable, q.leader) == (0, 0, 1, False, None)
    assert quorum([]).writable is False


def test_the_leader_is_named_and_an_unknown_or_gone_manager_does_not_count():
    rows = [
        manager("node-1", is_leader=True),
        manager("node-2", "unknown"),
        manager("node-3"),
        manager("node-4", status="gone"),
    ]
    q = quorum(rows)
    assert (q.total, q.reachable, q.needed, q.writable, q.leader) == (3, 2, 2, True, "node-1")
    assert q.tolerates == 0


def test_an_unreachable_leader_is_not_named():
    q = quorum([manager("node-1", "unreachable", is_leader=True), manager("node-2")])
    assert q.leader is None and not q.writable
