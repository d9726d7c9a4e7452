"""Changing Swarm nodes (drain, activate, demote, remove) and reading what runs on one,
through the failover client; and the drain check: can every task on a node run on
another one? Docker errors come out as SwarmError (``nodes.swarm_client``).

Swarm's placement constraints are matched here as the scheduler matches them
(``node.id``, ``node.hostname``, ``node.role``, ``node.platform.os|arch``,
``node.labels.<k>``, ``engine.labels.<k>``, with ``==`` or ``!=``), so that a drain
that would leave a task with nowhere to go is refused before anything changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nodes.platform import ROLE_LABELS, role_label
from nodes.swarm_client import STACK_LABEL, SwarmError, client, translate_errors

# Task states that still hold (or may still hold) a node's resources.
LIVE_TASK_STATES = {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
LIVE_TASK_STATES |= {"running"}
_SITE_STACK = re.compile(r"^wp-([0-9]+)$")
_PLATFORM_FIELDS = {"node.platform.os": "OS", "node.platform.arch": "Architecture"}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(==|!=)\s*(.*?)\s*$")


def inspect_node(swarm_id: str) -> dict[str, Any]:
    with translate_errors(f"Inspecting Swarm node {swarm_id}"):
        attrs: dict[str, Any] = client().api.inspect_node(swarm_id)
    return attrs


def list_nodes() -> list[dict[str, Any]]:
    with translate_errors("Listing Swarm nodes"):
        nodes: list[dict[str, Any]] = client().api.nodes()
    return nodes


def tasks_on_node(swarm_id: str, *, desired_running: bool = True) -> list[dict[str, Any]]:
    """The tasks Swarm has on a node (a down node's are still listed); with
    ``desired_running``, only those it means to keep running."""
    filters: dict[str, str] = {"node": swarm_id}
    if desired_running:
        filters["desired-state"] = "running"
    with translate_errors(f"Listing the tasks of Swarm node {swarm_id}"):
        tasks: list[dict[str, Any]] = client().api.tasks(filters=filters)
    return tasks


def running_tasks() -> list[dict[str, Any]]:
    """Every task Swarm means to keep running, on every node (one call)."""
    with translate_errors("Listing the Swarm's tasks"):
        tasks: list[dict[str, Any]] = client().api.tasks(filters={"desired-state": "running"})
    return tasks


def service_names() -> dict[str, str]:
    """Every service's id and name."""
    with translate_errors("Listing the Swarm's services"):
        services = client().api.services()
    return {s["ID"]: s.get("Spec", {}).get("Name", s["ID"]) for s in services}


def task_site_id(task: dict[str, Any]) -> int | None:
    """The site a task belongs to (its stack label ``wp-<id>``), if any."""
    labels = (task.get("Spec", {}).get("ContainerSpec") or {}).get("Labels") or {}
    match = _SITE_STACK.match(labels.get(STACK_LABEL, ""))
    return int(match.group(1)) if match else None


def services_not_running_elsewhere(
    site_ids: set[int], node_id: str, tasks: list[dict[str, Any]]
) -> set[str]:
    """The services of ``site_ids`` with no task running on a node other than ``node_id``
    (``tasks``: the running_tasks() answer)."""
    with translate_errors("Listing the Swarm's services"):
        services = client().api.services()
    wanted = set()
    for service in services:
        match = _SITE_STACK.match(
            (service.get("Spec", {}).get("Labels") or {}).get(STACK_LABEL, "")
        )
        if match and int(match.group(1)) in site_ids:
            wanted.add(service["ID"])
    running = {
        t.get("ServiceID")
        for t in tasks
        if t.get("Status", {}).get("State") == "running" and t.get("NodeID") != node_id
    }
    return wanted - running


def is_live(task: dict[str, Any], *, last_known: bool = False) -> bool:
    """A task Swarm means to run, in a state that is not over. ``last_known``: a task
    on a down node counts while its last reported state was a live one, whatever
    Swarm now wants (it cannot stop what it cannot reach)."""
    state = task.get("Status", {}).get("State", "")
    if last_known:
        return state in LIVE_TASK_STATES
    return task.get("DesiredState") == "running" and state in LIVE_TASK_STATES


def _update_spec(swarm_id: str, what: str, **changes: str) -> bool:
    """Read-modify-write of a node's whole spec at its version; False when it already
    had ``changes``. Swarm refuses a write at a stale version (someone else changed
    the node meanwhile): that is retryable."""
    attrs = inspect_node(swarm_id)
    spec = dict(attrs.get("Spec") or {})
    if all(spec.get(key) == value for key, value in changes.items()):
        return False
    spec.update(changes)
    with translate_errors(f"{what} Swarm node {swarm_id}"):
        client().api.update_node(swarm_id, attrs["Version"]["Index"], spec)  # type: ignore[arg-type]
    return True


def set_availability(swarm_id: str, availability: str) -> bool:
    """active, pause or drain; True when it changed (idempotent)."""
    return _update_spec(
        swarm_id, f"Setting availability {availability} on", Availability=availability
    )


def demote(swarm_id: str) -> bool:
    """Make a manager a worker; True when it changed (idempotent)."""
    return _update_spec(swarm_id, "Demoting", Role="worker")


def remove_node(swarm_id: str, *, force: bool) -> bool:
    """Remove a node from the Swarm; False when it is already gone. Without ``force``
    Swarm removes only a node that is down (one that left by itself)."""
    try:
        with translate_errors(f"Removing Swarm node {swarm_id}"):
            client().api.remove_node(swarm_id, force=force)
    except SwarmError as exc:
        if "not found" in exc.message.lower():
            return False
        raise
    return True


# -- the drain check ------------------------------------------------------------------


def _node_value(key: str, node: dict[str, Any]) -> str | None:
    spec = node.get("Spec") or {}
    desc = node.get("Description") or {}
    if key == "node.id":
        return str(node.get("ID", ""))
    if key == "node.hostname":
        return str(desc.get("Hostname", ""))
    if key == "node.role":
        return str(spec.get("Role", ""))
    if key in _PLATFORM_FIELDS:
        return str((desc.get("Platform") or {}).get(_PLATFORM_FIELDS[key], ""))
    if key.startswith("node.labels."):
        return (spec.get("Labels") or {}).get(key.removeprefix("node.labels."))
    if key.startswith("engine.labels."):
        engine = desc.get("Engine") or {}
        return (engine.get("Labels") or {}).get(key.removeprefix("engine.labels."))
    raise SwarmError(f"Unknown placement constraint attribute {key!r}.", retryable=False)


def matches(constraint: str, node: dict[str, Any]) -> bool:
    """Whether ``node`` (as ``GET /nodes`` lists it) meets one placement constraint."""
    parsed = _CONSTRAINT.match(constraint)
    if parsed is None:
        raise SwarmError(f"Cannot read the placement constraint {constraint!r}.", retryable=False)
    key, op, want = parsed.groups()
    have = _node_value(key, node)
    if key in ("node.role", "node.hostname", "node.platform.os", "node.platform.arch"):
        equal = (have or "").lower() == want.lower()  # Swarm compares these case-blind
    else:
        equal = have == want
    return equal if op == "==" else not equal


def describe_constraints(constraints: list[str]) -> str:
    """Words for what a task needs: "db role" for the farm's role labels, else the
    constraints themselves."""
    words = []
    for constraint in constraints:
        parsed = _CONSTRAINT.match(constraint)
        role = next(
            (
                r
                for r in ROLE_LABELS
                if parsed
                and parsed.group(1) == f"node.labels.{role_label(r)}"
                and parsed.group(2) == "=="
                and parsed.group(3) == "true"
            ),
            None,
        )
        words.append(f"{role} role" if role else constraint.strip())
    return ", ".join(words) or "no placement constraint"


def _schedulable(node: dict[str, Any]) -> bool:
    return (
        node.get("Status", {}).get("State") == "ready"
        and (node.get("Spec") or {}).get("Availability") == "active"
    )


def hostname(node: dict[str, Any]) -> str:
    return str((node.get("Description") or {}).get("Hostname") or node.get("ID", ""))


@dataclass(frozen=True)
class Stranded:
    """A service with a task on the node that no other ready, active node can run."""

    service: str
    needs: str


def stranded_services(
    swarm_id: str,
    nodes: list[dict[str, Any]],
    tasks: list[dict[str, Any]],
    names: dict[str, str],
) -> list[Stranded]:
    """The services whose live tasks on ``swarm_id`` would have nowhere to go if it were
    drained: no other node is ready, active and meets the task's constraints."""
    others = [n for n in nodes if n.get("ID") != swarm_id and _schedulable(n)]
    stranded: dict[str, Stranded] = {}
    for task in tasks:
        if task.get("NodeID") != swarm_id or not is_live(task):
            continue
        constraints = list((task.get("Spec", {}).get("Placement") or {}).get("Constraints") or [])
        if any(all(matches(c, node) for c in constraints) for node in others):
            continue
        service = names.get(task.get("ServiceID", ""), task.get("ServiceID", "?"))
        stranded.setdefault(service, Stranded(service, describe_constraints(constraints)))
    return sorted(stranded.values(), key=lambda s: s.service)


def drain_refusal(node_name: str, stranded: list[Stranded]) -> str:
    """ "farm-node-1 runs farm_mariadb (db role), which no other node can run." ("" when
    nothing is stranded)."""
    if not stranded:
        return ""
    what = ", ".join(f"{s.service} ({s.needs})" for s in stranded)
    them = "it" if len(stranded) == 1 else "them"
    return (
        f"{node_name} runs {what}, which no other node can run: draining it would stop "
        f"{them}. Add or activate a node that meets the constraints first."
    )
