from __future__ import annotations

from django.contrib import admin

from farm.admin_audit import AuditedAdmin
from sites.models import ReconcileReport, Site, StackState


@admin.register(Site)
class SiteAdmin(AuditedAdmin[Site]):
    list_display = [
        "domain",
        "tenant",
        "status",
        "image_choice",
        "cache_enabled",
        "node",
        "created_at",
    ]
    list_filter = ["status", "tenant", "image_choice", "cache_enabled"]
    search_fields = ["domain", "tenant__name"]
    list_select_related = ["tenant", "node"]
    readonly_fields = [
        "status",
        "db_name",
        "db_user",
        "network_shard",
        "created_by",
        "created_at",
        "updated_at",
        "activated_at",
        "last_error",
    ]
    exclude = ["db_password", "wp_salts"]


@admin.register(ReconcileReport)
class ReconcileReportAdmin(AuditedAdmin[ReconcileReport]):
    list_display = ["created_at", "drift", "orphans", "error"]
    readonly_fields = ["created_at", "drift", "orphans", "findings", "error"]

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(StackState)
class StackStateAdmin(AuditedAdmin[StackState]):
    """What the workers last recorded of each site's services (read-only)."""

    list_display = ["site", "seen_at", "checked_at", "error"]
    list_select_related = ["site"]
    readonly_fields = ["site", "services", "seen_at", "checked_at", "error"]

    def has_add_permission(self, request: object) -> bool:
        return False
