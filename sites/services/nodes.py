"""Drain, activate and remove a Swarm node (operators only): each starts one operation
on the node (``node.drain`` and ``node.failover`` are sites.operations', the others
nodes.node_operations'). One unfinished operation per node: a second is refused."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest

from farm import audit
from farm.errors import FarmError
from farm.models import Operation, User
from farm.operations import start_operation
from farm.permissions import require_operator
from nodes.models import Node
from nodes.node_operations import NODE_TARGET_TYPE

OPERATORS_ONLY = "Only operators drain, activate or remove nodes: they are every tenant's."
NOT_CONFIRMED = "That is not this node's hostname: type it exactly to confirm the removal."


class NodeRefused(FarmError):
    """The node is not in a state this change applies to."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def _start(kind: str, node: Node, actor: User, request: HttpRequest | None) -> Operation:
    with transaction.atomic():
        operation = start_operation(
            kind,
            target_type=NODE_TARGET_TYPE,
            target_id=node.pk,
            target_repr=node.hostname,
            actor=actor,
        )
        audit.record(kind, actor=actor, target=node, request=request)
    return operation


def drain_node(*, node: Node, actor: User, request: HttpRequest | None = None) -> Operation:
    """Move every task off the node and follow its sites until they answer elsewhere."""
    require_operator(actor, OPERATORS_ONLY)
    if not node.can_drain():
        raise NodeRefused(
            f"{node.hostname} is {node.status} and {node.availability}: it cannot be drained."
        )
    return _start("node.drain", node, actor, request)


def activate_node(*, node: Node, actor: User, request: HttpRequest | None = None) -> Operation:
    """Let Swarm schedule tasks on the node again (what undoes a drain)."""
    require_operator(actor, OPERATORS_ONLY)
    if not node.can_activate():
        raise NodeRefused(f"{node.hostname} is {node.availability} already.")
    return _start("node.activate", node, actor, request)


def remove_node(
    *, node: Node, actor: User, typed_hostname: str, request: HttpRequest | None = None
) -> Operation:
    """Take a drained, idle (or down) node out of the Swarm; its hostname typed confirms."""
    require_operator(actor, OPERATORS_ONLY)
    if typed_hostname.strip() != node.hostname:
        raise NodeRefused(NOT_CONFIRMED)
    if not node.can_remove():
        raise NodeRefused(
            f"{node.hostname} is {node.status} and {node.availability}: drain it before "
            "removing it (or wait until it is down)."
        )
    return _start("node.remove", node, actor, request)
