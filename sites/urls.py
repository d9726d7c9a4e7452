from django.urls import path

from sites import views

urlpatterns = [
    path("", views.site_list, name="site_list"),
    path("new/", views.site_create, name="site_create"),
    path("reconcile/", views.reconcile_page, name="site_reconcile"),
    path("reconcile/run/", views.reconcile_run, name="site_reconcile_run"),
    path("<int:pk>/", views.site_detail, name="site_detail"),
    path("<int:pk>/services/", views.site_services, name="site_services"),
    path("<int:pk>/suspend/", views.site_suspend, name="site_suspend"),
    path("<int:pk>/resume/", views.site_resume, name="site_resume"),
    path("<int:pk>/repair/", views.site_repair, name="site_repair"),
    path("<int:pk>/delete/", views.site_delete, name="site_delete"),
    path("<int:pk>/approve/", views.site_approve, name="site_approve"),
    path("<int:pk>/decline/", views.site_decline, name="site_decline"),
]
