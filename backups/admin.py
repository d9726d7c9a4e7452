from __future__ import annotations

from django.contrib import admin

from backups.models import Backup, BackupPolicy, RepositoryCheck, Restore
from farm.admin_audit import AuditedAdmin


@admin.register(Backup)
class BackupAdmin(AuditedAdmin[Backup]):
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


@admin.register(BackupPolicy)
class BackupPolicyAdmin(AuditedAdmin[BackupPolicy]):
    list_display = [
        "site",
        "enabled",
        "db_daily_at",
        "db_every_hours",
        "files_daily_at",
        "keep_daily",
        "keep_weekly",
        "keep_monthly",
        "next_db_at",
        "next_files_at",
    ]
    list_filter = ["enabled"]
    list_editable = ["enabled", "db_every_hours", "keep_daily", "keep_weekly", "keep_monthly"]
    search_fields = ["site__domain"]
    list_select_related = ["site"]


@admin.register(Restore)
class RestoreAdmin(AuditedAdmin[Restore]):
    list_display = [
        "id",
        "site",
        "scope",
        "target",
        "status",
        "verified",
        "rto_seconds",
        "is_drill",
        "started_at",
    ]
    list_filter = ["status", "target", "scope", "is_drill", "verified"]
    search_fields = ["site__domain", "db_snapshot_id", "files_snapshot_id"]
    list_select_related = ["site"]
    readonly_fields = [f.name for f in Restore._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False  # restores start from the wizard, which records who and why


@admin.register(RepositoryCheck)
class RepositoryCheckAdmin(AuditedAdmin[RepositoryCheck]):
    list_display = ["started_at", "read_data_subset", "ok", "seconds"]
    list_filter = ["ok"]
    readonly_fields = [f.name for f in RepositoryCheck._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
