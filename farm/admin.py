from __future__ import annotations

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from farm.admin_audit import AuditedAdmin, IndexedSearch
from farm.invitations import invite_users
from farm.models import AuditEvent, Membership, Operation, OperationStep, Tenant, User
from farm.operations import registered_kinds

# The admin's own login form would take a password alone: no second factor, no rate
# limit. Send it to allauth's login (throttled, MFA stage) instead; a signed-in
# operator passes through (and OperatorMfaMiddleware checks the session's MFA).
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]


class MembershipInline(admin.TabularInline[Membership, Tenant]):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.action(description="Email an invitation (a link to set a password)")
def send_invitation(modeladmin: UserAdmin, request: HttpRequest, queryset: QuerySet[User]) -> None:
    sent = invite_users(list(queryset), actor=request.user, request=request)  # type: ignore[arg-type]
    modeladmin.message_user(request, f"Sent {sent} invitation(s).")


@admin.register(User)
class UserAdmin(AuditedAdmin[User], BaseUserAdmin):
    actions = [send_invitation]
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "is_active", "last_login"]
    list_filter = ["is_staff", "is_active", "is_superuser"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name")}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


@admin.register(Tenant)
class TenantAdmin(AuditedAdmin[Tenant]):
    list_display = ["name", "slug", "site_quota", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ("name",)}
    list_editable = ["site_quota"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin[Membership]):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__email", "tenant__name"]
    autocomplete_fields = ["user", "tenant"]


class OperationStepInline(admin.TabularInline[OperationStep, Operation]):
    model = OperationStep
    extra = 0
    can_delete = False
    fields = ("position", "label", "status", "attempts", "started_at", "duration_ms", "error")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Operation | None = None) -> bool:
        return False


class KindFilter(admin.SimpleListFilter):
    """The registered operation kinds: the admin's own filter would read them with a
    DISTINCT over every operation on every render."""

    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: object) -> list[tuple[str, str]]:
        return [(name, name) for name in sorted(registered_kinds())]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Operation]) -> QuerySet[Operation]:
        return queryset.filter(kind=self.value()) if self.value() else queryset


@admin.register(Operation)
class OperationAdmin(AuditedAdmin[Operation]):
    list_display = [
        "id",
        "kind",
        "target_repr",
        "tenant",
        "status",
        "mode",
        "actor",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", KindFilter, "mode"]
    search_fields = ["target_repr", "target_id", "kind"]
    list_select_related = ["tenant", "actor"]
    readonly_fields = [
        "kind",
        "target_type",
        "target_id",
        "target_repr",
        "tenant",
        "lock_key",
        "status",
        "mode",
        "actor",
        "params",
        "state",
        "error",
        "retryable",
        "cancel_requested",
        "created_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "enqueued_at",
        "worker",
        "attempts",
    ]
    inlines = [OperationStepInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # operations are started by services, never typed in


@admin.register(AuditEvent)
class AuditEventAdmin(AuditedAdmin[AuditEvent]):
    list_display = ["created_at", "actor_email", "action", "target_repr", "tenant", "ip_address"]
    list_filter = ["action"]
    search_fields = ["actor_email", "action", "target_repr"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False


@admin.register(OperationStep)
class OperationStepAdmin(IndexedSearch[OperationStep]):
    list_display = ["operation", "position", "label", "status", "attempts", "duration_ms"]
    # Not by name: its choices would be a DISTINCT over every step (240,000 at 5,000 sites).
    list_filter = ["status"]
    search_fields = ["operation__target_repr"]
    related_search = ("operation", "target_repr")
    search_help_text = "Part of what the operation was on (a domain)."
    list_select_related = ["operation"]
    readonly_fields = [
        "operation",
        "position",
        "name",
        "label",
        "status",
        "attempts",
        "started_at",
        "finished_at",
        "duration_ms",
        "log",
        "error",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
