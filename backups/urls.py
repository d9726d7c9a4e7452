from django.urls import path

from backups import views

# Mounted at "backups/" beside sites.urls' backup pages (the RPO ledger, back up now,
# the restore wizard, switch), which look sites up.
urlpatterns = [
    path("", views.backup_list, name="backup_list"),
    path("<int:pk>/", views.backup_detail, name="backup_detail"),
    path("restores/<int:pk>/", views.restore_detail, name="restore_detail"),
    path("drills/", views.drills, name="restore_drills"),
    path("repository/", views.repository, name="backup_repository"),
]
