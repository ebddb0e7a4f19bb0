from django.urls import path

from . import views

urlpatterns = [
    path("networks/", views.networks, name="networks"),
    path("networks/create/", views.network_create, name="network-create"),
    path("networks/<uuid:pk>/", views.network_detail, name="network"),
    path("networks/<uuid:pk>/row/", views.network_row, name="network-row"),
    path("networks/<uuid:pk>/sync/", views.network_sync, name="network-sync"),
    path("networks/<uuid:pk>/delete/", views.network_delete, name="network-delete"),
    path("floating-ips/", views.floating_ips, name="floating-ips"),
    path("floating-ips/<uuid:pk>/row/", views.floating_ip_row, name="floating-ip-row"),
    path("floating-ips/<uuid:pk>/associate/", views.floating_ip_associate, name="floating-ip-associate"),
    path(
        "floating-ips/<uuid:pk>/disassociate/",
        views.floating_ip_disassociate,
        name="floating-ip-disassociate",
    ),
    path("floating-ips/<uuid:pk>/release/", views.floating_ip_release, name="floating-ip-release"),
    path("security-groups/", views.security_groups, name="security-groups"),
    path("security-groups/<uuid:pk>/", views.security_group_detail, name="security-group"),
    path("security-groups/<uuid:pk>/delete/", views.security_group_delete, name="security-group-delete"),
    path("security-groups/<uuid:pk>/rules/", views.rule_create, name="rule-create"),
    path("security-groups/<uuid:pk>/rules/<uuid:rule_pk>/delete/", views.rule_delete, name="rule-delete"),
    path("admin/networks/", views.admin_networks, name="admin-networks"),
    path("admin/external-networks/", views.admin_external_networks, name="admin-external-networks"),
    path("admin/hosts/", views.admin_hosts, name="admin-network-hosts"),
]
