from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from farm.admin_audit import AuditedAdmin
from nodes.images import site_runtimes
from sites.models import ReconcileReport, Site, SiteOutage, StackState


class RuntimeFilter(admin.SimpleListFilter):
    """The runtimes of the image map: the admin's own filter would read them with a
    DISTINCT over every site on every render."""

    title = "runtime"
    parameter_name = "image_choice"

    def lookups(self, request: HttpRequest, model_admin: object) -> list[tuple[str, str]]:
        return [(key, runtime.label) for key, runtime in site_runtimes().items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Site]) -> QuerySet[Site]:
        return queryset.filter(image_choice=self.value()) if self.value() else queryset


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
    list_filter = ["status", "tenant", RuntimeFilter, "cache_enabled"]
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


@admin.register(SiteOutage)
class SiteOutageAdmin(AuditedAdmin[SiteOutage]):
    """How long each site was unreachable while its node was drained or down (read-only:
    the node operations write these)."""

    list_display = ["site", "cause", "node", "moved_to", "started_at", "unreachable_s", "rto_s"]
    list_filter = ["cause"]
    list_select_related = ["site", "node"]
    readonly_fields = [
        "site",
        "node",
        "cause",
        "operation",
        "moved_to",
        "started_at",
        "answered_at",
        "unreachable_s",
        "rto_s",
    ]

    def has_add_permission(self, request: object) -> bool:
        return False
