"""Filters for networking lists."""

import django_filters

from ..models import FloatingIP, Network, Port, SecurityGroup, SecurityGroupRule, Subnet


class NetworkFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="iexact")
    status = django_filters.CharFilter(field_name="status")

    class Meta:
        model = Network
        fields = ["name", "status", "shared", "external", "is_default"]


class SubnetFilterSet(django_filters.FilterSet):
    network = django_filters.UUIDFilter(field_name="network_id")

    class Meta:
        model = Subnet
        fields = ["network", "name", "cidr", "ip_version"]


class PortFilterSet(django_filters.FilterSet):
    network = django_filters.UUIDFilter(field_name="network_id")
    instance = django_filters.UUIDFilter(field_name="instance_id")
    ip_address = django_filters.CharFilter(field_name="fixed_ips__address")

    class Meta:
        model = Port
        fields = ["network", "instance", "status", "mac", "device_owner", "ip_address"]


class FloatingIPFilterSet(django_filters.FilterSet):
    network = django_filters.UUIDFilter(field_name="network_id")
    port = django_filters.UUIDFilter(field_name="port_id")
    floating_ip_address = django_filters.CharFilter(field_name="address")

    class Meta:
        model = FloatingIP
        fields = ["network", "port", "status", "floating_ip_address"]


class SecurityGroupFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = SecurityGroup
        fields = ["name"]


class SecurityGroupRuleFilterSet(django_filters.FilterSet):
    security_group = django_filters.UUIDFilter(field_name="group_id")

    class Meta:
        model = SecurityGroupRule
        fields = ["security_group", "direction", "ethertype", "protocol"]
