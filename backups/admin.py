from __future__ import annotations

from django.contrib import admin

from backups.models import Backup


@admin.register(Backup)
class BackupAdmin(admin.ModelAdmin[Backup]):
    list_display = [
        "id",
        "site",
        "kind",
        "status",
        "reason",
        "snapshot_id",
        "bytes",
        "duration_ms",
        "created_at",
    ]
    list_filter = ["kind", "status", "reason"]
    search_fields = ["site__domain", "snapshot_id"]
    list_select_related = ["site"]
    readonly_fields = [f.name for f in Backup._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
