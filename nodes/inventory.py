"""Node inventory: Node rows follow what the Swarm API says about its nodes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from nodes.models import Node, NodeAvailability, NodeRole, NodeStatus
from nodes.platform import ROLE_LABELS, role_label
from nodes.swarm import client, translate_errors

_STATUS = {s.value for s in NodeStatus}


def node_fields(attrs: dict[str, Any]) -> dict[str, Any]:
    spec = attrs.get("Spec", {})
    desc = attrs.get("Description", {})
    resources = desc.get("Resources", {})
    status = attrs.get("Status", {})
    manager = attrs.get("ManagerStatus") or {}
    labels = spec.get("Labels") or {}
    state = status.get("State", "unknown")
    address = status.get("Addr", "")
    if manager.get("Addr") and address in ("", "0.0.0.0"):  # noqa: S104 - a value Swarm reports
        address = manager["Addr"].rsplit(":", 1)[0]
    return {
        "hostname": desc.get("Hostname", ""),
        "role": NodeRole.MANAGER if spec.get("Role") == "manager" else NodeRole.WORKER,
        "is_leader": bool(manager.get("Leader")),
        "status": state if state in _STATUS else NodeStatus.UNKNOWN,
        "availability": spec.get("Availability", NodeAvailability.ACTIVE),
        "address": address,
        "engine_version": desc.get("Engine", {}).get("EngineVersion", ""),
        "cpus": Decimal(resources.get("NanoCPUs", 0)) / Decimal(1_000_000_000),
        "memory_bytes": int(resources.get("MemoryBytes", 0)),
        "labels": labels,
        "farm_roles": [r for r in ROLE_LABELS if labels.get(role_label(r)) == "true"],
    }


def sync_nodes() -> dict[str, int]:
    """Upsert one row per Swarm node; nodes that left are marked gone (kept for history)."""
    with translate_errors("Listing Swarm nodes"):
        nodes = client().api.nodes()
    now = timezone.now()
    seen: set[str] = set()
    created = updated = 0
    with transaction.atomic():
        for attrs in nodes:
            fields = node_fields(attrs)
            fields.update(last_seen_at=now, synced_at=now)
            _, was_created = Node.objects.update_or_create(swarm_id=attrs["ID"], defaults=fields)
            seen.add(attrs["ID"])
            created += was_created
            updated += not was_created
        gone = (
            Node.objects.exclude(swarm_id__in=seen)
            .exclude(status=NodeStatus.GONE)
            .update(status=NodeStatus.GONE, synced_at=now)
        )
    return {"created": created, "updated": updated, "gone": gone}


def record_engine_status(available: bool, message: str = "") -> None:
    from nodes.models import EngineStatus

    EngineStatus.objects.update_or_create(
        pk=1, defaults={"available": available, "message": message, "checked_at": timezone.now()}
    )
