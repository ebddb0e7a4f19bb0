"""Django admin for networking: read-only (every change goes through networking.services, which
talk to the hosts), searchable and filterable."""

from django.contrib import admin

from identity.admin import ReadOnlyAdmin

from .models import FloatingIP, IPAllocation, Network, Port, SecurityGroup, SecurityGroupRule, Subnet


@admin.register(Network)
class NetworkAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "project",
        "status",
        "busy",
        "vlan",
        "bridge",
        "host",
        "shared",
        "external",
        "simulated",
    ]
    list_filter = ["status", "shared", "external", "simulated"]
    search_fields = ["name", "id", "project__name", "bridge", "host__name"]
    list_select_related = ["project", "host"]


@admin.register(Subnet)
class SubnetAdmin(ReadOnlyAdmin):
    list_display = ["cidr", "name", "network", "project", "ip_version", "gateway", "dhcp"]
    list_filter = ["ip_version", "dhcp"]
    search_fields = ["cidr", "name", "network__name", "project__name"]
    list_select_related = ["network", "project"]


@admin.register(Port)
class PortAdmin(ReadOnlyAdmin):
    list_display = ["id", "name", "network", "project", "mac", "instance_id", "host", "status", "busy"]
    list_filter = ["status", "busy", "device_owner"]
    search_fields = ["id", "name", "mac", "instance_id", "network__name", "project__name", "host"]
    list_select_related = ["network", "project"]


@admin.register(IPAllocation)
class IPAllocationAdmin(ReadOnlyAdmin):
    list_display = ["address", "subnet", "port", "created"]
    search_fields = ["address", "subnet__cidr", "port__id"]
    list_select_related = ["subnet", "port"]


@admin.register(FloatingIP)
class FloatingIPAdmin(ReadOnlyAdmin):
    list_display = ["address", "network", "project", "port", "fixed_ip", "status", "busy"]
    list_filter = ["status", "busy"]
    search_fields = ["address", "fixed_ip", "project__name", "network__name"]
    list_select_related = ["network", "project", "port"]


@admin.register(SecurityGroup)
class SecurityGroupAdmin(ReadOnlyAdmin):
    list_display = ["name", "project", "created"]
    search_fields = ["name", "project__name"]
    list_select_related = ["project"]


@admin.register(SecurityGroupRule)
class SecurityGroupRuleAdmin(ReadOnlyAdmin):
    list_display = [
        "group",
        "direction",
        "ethertype",
        "protocol",
        "port_min",
        "port_max",
        "remote_cidr",
        "remote_group",
    ]
    list_filter = ["direction", "ethertype", "protocol"]
    search_fields = ["group__name", "remote_cidr", "project__name"]
    list_select_related = ["group", "remote_group"]
