"""Networking API shapes. Meaning is checked in networking.services; these check types only and
refuse keys they do not know (a misspelt ``cidr`` is a 400, not a default)."""

from __future__ import annotations

from rest_framework import serializers

from identity.api.base import allowed_once
from identity.api.strict import (
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)
from workers.api.serializers import OperationSummarySerializer

from ..models import FloatingIP, Network, Port, SecurityGroup, SecurityGroupRule, Subnet
from ..services import ipam


class NetworkSerializer(serializers.ModelSerializer):
    status = serializers.CharField(
        source="display_status", read_only=True, help_text="BUILD, ACTIVE, ERROR, ..."
    )
    operation = OperationSummarySerializer(read_only=True, allow_null=True, help_text="the latest operation")
    subnets = serializers.SerializerMethodField()
    host = serializers.SerializerMethodField(help_text="network host, VLAN and what it applied (admins)")

    class Meta:
        model = Network
        fields = [
            "id",
            "name",
            "description",
            "status",
            "shared",
            "external",
            "is_default",
            "mtu",
            "subnets",
            "fault",
            "operation",
            "host",
            "project",
            "created",
            "updated",
        ]
        read_only_fields = fields

    def get_subnets(self, obj) -> list[str]:
        return [str(s.pk) for s in obj.subnets.all()]

    def get_host(self, obj) -> dict | None:
        if not allowed_once(self, "networking:network:show_host"):
            return None
        return {
            "host": obj.host.name if obj.host_id else None,
            "vlan": obj.vlan,
            "bridge": obj.bridge,
            "simulated": obj.simulated,
            "applied": obj.applied,
        }


class NetworkCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=255)
    description = StrictCharField(required=False, allow_blank=True, allow_null=True, max_length=1024)
    shared = StrictBooleanField(required=False, default=False, help_text="admins")
    external = StrictBooleanField(
        required=False, default=False, help_text="admins: floating IPs come from it"
    )
    mtu = StrictIntegerField(required=False, default=1500)


class NetworkUpdateSerializer(StrictSerializer):
    name = StrictCharField(required=False, max_length=255)
    description = StrictCharField(required=False, allow_blank=True, max_length=1024)


class SubnetSerializer(serializers.ModelSerializer):
    network = serializers.UUIDField(source="network_id", read_only=True)
    used = serializers.SerializerMethodField(help_text="addresses handed out")
    free = serializers.SerializerMethodField(help_text="addresses left in the pools")

    class Meta:
        model = Subnet
        fields = [
            "id",
            "name",
            "network",
            "cidr",
            "ip_version",
            "gateway",
            "allocation_pools",
            "dns_servers",
            "dhcp",
            "host_routes",
            "used",
            "free",
            "project",
            "created",
        ]
        read_only_fields = fields

    def get_used(self, obj) -> int:
        return len(obj.allocated)

    def get_free(self, obj) -> int:
        return ipam.free_count(obj, [a.address for a in obj.allocated])


class SubnetCreateSerializer(StrictSerializer):
    network = StrictCharField(help_text="network id or name")
    cidr = StrictCharField(max_length=43)
    name = StrictCharField(required=False, allow_blank=True, max_length=255)
    ip_version = StrictIntegerField(required=False, allow_null=True)
    gateway = StrictCharField(
        required=False, allow_blank=True, allow_null=True, help_text="omitted: the first address; null: none"
    )
    allocation_pools = serializers.ListField(
        child=serializers.ListField(child=StrictCharField(), min_length=2, max_length=2),
        required=False,
        allow_null=True,
        help_text="[[start, end], ...]",
    )
    dns_servers = serializers.ListField(child=StrictCharField(), required=False, allow_null=True)
    dhcp = StrictBooleanField(required=False, default=True)
    host_routes = serializers.ListField(
        child=serializers.ListField(child=StrictCharField(), min_length=2, max_length=2),
        required=False,
        allow_null=True,
        help_text="[[destination cidr, nexthop], ...]",
    )


class FixedIPSerializer(serializers.Serializer):
    subnet = serializers.UUIDField(source="subnet_id")
    ip_address = serializers.CharField(source="address")


