"""The node watcher: asks the Swarm for its nodes every FARM_NODE_WATCH_INTERVAL
seconds (``GET /nodes`` through the failover client, so a dead manager is skipped) and
acts on a node's change of state. Ready → down: the Node rows are synced and a
``node.failover`` operation starts, by its kind's name (the sites app declares it: it
follows the node's sites). Back to ready: the rows are synced and ``on_ready`` is told
(the monitoring app resolves the node's NodeDown alert with it).

It keeps the last state it saw of each node, starting from the Node rows, so a node
that was already down when the watcher started is not failed over again; a second
failover of the same node while one is unfinished is refused by the operation lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from farm.errors import OperationConflict
from farm.models import Operation
from farm.operations import start_operation
from nodes import swarm_nodes
from nodes.inventory import sync_nodes
from nodes.models import Node, NodeStatus
from nodes.node_operations import NODE_TARGET_TYPE

logger = logging.getLogger(__name__)

FAILOVER_KIND = "node.failover"
DOWN_STATES = {NodeStatus.DOWN.value, NodeStatus.DISCONNECTED.value}


@dataclass(frozen=True)
class Transition:
    swarm_id: str
    hostname: str
    before: str
    after: str
    updated_at: str  # the node's UpdatedAt: when Swarm changed its state

    @property
    def went_down(self) -> bool:
        return self.before == NodeStatus.READY and self.after in DOWN_STATES

    @property
    def came_back(self) -> bool:
        return self.before != NodeStatus.READY and self.after == NodeStatus.READY


def swarm_time(value: str) -> float | None:
    """Epoch seconds of a time as Swarm writes it ("2026-12-01T20:00:05.123456789Z":
    nanoseconds, which Python's parser does not take), None if it cannot be read."""
    if not value:
        return None
    head, _, fraction = value.rstrip("Z").partition(".")
    try:
        stamp = datetime.fromisoformat(f"{head}.{(fraction or '0')[:6]:0<6}+00:00")
    except ValueError:
        return None
    return stamp.timestamp()


class NodeWatcher:
    def __init__(self, *, on_ready: Callable[[Node], object] | None = None) -> None:
        self.on_ready = on_ready
        # The failover operation the latest ready -> down started (None: refused).
        self.last_operation: Operation | None = None
        self.states: dict[str, str] = dict(
            Node.objects.exclude(status=NodeStatus.GONE).values_list("swarm_id", "status")
        )

    def poll(self) -> list[Transition]:
        """One look at the Swarm's nodes (SwarmError when no manager answers)."""
        transitions = []
        for attrs in swarm_nodes.list_nodes():
            state = str(attrs.get("Status", {}).get("State", NodeStatus.UNKNOWN))
            before = self.states.get(attrs["ID"])
            self.states[attrs["ID"]] = state
            if before is not None and before != state:
                transitions.append(
                    Transition(
                        attrs["ID"],
                        swarm_nodes.hostname(attrs),
                        before,
                        state,
                        str(attrs.get("UpdatedAt", "")),
                    )
                )
        if transitions:
            sync_nodes()
        for transition in transitions:
            logger.info(
                "node %s: %s → %s", transition.hostname, transition.before, transition.after
            )
            if transition.went_down:
                self.last_operation = self.fail_over(transition)
            elif transition.came_back and self.on_ready is not None:
                node = Node.objects.filter(swarm_id=transition.swarm_id).first()
                if node is not None:
                    self.on_ready(node)
        return transitions

    def fail_over(self, transition: Transition) -> Operation | None:
        node = Node.objects.get(swarm_id=transition.swarm_id)
        now = time.time()
        down_at = swarm_time(transition.updated_at) or now
        logger.info("node %s down; seen %.1f s after Swarm marked it", node.hostname, now - down_at)
        try:
            return start_operation(
                FAILOVER_KIND,
                target_type=NODE_TARGET_TYPE,
                target_id=node.pk,
                target_repr=node.hostname,
                params={"down_at": down_at, "detected_at": now},
            )
        except OperationConflict as exc:
            logger.warning("node %s down, no failover started: %s", node.hostname, exc.message)
            return None
