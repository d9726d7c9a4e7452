from django.urls import path

from backups import views, wizard

urlpatterns = [
    path("", views.backup_list, name="backup_list"),
    path("<int:pk>/", views.backup_detail, name="backup_detail"),
    path("rpo/", views.rpo_ledger, name="rpo_ledger"),
    path("rpo/<int:site_id>/badge/", views.rpo_badge, name="rpo_badge"),
    path("sites/<int:site_id>/now/", views.back_up_now, name="back_up_now"),
    path("restore/", wizard.choose_site, name="restore_start"),
    path("restore/<int:site_id>/", wizard.wizard, name="restore_wizard"),
    path("restores/<int:pk>/", views.restore_detail, name="restore_detail"),
    path("restores/<int:pk>/switch/", views.restore_switch, name="restore_switch"),
    path("drills/", views.drills, name="restore_drills"),
    path("repository/", views.repository, name="backup_repository"),
]
