from __future__ import annotations

from django.contrib import admin

from farm.admin_audit import AuditedAdmin
from nodes.models import Node


@admin.register(Node)
class NodeAdmin(AuditedAdmin[Node]):
    list_display = [
        "hostname",
        "role",
        "is_leader",
        "status",
        "availability",
        "address",
        "cpus",
        "memory_gib",
        "engine_version",
        "last_seen_at",
    ]
    list_filter = ["role", "status", "availability"]
    search_fields = ["hostname", "swarm_id", "address"]
    readonly_fields = [
        "swarm_id",
        "hostname",
        "role",
        "is_leader",
        "status",
        "availability",
        "address",
        "engine_version",
        "cpus",
        "memory_bytes",
        "labels",
        "farm_roles",
        "first_seen_at",
        "last_seen_at",
        "synced_at",
    ]