class PortSerializer(serializers.ModelSerializer):
    status = serializers.CharField(
        source="display_status", read_only=True, help_text="DOWN, ACTIVE, ERROR, ..."
    )
    network = serializers.UUIDField(source="network_id", read_only=True)
    fixed_ips = FixedIPSerializer(many=True, read_only=True)
    security_groups = serializers.SerializerMethodField()
    operation = OperationSummarySerializer(read_only=True, allow_null=True)
    instance = serializers.UUIDField(source="instance_id", read_only=True, allow_null=True)

    class Meta:
        model = Port
        fields = [
            "id",
            "name",
            "network",
            "mac",
            "fixed_ips",
            "security_groups",
            "instance",
            "device_owner",
            "host",
            "status",
            "fault",
            "operation",
            "project",
            "created",
            "updated",
        ]
        read_only_fields = fields

    def get_security_groups(self, obj) -> list[str]:
        return [str(g.pk) for g in obj.security_groups.all()]


class PortCreateSerializer(StrictSerializer):
    network = StrictCharField(help_text="network id or name")
    name = StrictCharField(required=False, allow_blank=True, max_length=255)
    subnet = StrictCharField(
        required=False, allow_null=True, help_text="subnet id or name (default: the first)"
    )
    ip_address = StrictCharField(
        required=False, allow_null=True, help_text="a free address (default: the next)"
    )
    security_groups = serializers.ListField(
        child=StrictCharField(), required=False, allow_null=True, help_text="names or ids (default: default)"
    )


class PortUpdateSerializer(StrictSerializer):
    name = StrictCharField(required=False, allow_blank=True, max_length=255)
    security_groups = serializers.ListField(child=StrictCharField(), required=False)


class FloatingIPSerializer(serializers.ModelSerializer):
    status = serializers.CharField(
        source="display_status", read_only=True, help_text="DOWN, ACTIVE, ERROR, ..."
    )
    network = serializers.UUIDField(source="network_id", read_only=True)
    port = serializers.UUIDField(source="port_id", read_only=True, allow_null=True)
    floating_ip_address = serializers.CharField(source="address", read_only=True)
    fixed_ip_address = serializers.CharField(source="fixed_ip", read_only=True)
    operation = OperationSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = FloatingIP
        fields = [
            "id",
            "floating_ip_address",
            "network",
            "port",
            "fixed_ip_address",
            "status",
            "fault",
            "operation",
            "project",
            "created",
            "updated",
        ]
        read_only_fields = fields


class FloatingIPCreateSerializer(StrictSerializer):
    network = StrictCharField(help_text="external network id or name")
    ip_address = StrictCharField(required=False, allow_null=True, help_text="a free address of it")


class FloatingIPUpdateSerializer(StrictSerializer):
    port = StrictCharField(allow_null=True, help_text="port id to associate; null disassociates")


class SecurityGroupRuleSerializer(serializers.ModelSerializer):
    security_group = serializers.UUIDField(source="group_id", read_only=True)
    remote_group = serializers.UUIDField(source="remote_group_id", read_only=True, allow_null=True)

    class Meta:
        model = SecurityGroupRule
        fields = [
            "id",
            "security_group",
            "direction",
            "ethertype",
            "protocol",
            "port_min",
            "port_max",
            "remote_cidr",
            "remote_group",
            "description",
            "project",
            "created",
        ]
        read_only_fields = fields


class SecurityGroupSerializer(serializers.ModelSerializer):
    rules = SecurityGroupRuleSerializer(many=True, read_only=True)

    class Meta:
        model = SecurityGroup
        fields = ["id", "name", "description", "rules", "project", "created", "updated"]
        read_only_fields = fields


class SecurityGroupCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=255)
    description = StrictCharField(required=False, allow_blank=True, max_length=1024)


class SecurityGroupRuleCreateSerializer(StrictSerializer):
    security_group = StrictCharField(help_text="group id or name")
    direction = StrictCharField(help_text="ingress or egress")
    ethertype = StrictCharField(required=False, default="IPv4")
    protocol = StrictCharField(required=False, default="any", help_text="tcp, udp, icmp or any")
    port_min = StrictIntegerField(required=False, allow_null=True)
    port_max = StrictIntegerField(required=False, allow_null=True)
    remote_cidr = StrictCharField(required=False, allow_blank=True, allow_null=True)
    remote_group = StrictCharField(required=False, allow_null=True, help_text="a group of this project")
    description = StrictCharField(required=False, allow_blank=True, max_length=255)
