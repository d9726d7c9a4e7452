"""The Swarm part of the fake Docker Engine (tests/fakes/docker_engine.py): its nodes,
services and tasks, as a manager's Engine API 1.41 answers for them.

    GET    /nodes, /nodes/<id>          the nodes (filters: id, role)
    POST   /nodes/<id>/update?version=N the whole spec at its version, else "out of sequence"
    DELETE /nodes/<id>?force=           refused for a manager, or a node not down unforced
    GET    /tasks                       filters: node, service, desired-state
    GET    /services

Several fake engines of one swarm share one FakeSwarm. Draining a node reschedules its
tasks onto ``drain_moves_to`` (when set), as the Swarm's orchestrator would.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

STACK_LABEL = "com.docker.stack.namespace"
Answer = tuple[int, Any]


def _stamp(counter: int) -> str:
    return f"2026-12-01T20:00:{counter % 60:02d}.123456789Z"


@dataclass
class FakeSwarm:
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id
    services: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id
    tasks: list[dict[str, Any]] = field(default_factory=list)
    updates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (node id, spec)
    removed: list[str] = field(default_factory=list)
    drain_moves_to: str | None = None
    moved_state: str = "running"  # the state of a task drain_moves_to started
    # A drain only stops the node's tasks; their replacements come with place_later().
    drain_replaces_later: bool = False
    _stopped: list[str] = field(default_factory=list)  # service ids a drain left unplaced
    _clock: int = 0

    # -- what a test sets up ---------------------------------------------------------
    def add_node(
        self,
        hostname: str,
        *,
        role: str = "worker",
        state: str = "ready",
        availability: str = "active",
        labels: dict[str, str] | None = None,
        leader: bool = False,
    ) -> str:
        node_id = f"{hostname}-{secrets.token_hex(6)}"
        attrs: dict[str, Any] = {
            "ID": node_id,
            "Version": {"Index": 10},
            "CreatedAt": _stamp(0),
            "UpdatedAt": _stamp(0),
            "Spec": {"Labels": labels or {}, "Role": role, "Availability": availability},
            "Description": {
                "Hostname": hostname,
                "Platform": {"Architecture": "x86_64", "OS": "linux"},
                "Resources": {"NanoCPUs": 2_000_000_000, "MemoryBytes": 24 * 1024**3},
                "Engine": {"EngineVersion": "20.10.24+dfsg1", "Labels": {}},
            },
            "Status": {"State": state, "Addr": "10.213.0.11"},
        }
        if role == "manager":
            attrs["ManagerStatus"] = {
                "Leader": leader,
                "Reachability": "reachable" if state == "ready" else "unreachable",
                "Addr": "10.213.0.11:2377",
            }
        self.nodes[node_id] = attrs
        return node_id

    def add_service(
        self, name: str, *, constraints: list[str] | None = None, stack: str = ""
    ) -> str:
        service_id = secrets.token_hex(12)
        labels = {STACK_LABEL: stack} if stack else {}
        self.services[service_id] = {
            "ID": service_id,
            "Version": {"Index": 20},
            "Spec": {
                "Name": name,
                "Labels": labels,
                "TaskTemplate": {
                    "ContainerSpec": {"Image": "farm/nginx", "Labels": labels},
                    "Placement": {"Constraints": constraints or []},
                },
                "Mode": {"Replicated": {"Replicas": 1}},
            },
        }
        return service_id

    def add_task(self, service_id: str, node_id: str, *, state: str = "running") -> dict[str, Any]:
        template = self.services[service_id]["Spec"]["TaskTemplate"]
        task = {
            "ID": secrets.token_hex(12),
            "ServiceID": service_id,
            "NodeID": node_id,
            "Spec": json.loads(json.dumps(template)),
            "Status": {"State": state, "Message": state},
            "DesiredState": "running" if state in ("running", "starting") else "shutdown",
        }
        self.tasks.append(task)
        return task

    def set_state(self, node_id: str, state: str) -> None:
        """The node goes down (or comes back), as the managers see it."""
        self._clock += 1
        node = self.nodes[node_id]
        node["Status"]["State"] = state
        node["UpdatedAt"] = _stamp(self._clock)
        if "ManagerStatus" in node:
            node["ManagerStatus"]["Reachability"] = (
                "reachable" if state == "ready" else "unreachable"
            )

    def move_tasks(self, from_node: str, to_node: str, *, state: str = "running") -> None:
        """Swarm reschedules: each live task on ``from_node`` is shut down there and
        started again on ``to_node`` (in ``state``: "starting" is not running yet)."""
        for task in list(self.tasks):
            if task["NodeID"] == from_node and task["DesiredState"] == "running":
                task["DesiredState"] = "shutdown"
                task["Status"] = {"State": "shutdown", "Message": "shutdown"}
                self.add_task(task["ServiceID"], to_node, state=state)

    def place_later(self, to_node: str) -> None:
        """The orchestrator catches up: what a drain stopped runs on ``to_node``."""
        for service_id in self._stopped:
            self.add_task(service_id, to_node)
        self._stopped.clear()

    def start_tasks(self) -> None:
        """Every task still starting now runs."""
        for task in self.tasks:
            if task["Status"]["State"] == "starting":
                task["Status"] = {"State": "running", "Message": "started"}

    # -- the API ------------------------------------------------------------------
    def answer(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> Answer | None:
        """What the engine answers, or None for a path that is not the Swarm's."""
        filters = json.loads(query.get("filters", ["{}"])[0])
        if method == "GET" and path == "/nodes":
            return 200, self._list_nodes(filters)
        if path.startswith("/nodes/"):
            node_id, _, action = path.removeprefix("/nodes/").partition("/")
            node = self.nodes.get(node_id)
            if node is None:
                return 404, {"message": f"node {node_id} not found"}
            if method == "GET" and not action:
                return 200, node
            if method == "POST" and action == "update":
                return self._update_node(node, int(query.get("version", ["0"])[0]), body)
            if method == "DELETE" and not action:
                return self._remove_node(node, query.get("force", ["false"])[0].lower() == "true")
        if method == "GET" and path == "/tasks":
            return 200, self._list_tasks(filters)
        if method == "GET" and path == "/services":
            return 200, list(self.services.values())
        return None

    def _list_nodes(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        return [
            n
            for n in self.nodes.values()
            if all(
                (key == "id" and n["ID"] in want) or (key == "role" and n["Spec"]["Role"] in want)
                for key, want in filters.items()
            )
        ]

    def _list_tasks(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        fields = {"node": "NodeID", "service": "ServiceID", "desired-state": "DesiredState"}
        return [
            t
            for t in self.tasks
            if all(t.get(fields[key]) in want for key, want in filters.items() if key in fields)
        ]

    def _update_node(self, node: dict[str, Any], version: int, body: bytes) -> Answer:
        if version != node["Version"]["Index"]:
            return 500, {"message": "rpc error: code = Unknown desc = update out of sequence"}
        spec = json.loads(body or b"{}")
        self.updates.append((node["ID"], spec))
        self._clock += 1
        node["Spec"] = spec
        node["Version"]["Index"] += 1
        node["UpdatedAt"] = _stamp(self._clock)
        if spec.get("Role") == "worker":
            node.pop("ManagerStatus", None)
        if spec.get("Availability") == "drain" and self.drain_replaces_later:
            for task in self.tasks:
                if task["NodeID"] == node["ID"] and task["DesiredState"] == "running":
                    task["DesiredState"] = "shutdown"
                    task["Status"] = {"State": "shutdown", "Message": "shutdown"}
                    self._stopped.append(task["ServiceID"])
        elif spec.get("Availability") == "drain" and self.drain_moves_to:
            self.move_tasks(node["ID"], self.drain_moves_to, state=self.moved_state)
        return 200, None

    def _remove_node(self, node: dict[str, Any], force: bool) -> Answer:
        if node["Spec"]["Role"] == "manager":
            return 400, {
                "message": f"rpc error: code = FailedPrecondition desc = node {node['ID']} is a "
                "cluster manager and is a member of the raft cluster. It must be demoted to "
                "worker before removal"
            }
        if node["Status"]["State"] != "down" and not force:
            return 400, {
                "message": f"rpc error: code = FailedPrecondition desc = node {node['ID']} is not "
                "down and can't be removed"
            }
        del self.nodes[node["ID"]]
        self.removed.append(node["ID"])
        return 200, None
