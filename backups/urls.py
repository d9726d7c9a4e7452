from django.urls import path

from backups import views

urlpatterns = [
    path("", views.backup_list, name="backup_list"),
    path("<int:pk>/", views.backup_detail, name="backup_detail"),
]
