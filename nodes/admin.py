from __future__ import annotations

from django.contrib import admin

from farm.admin_audit import AuditedAdmin
from nodes.models import EngineStatus, Node


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


@admin.register(EngineStatus)
class EngineStatusAdmin(AuditedAdmin[EngineStatus]):
    list_display = ["available", "message", "checked_at"]
    readonly_fields = ["available", "message", "checked_at"]

    def has_add_permission(self, request: object) -> bool:
        return False
