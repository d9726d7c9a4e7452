"""Node inventory: Node rows follow what the Swarm API says about its nodes."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from nodes.models import Node, NodeAvailability, NodeReachability, NodeRole, NodeStatus
from nodes.platform import ROLE_LABELS, role_label
from nodes.swarm import FAILED_TASK_STATES, SECOND_NS, STACK_LABEL, client, translate_errors

_STATUS = {s.value for s in NodeStatus}
_REACHABILITY = {r.value for r in NodeReachability}


def node_fields(attrs: dict[str, Any]) -> dict[str, Any]:
    spec = attrs.get("Spec", {})
    desc = attrs.get("Description", {})
    resources = desc.get("Resources", {})
    status = attrs.get("Status", {})
    manager = attrs.get("ManagerStatus") or {}
    labels = spec.get("Labels") or {}
    state = status.get("State", "unknown")
    reachability = manager.get("Reachability") if manager else ""  # a worker has none
    if manager and reachability not in _REACHABILITY:
        reachability = NodeReachability.UNKNOWN
    address = status.get("Addr", "")
    if manager.get("Addr") and address in ("", "0.0.0.0"):  # noqa: S104 - a value Swarm reports
        address = manager["Addr"].rsplit(":", 1)[0]
    return {
        "hostname": desc.get("Hostname", ""),
        "role": NodeRole.MANAGER if spec.get("Role") == "manager" else NodeRole.WORKER,
        "is_leader": bool(manager.get("Leader")),
        "status": state if state in _STATUS else NodeStatus.UNKNOWN,
        "status_message": (status.get("Message") or "")[:255],
        "reachability": reachability,
        "availability": spec.get("Availability", NodeAvailability.ACTIVE),
        "address": address,
        "engine_version": desc.get("Engine", {}).get("EngineVersion", ""),
        "cpus": Decimal(resources.get("NanoCPUs", 0)) / Decimal(1_000_000_000),
        "memory_bytes": int(resources.get("MemoryBytes", 0)),
        "labels": labels,
        "farm_roles": [r for r in ROLE_LABELS if labels.get(role_label(r)) == "true"],
    }


_SITE_STACK = re.compile(r"^wp-([0-9]+)$")


@dataclass
class NodeLoad:
    nano_cpus: int = 0
    memory_bytes: int = 0
    site_ids: set[int] = field(default_factory=set)


def reservations_by_node(tasks: list[dict[str, Any]]) -> dict[str, NodeLoad]:
    """What the running tasks reserve on each node (Swarm's own admission figures),
    and which sites' tasks run there (their stack label)."""
    loads: dict[str, NodeLoad] = defaultdict(NodeLoad)
    for task in tasks:
        node_id = task.get("NodeID")
        if not node_id or task.get("Status", {}).get("State") in FAILED_TASK_STATES:
            continue
        spec = task.get("Spec", {})
        reserved = (spec.get("Resources") or {}).get("Reservations") or {}
        load = loads[node_id]
        load.nano_cpus += int(reserved.get("NanoCPUs") or 0)
        load.memory_bytes += int(reserved.get("MemoryBytes") or 0)
        labels = (spec.get("ContainerSpec") or {}).get("Labels") or {}
        if match := _SITE_STACK.match(labels.get(STACK_LABEL, "")):
            load.site_ids.add(int(match.group(1)))
    return loads


def sync_nodes() -> dict[str, int]:
    """Upsert one row per Swarm node, with what its running tasks reserve; nodes that
    left are marked gone (kept for history). Two Docker calls."""
    with translate_errors("Listing Swarm nodes and their tasks"):
        nodes = client().api.nodes()
        loads = reservations_by_node(client().api.tasks(filters={"desired-state": "running"}))
    now = timezone.now()
    seen: set[str] = set()
    created = updated = 0
    with transaction.atomic():
        statuses = dict(Node.objects.values_list("swarm_id", "status"))
        for attrs in nodes:
            fields = node_fields(attrs)
            if statuses.get(attrs["ID"]) != fields["status"]:
                fields["status_changed_at"] = now
            load = loads.get(attrs["ID"], NodeLoad())
            fields.update(
                last_seen_at=now,
                synced_at=now,
                reserved_cpus=Decimal(load.nano_cpus) / Decimal(SECOND_NS),
                reserved_memory_bytes=load.memory_bytes,
                seen_site_ids=sorted(load.site_ids),
            )
            _, was_created = Node.objects.update_or_create(swarm_id=attrs["ID"], defaults=fields)
            seen.add(attrs["ID"])
            created += was_created
            updated += not was_created
        # A node that left runs nothing: its row no longer counts sites or reservations.
        gone = (
            Node.objects.exclude(swarm_id__in=seen)
            .exclude(status=NodeStatus.GONE)
            .update(
                status=NodeStatus.GONE,
                status_changed_at=now,
                synced_at=now,
                reserved_cpus=0,
                reserved_memory_bytes=0,
                seen_site_ids=[],
            )
        )
    return {"created": created, "updated": updated, "gone": gone}


def record_engine_status(available: bool, message: str = "") -> None:
    from nodes.models import EngineStatus

    EngineStatus.objects.update_or_create(
        pk=1, defaults={"available": available, "message": message, "checked_at": timezone.now()}
    )
