from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet

from backups.models import (
    Backup,
    BackupPolicy,
    RepositoryCheck,
    RepositorySnapshot,
    Restore,
    SiteRpo,
)
from farm.admin_audit import AuditedAdmin, IndexedSearch


class ReasonFilter(admin.SimpleListFilter):
    """The reasons a backup is taken, listed as constants: the admin's own filter would
    read them with a DISTINCT over every backup on every render."""

    title = "reason"
    parameter_name = "reason"

    def lookups(self, request: object, model_admin: object) -> list[tuple[str, str]]:
        return [(r, r) for r in ("scheduled", "manual", "safety", "config-change")]

    def queryset(self, request: object, queryset: QuerySet[Backup]) -> QuerySet[Backup]:
        return queryset.filter(reason=self.value()) if self.value() else queryset


@admin.register(Backup)
class BackupAdmin(IndexedSearch[Backup]):
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
    list_filter = ["kind", "status", ReasonFilter]
    search_fields = ["site__domain", "snapshot_id"]  # a domain (anywhere) or an id's start
    related_search = ("site", "domain")
    prefix_search = ("snapshot_id",)
    search_help_text = "Part of a site's domain, or the start of a snapshot id."
    list_select_related = ["site"]
    readonly_fields = [f.name for f in Backup._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(BackupPolicy)
class BackupPolicyAdmin(IndexedSearch[BackupPolicy]):
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
    list_per_page = 50  # five inputs a row: a page of 100 rendered in over 100 ms
    search_fields = ["site__domain"]
    related_search = ("site", "domain")
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


@admin.register(RepositorySnapshot)
class RepositorySnapshotAdmin(IndexedSearch[RepositorySnapshot]):
    list_display = ["short_id", "site", "kind", "time", "bytes", "listed_at"]
    search_fields = ["site__domain", "snapshot_id"]
    related_search = ("site", "domain")
    prefix_search = ("snapshot_id",)
    list_select_related = ["site"]
    readonly_fields = [f.name for f in RepositorySnapshot._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False  # the RPO check writes these from the repository's listing


@admin.register(SiteRpo)
class SiteRpoAdmin(IndexedSearch[SiteRpo]):
    list_display = ["site", "newest_db", "newest_files", "snapshots", "checked_at"]
    search_fields = ["site__domain"]
    related_search = ("site", "domain")
    list_select_related = ["site"]
    readonly_fields = [f.name for f in SiteRpo._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
