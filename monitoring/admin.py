from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from farm.admin_audit import AuditedAdmin
from monitoring.models import Alert


class SourceFilter(admin.SimpleListFilter):
    """The alerts' sources as constants, not a DISTINCT over every alert per render."""

    title = "source"
    parameter_name = "source"

    def lookups(self, request: HttpRequest, model_admin: object) -> list[tuple[str, str]]:
        return [(s, s) for s in ("alertmanager", "backup", "rpo", "panel")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Alert]) -> QuerySet[Alert]:
        return queryset.filter(source=self.value()) if self.value() else queryset


@admin.register(Alert)
class AlertAdmin(AuditedAdmin[Alert]):
    list_display = [
        "summary",
        "severity",
        "status",
        "source",
        "site",
        "tenant",
        "started_at",
        "resolved_at",
        "acknowledged_by",
    ]
    list_filter = ["status", "severity", SourceFilter]
    search_fields = ["summary", "name", "fingerprint", "site__domain"]
    list_select_related = ["site", "tenant", "acknowledged_by"]
