"""Operations on a Swarm node (operators only): what they share (the Node target), the
steps that touch only the Swarm, and the kinds made of nothing else: ``node.activate``
and ``node.remove``. The kinds that follow sites as their tasks move (``node.drain``,
``node.failover``) are the sites app's (sites/operations/nodes.py); they reuse these
steps. Every step looks at the Swarm first, so running it twice changes nothing more.

The operation's state, shared by the steps (plain values, kept as steps finish):
``sites`` [{"id", "domain", "stack"}] the sites that had tasks on the node;
``started_at`` when their outage began (epoch s); ``probes`` {domain: OutageProbe state};
``moved_to`` {site id: [hostnames]} where their tasks run once moved.
"""

from __future__ import annotations

import time

from django.conf import settings

from farm.models import Operation
from farm.operations import OperationKind, Step, StepContext, register_kind
from nodes import swarm_nodes
from nodes.edge import OutageProbe
from nodes.models import Node, NodeAvailability, NodeRole, NodeStatus
from nodes.quorum import quorum
from nodes.swarm_client import SwarmError

NODE_TARGET_TYPE = "node"


class NodeKind(OperationKind):
    target_type = NODE_TARGET_TYPE
    operator_only = True

    def get_target(self, operation: Operation) -> Node:
        return Node.objects.get(pk=operation.target_id)


def node_of(ctx: StepContext) -> Node:
    node: Node = ctx.refresh_target()
    return node


# -- following the sites while their tasks move -----------------------------------------


def probes_of(ctx: StepContext) -> list[OutageProbe]:
    saved = ctx.state.setdefault("probes", {})
    return [
        OutageProbe.from_state(saved[s["domain"]])
        if s["domain"] in saved
        else OutageProbe(s["domain"])
        for s in ctx.state.get("sites", [])
    ]


def keep_probes(ctx: StepContext, probes: list[OutageProbe]) -> None:
    ctx.state["probes"] = {p.domain: p.as_state() for p in probes}
    ctx.save_state()


def look_once(ctx: StepContext, probes: list[OutageProbe]) -> None:
    for probe in probes:
        probe.look()
    keep_probes(ctx, probes)


# -- steps ---------------------------------------------------------------------------


class CheckDrainable(Step):
    name = "check-drainable"
    label = "Check that every task on the node can run elsewhere"

    def run(self, ctx: StepContext) -> None:
        node = node_of(ctx)
        nodes = swarm_nodes.list_nodes()
        tasks = swarm_nodes.tasks_on_node(node.swarm_id)
        stranded = swarm_nodes.stranded_services(
            node.swarm_id, nodes, tasks, swarm_nodes.service_names()
        )
        refusal = swarm_nodes.drain_refusal(node.hostname, stranded)
        if refusal:
            raise SwarmError(refusal, retryable=False)
        live = [t for t in tasks if swarm_nodes.is_live(t)]
        ctx.log(f"{node.hostname}: {len(live)} task(s), each can run on another node")


class SetAvailability(Step):
    """Set the node's availability (idempotent); with ``undo_to``, undone by setting
    that one back (a drain's undo activates the node)."""

    def __init__(self, availability: str, *, undo_to: str = "") -> None:
        self.availability = availability
        self.undo_to = undo_to
        self.name = f"set-{availability}"  # type: ignore[misc]
        self.label = f"Set the node's availability to {availability}"  # type: ignore[misc]

    def _apply(self, ctx: StepContext, availability: str) -> None:
        node = node_of(ctx)
        changed = swarm_nodes.set_availability(node.swarm_id, availability)
        Node.objects.filter(pk=node.pk).update(availability=availability)
        if changed and availability == NodeAvailability.DRAIN:
            ctx.state.setdefault("started_at", time.time())
            ctx.save_state()
        verb = "set" if changed else "was already"
        ctx.log(f"{node.hostname} {verb} {availability}")

    def run(self, ctx: StepContext) -> None:
        self._apply(ctx, self.availability)

    def undo(self, ctx: StepContext) -> None:
        if not self.undo_to:
            ctx.log("Nothing to undo.")
            return
        self._apply(ctx, self.undo_to)

    @property
    def has_undo(self) -> bool:
        return bool(self.undo_to)


