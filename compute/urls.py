from django.urls import path

from . import views

urlpatterns = [
    path("admin/flavors/", views.admin_flavors, name="admin-flavors"),
    path("admin/flavors/<uuid:pk>/delete/", views.admin_flavor_delete, name="admin-flavor-delete"),
]
