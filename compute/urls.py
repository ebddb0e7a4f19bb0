from django.urls import path

from . import views

urlpatterns = [
    path("admin/flavors/", views.admin_flavors, name="admin-flavors"),
    path("admin/flavors/<uuid:pk>/delete/", views.admin_flavor_delete, name="admin-flavor-delete"),
    path("admin/hosts/", views.admin_hosts, name="admin-hosts"),
    path("admin/hosts/<uuid:pk>/disable/", views.admin_host_disable, name="admin-host-disable"),
    path("admin/hosts/<uuid:pk>/enable/", views.admin_host_enable, name="admin-host-enable"),
]
