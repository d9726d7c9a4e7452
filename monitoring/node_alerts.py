"""NodeDown: the critical alert of a Swarm node that stopped answering. The node
failover operation raises it (``raise_node_down``); it is resolved once the Swarm says
the node is ready again, by the node watcher at once and by a minute task as the
backstop (``resolve_recovered_nodes``)."""

from __future__ import annotations

from monitoring.alerts import raise_alert, resolve_alert
from monitoring.models import Alert, AlertSeverity
from nodes.models import Node, NodeStatus

NODE_DOWN = "NodeDown"
FINGERPRINT_PREFIX = "node-down:"


def node_down_fingerprint(swarm_id: str) -> str:
    return f"{FINGERPRINT_PREFIX}{swarm_id}"


def raise_node_down(node: Node, domains: list[str]) -> Alert:
    """Raise (or refresh: one firing alert per node) the node's NodeDown alert."""
    if domains:
        shown = ", ".join(domains[:20]) + (
            f" and {len(domains) - 20} more" if len(domains) > 20 else ""
        )
        sites = f"{len(domains)} site(s) had tasks on it: {shown}."
    else:
        sites = "No site had a task on it."
    return raise_alert(
        fingerprint=node_down_fingerprint(node.swarm_id),
        name=NODE_DOWN,
        summary=f"Node {node.hostname} is down; Swarm moves its tasks to other nodes",
        description=f"{sites} {node.status_message}".strip(),
        severity=AlertSeverity.CRITICAL,
        node_id=node.pk,
        labels={"node": node.hostname},
    )


def resolve_node_down(node: Node) -> int:
    return resolve_alert(node_down_fingerprint(node.swarm_id))


def resolve_recovered_nodes() -> int:
    """Resolve the NodeDown of every node the last sync saw ready again."""
    firing = Alert.objects.firing().filter(fingerprint__startswith=FINGERPRINT_PREFIX)
    ready = set(Node.objects.filter(status=NodeStatus.READY).values_list("swarm_id", flat=True))
    resolved = 0
    for fingerprint in set(firing.values_list("fingerprint", flat=True)):
        if fingerprint.removeprefix(FINGERPRINT_PREFIX) in ready:
            resolved += resolve_alert(fingerprint)
    return resolved