class WaitTasksMoved(Step):
    name = "wait-tasks-moved"
    label = "Wait until the node's tasks run on other nodes"

    def run(self, ctx: StepContext) -> None:
        node = node_of(ctx)
        ctx.state.setdefault("started_at", time.time())
        probes = probes_of(ctx)
        site_ids = {s["id"] for s in ctx.state.get("sites", [])}
        deadline = time.monotonic() + settings.FARM_NODE_MOVE_TIMEOUT
        while True:
            look_once(ctx, probes)
            left = [t for t in swarm_nodes.tasks_on_node(node.swarm_id) if swarm_nodes.is_live(t)]
            tasks = swarm_nodes.running_tasks()
            waiting = [
                t
                for t in tasks
                if swarm_nodes.task_site_id(t) in site_ids
                and t.get("Status", {}).get("State") != "running"
            ]
            # Right after the drain Swarm has stopped the old tasks but may not have
            # made their replacements yet: every site service must run somewhere else.
            unplaced = swarm_nodes.services_not_running_elsewhere(site_ids, node.swarm_id, tasks)
            if not left and not waiting and not unplaced:
                break
            if time.monotonic() > deadline:
                names = swarm_nodes.service_names()
                still = sorted(
                    {names.get(t.get("ServiceID", ""), "?") for t in left + waiting}
                    | {names.get(sid, sid) for sid in unplaced}
                )
                raise SwarmError(
                    f"{node.hostname}: tasks of {', '.join(still)} were not running elsewhere "
                    f"within {settings.FARM_NODE_MOVE_TIMEOUT} s.",
                    retryable=True,
                )
            ctx.check_cancelled()
            time.sleep(settings.FARM_OUTAGE_PROBE_EVERY)
        hostnames = {n["ID"]: swarm_nodes.hostname(n) for n in swarm_nodes.list_nodes()}
        moved: dict[str, set[str]] = {}
        for task in tasks:
            site_id = swarm_nodes.task_site_id(task)
            if site_id in site_ids:
                moved.setdefault(str(site_id), set()).add(hostnames.get(task["NodeID"], "?"))
        ctx.state["moved_to"] = {k: sorted(v) for k, v in moved.items()}
        ctx.save_state()
        ctx.log(f"{node.hostname}: no task left; {len(site_ids)} site(s) run elsewhere")


def removal_refusal(node: Node, rows: list[Node]) -> str:
    """Why ``node`` may not be removed now ("" when it may): it must be down, or drained
    with no task; and a reachable manager's leaving must keep the managers' quorum."""
    if node.status == NodeStatus.GONE:
        return ""
    if node.status != NodeStatus.DOWN and node.availability != NodeAvailability.DRAIN:
        return f"{node.hostname} is {node.status} and {node.availability}: drain it first."
    if node.role == NodeRole.MANAGER:
        managers = quorum(rows)
        after = quorum([n for n in rows if n.pk != node.pk])
        if after.total == 0:
            return f"{node.hostname} is the Swarm's last manager: it cannot be removed."
        if not after.writable:
            return (
                f"Removing {node.hostname} would lose the managers' quorum: "
                f"{after.reachable} of {after.total} reachable, {after.needed} needed "
                f"(now {managers.reachable} of {managers.total})."
            )
    return ""


class CheckRemovable(Step):
    name = "check-removable"
    label = "Check that the node is drained and idle, or down"

    def run(self, ctx: StepContext) -> None:
        node = node_of(ctx)
        refusal = removal_refusal(node, list(Node.objects.all()))
        if refusal:
            raise SwarmError(refusal, retryable=False)
        if node.status != NodeStatus.DOWN:
            left = [t for t in swarm_nodes.tasks_on_node(node.swarm_id) if swarm_nodes.is_live(t)]
            if left:
                raise SwarmError(
                    f"{node.hostname} is drained but still runs {len(left)} task(s): "
                    "wait for the drain to finish.",
                    retryable=True,
                )
        ctx.log(f"{node.hostname} is {node.status} and {node.availability}: it may go")


class Demote(Step):
    name = "demote"
    label = "Demote the node if it is a manager"

    def run(self, ctx: StepContext) -> None:
        node = node_of(ctx)
        if node.role != NodeRole.MANAGER:
            ctx.skip(f"{node.hostname} is a worker")
        changed = swarm_nodes.demote(node.swarm_id)
        Node.objects.filter(pk=node.pk).update(role=NodeRole.WORKER, reachability="")
        ctx.log(f"{node.hostname} {'demoted' if changed else 'was already a worker'}")


class RemoveFromSwarm(Step):
    name = "remove-from-swarm"
    label = "Remove the node from the Swarm"

    def run(self, ctx: StepContext) -> None:
        node = node_of(ctx)
        # Forced: a node that is still up refuses a plain removal until it has left the
        # Swarm itself, and CheckRemovable has made sure it runs nothing (its engine is
        # cut off from the Swarm, and is stopped by whoever runs it).
        removed = swarm_nodes.remove_node(node.swarm_id, force=True)
        Node.objects.filter(pk=node.pk).update(status=NodeStatus.GONE)
        ctx.log(f"{node.hostname} {'removed' if removed else 'was already gone'}")


# -- the kinds made of these steps alone ---------------------------------------------------


@register_kind
class ActivateNode(NodeKind):
    name = "node.activate"
    label = "Activate"
    steps = (SetAvailability(NodeAvailability.ACTIVE),)


@register_kind
class RemoveNode(NodeKind):
    name = "node.remove"
    label = "Remove"
    reversible = False  # a node removed from the Swarm joins again, it is not undone
    steps = (CheckRemovable(), Demote(), RemoveFromSwarm())
