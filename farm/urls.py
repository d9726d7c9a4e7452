from django.contrib import admin
from django.urls import include, path

from farm import views

# The apps' URLs are included by dotted path: farm imports no app. sites.urls holds
# the dashboard (""), the site pages ("sites/"), the backup pages that act on a site
# ("backups/…", beside backups.urls) and the tenant pages ("tenants/").
urlpatterns = [
    path("", include("sites.urls")),
    path("operations/", views.operation_list, name="operation_list"),
    path("operations/<int:pk>/", views.operation_detail, name="operation_detail"),
    path("operations/<int:pk>/retry/", views.operation_retry, name="operation_retry"),
    path("operations/<int:pk>/roll-back/", views.operation_roll_back, name="operation_roll_back"),
    path("operations/<int:pk>/cancel/", views.operation_cancel, name="operation_cancel"),
    path("audit/", views.audit_log, name="audit_log"),
    path("nodes/", include("nodes.urls")),
    path("backups/", include("backups.urls")),
    path("alerts/", include("monitoring.urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
]
