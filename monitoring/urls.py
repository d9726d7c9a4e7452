from django.urls import path

from monitoring import views

urlpatterns = [
    path("", views.alert_list, name="alert_list"),
    path("webhook/alertmanager/", views.alertmanager_webhook, name="alertmanager_webhook"),
]
