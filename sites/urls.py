from django.urls import path

from sites import views

urlpatterns = [
    path("", views.site_list, name="site_list"),
    path("<int:pk>/", views.site_detail, name="site_detail"),
]
