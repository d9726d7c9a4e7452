"""Swarm manager quorum, from the Node rows: can the Swarm still change?

Swarm's managers agree through Raft: a change (a service update, a node drain, a
new secret) needs a majority of the managers reachable, ``total // 2 + 1``. With
fewer, running tasks keep running but nothing can be scheduled or changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nodes.models import Node, NodeReachability, NodeRole, NodeStatus


@dataclass(frozen=True)
class Quorum:
    total: int
    reachable: int
    leader: str | None

    @property
    def needed(self) -> int:
        return self.total // 2 + 1

    @property
    def writable(self) -> bool:
        return self.reachable >= self.needed

    @property
    def tolerates(self) -> int:
        """How many more managers may be lost before the quorum is."""
        return max(self.reachable - self.needed, 0)


def quorum(rows: Iterable[Node]) -> Quorum:
    """The managers among ``rows`` (nodes gone from the Swarm do not count)."""
    managers = [n for n in rows if n.role == NodeRole.MANAGER and n.status != NodeStatus.GONE]
    reachable = [n for n in managers if n.reachability == NodeReachability.REACHABLE]
    leader = next((n.hostname for n in reachable if n.is_leader), None)
    return Quorum(total=len(managers), reachable=len(reachable), leader=leader)
