from django.urls import include, path

from sites.views import backups, dashboard, nodes, reconcile, restore, sites, tenants

site_pages = [
    path("", sites.site_list, name="site_list"),
    path("new/", sites.site_create, name="site_create"),
    path("reconcile/", reconcile.reconcile_page, name="site_reconcile"),
    path("reconcile/run/", reconcile.reconcile_run, name="site_reconcile_run"),
    path("<int:pk>/", sites.site_detail, name="site_detail"),
    path("<int:pk>/services/", sites.site_services, name="site_services"),
    path("<int:pk>/suspend/", sites.site_suspend, name="site_suspend"),
    path("<int:pk>/resume/", sites.site_resume, name="site_resume"),
    path("<int:pk>/repair/", sites.site_repair, name="site_repair"),
    path("<int:pk>/delete/", sites.site_delete, name="site_delete"),
    path("<int:pk>/approve/", sites.site_approve, name="site_approve"),
    path("<int:pk>/decline/", sites.site_decline, name="site_decline"),
]

# Mounted under "backups/", beside backups.urls (which shows backups' own rows).
site_backup_pages = [
    path("rpo/", backups.rpo_ledger, name="rpo_ledger"),
    path("rpo/check/", backups.rpo_check, name="rpo_check"),
    path("rpo/<int:site_id>/badge/", backups.rpo_badge, name="rpo_badge"),
    path("sites/<int:site_id>/now/", backups.back_up_now, name="back_up_now"),
    path("restore/", restore.choose_site, name="restore_start"),
    path("restore/<int:site_id>/", restore.wizard, name="restore_wizard"),
    path("restores/<int:pk>/switch/", restore.restore_switch, name="restore_switch"),
]

tenant_pages = [
    path("", tenants.tenant_list, name="tenant_list"),
    path("new/", tenants.tenant_create, name="tenant_create"),
    path("<int:pk>/", tenants.tenant_detail, name="tenant_detail"),
    path("<int:pk>/edit/", tenants.tenant_edit, name="tenant_edit"),
    path("<int:pk>/members/", tenants.member_add, name="tenant_member_add"),
    path("<int:pk>/members/<int:member_pk>/role/", tenants.member_role, name="tenant_member_role"),
    path(
        "<int:pk>/members/<int:member_pk>/remove/",
        tenants.member_remove,
        name="tenant_member_remove",
    ),
    path(
        "<int:pk>/members/<int:member_pk>/invite/",
        tenants.member_invite,
        name="tenant_member_invite",
    ),
]

# Mounted under "nodes/", beside nodes.urls (the Nodes page): the changes that follow
# a node's sites, and their outages.
node_pages = [
    path("outages/", nodes.node_outages, name="node_outages"),
    path("<int:pk>/drain/", nodes.node_drain, name="node_drain"),
    path("<int:pk>/activate/", nodes.node_activate, name="node_activate"),
    path("<int:pk>/remove/", nodes.node_remove, name="node_remove"),
]

# Mounted at the root by farm/urls.py: the dashboard, /sites/…, /backups/… and /tenants/….
urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("sites/", include(site_pages)),
    path("backups/", include(site_backup_pages)),
    path("tenants/", include(tenant_pages)),
    path("nodes/", include(node_pages)),
]
