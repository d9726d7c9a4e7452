from django.urls import path

from nodes import views

urlpatterns = [
    path("", views.node_list, name="node_list"),
]
