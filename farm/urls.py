from django.contrib import admin
from django.urls import include, path

from farm import tenant_views, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("operations/", views.operation_list, name="operation_list"),
    path("operations/<int:pk>/", views.operation_detail, name="operation_detail"),
    path("operations/<int:pk>/retry/", views.operation_retry, name="operation_retry"),
    path("operations/<int:pk>/roll-back/", views.operation_roll_back, name="operation_roll_back"),
    path("operations/<int:pk>/cancel/", views.operation_cancel, name="operation_cancel"),
    path("audit/", views.audit_log, name="audit_log"),
    path("tenants/", tenant_views.tenant_list, name="tenant_list"),
    path("tenants/new/", tenant_views.tenant_create, name="tenant_create"),
    path("tenants/<int:pk>/", tenant_views.tenant_detail, name="tenant_detail"),
    path("tenants/<int:pk>/edit/", tenant_views.tenant_edit, name="tenant_edit"),
    path("tenants/<int:pk>/members/", tenant_views.member_add, name="tenant_member_add"),
    path(
        "tenants/<int:pk>/members/<int:member_pk>/role/",
        tenant_views.member_role,
        name="tenant_member_role",
    ),
    path(
        "tenants/<int:pk>/members/<int:member_pk>/remove/",
        tenant_views.member_remove,
        name="tenant_member_remove",
    ),
    path(
        "tenants/<int:pk>/members/<int:member_pk>/invite/",
        tenant_views.member_invite,
        name="tenant_member_invite",
    ),
    path("sites/", include("sites.urls")),
    path("nodes/", include("nodes.urls")),
    path("backups/", include("backups.urls")),
    path("alerts/", include("monitoring.urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
]
