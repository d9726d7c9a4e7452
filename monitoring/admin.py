from __future__ import annotations

from django.contrib import admin

from farm.admin_audit import AuditedAdmin
from monitoring.models import Alert


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
    list_filter = ["status", "severity", "source"]
    search_fields = ["summary", "name", "fingerprint", "site__domain"]
    list_select_related = ["site", "tenant", "acknowledged_by"]
