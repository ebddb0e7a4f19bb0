"""Networking API (DESIGN.md section 10): networks, subnets, ports, floating IPs, security groups
and their rules. Creates that dispatch host work (networks, ports) and floating IP associations
answer 202 with the operation (and a Location header naming it); a retried POST with the same
Idempotency-Key starts nothing more."""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.response import Response

from identity.api.base import CallerInContext, ScopedViewSet, ServiceWrites
from workers.api.lifecycle import IDEMPOTENCY_KEY, Keyed, TransitionEndpoints, accepted

from .. import services
from ..models import FloatingIP, IPAllocation, Network, Port, SecurityGroup, SecurityGroupRule, Subnet
from . import filters, serializers


class NetworkViewSet(
    CallerInContext,
    Keyed,
    TransitionEndpoints,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ScopedViewSet,
):
    """Networks: the project's own, the shared and the external ones."""

    model = Network
    policy_prefix = "networking:network"
    serializer_class = serializers.NetworkSerializer
    lifecycle = services.NETWORK_LIFECYCLE
    filterset_class = filters.NetworkFilterSet
    ordering_fields = ["name", "created", "status"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def scope_queryset(self, queryset):
        return (
            queryset.select_related("operation", "host")
            .prefetch_related(
                Prefetch("subnets", queryset=Subnet.objects.only("id", "network_id", "created"))
            )
            .defer("operation__payload", "operation__result")
        )

    @extend_schema(
        request=serializers.NetworkCreateSerializer,
        responses={202: serializers.NetworkSerializer, 200: serializers.NetworkSerializer},
        parameters=[IDEMPOTENCY_KEY],
    )
    def create(self, request):
        """Create a network on a network host: 202, status BUILD until the host has it."""
        return self.create_accepted(request, serializers.NetworkCreateSerializer, services.create_network)

    @extend_schema(
        request=serializers.NetworkUpdateSerializer, responses={200: serializers.NetworkSerializer}
    )
    def partial_update(self, request, pk=None):
        body = serializers.NetworkUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        network = services.update_network(self.ctx, self.get_object(), **body.validated_data)
        return accepted(self, network, status.HTTP_200_OK)

    @extend_schema(request=None, responses={202: serializers.NetworkSerializer}, parameters=[IDEMPOTENCY_KEY])
    def destroy(self, request, pk=None):
        """Delete: 202; refused (409) while it has ports or floating IPs."""
        return accepted(
            self, services.delete_network(self.ctx, self.get_object(), idempotency_key=self._key())
        )


class SubnetViewSet(
    ServiceWrites, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ScopedViewSet
):
    """Subnets of the networks the caller sees, with used and free addresses."""

    model = Subnet
    policy_prefix = "networking:subnet"
    serializer_class = serializers.SubnetSerializer
    filterset_class = filters.SubnetFilterSet
    ordering_fields = ["cidr", "created"]
    delete_service = staticmethod(services.delete_subnet)

    def scope_queryset(self, queryset):
        return queryset.prefetch_related(
            Prefetch(
                "allocations",
                queryset=IPAllocation.objects.only("id", "subnet_id", "address"),
                to_attr="allocated",
            )
        )

    @extend_schema(request=serializers.SubnetCreateSerializer, responses={201: serializers.SubnetSerializer})
    def create(self, request):
        """Create a subnet (400 naming the reason for any bad CIDR, gateway or pool)."""
        body = serializers.SubnetCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = dict(body.validated_data)
        if "gateway" not in request.data:
            fields.pop("gateway", None)  # omitted: the first address (null: none)
        subnet = services.create_subnet(self.ctx, **fields)
        obj = self.scope_queryset(Subnet.objects.filter(pk=subnet.pk)).get()
        return Response(self.get_serializer(obj).data, status=status.HTTP_201_CREATED)


class PortViewSet(
    CallerInContext,
    Keyed,
    TransitionEndpoints,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ScopedViewSet,
):
    """Ports of the current project."""

    model = Port
    policy_prefix = "networking:port"
    serializer_class = serializers.PortSerializer
    lifecycle = services.PORT_LIFECYCLE
    filterset_class = filters.PortFilterSet
    ordering_fields = ["name", "created", "status"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def scope_queryset(self, queryset):
        return services.ports_rows(queryset)

    @extend_schema(
        request=serializers.PortCreateSerializer,
        responses={202: serializers.PortSerializer, 200: serializers.PortSerializer},
        parameters=[IDEMPOTENCY_KEY],
    )
    def create(self, request):
        """Create a port with a fixed IP: 202, status DOWN until its network host has its DHCP entry;
        409 naming the subnet when its pools are exhausted."""
        return self.create_accepted(request, serializers.PortCreateSerializer, services.create_port)

    @extend_schema(request=serializers.PortUpdateSerializer, responses={200: serializers.PortSerializer})
    def partial_update(self, request, pk=None):
        """Rename it or replace its security groups (a bound port gets its new rules)."""
        body = serializers.PortUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        port = services.update_port(self.ctx, self.get_object(), **body.validated_data)
        return accepted(self, port, status.HTTP_200_OK)

    @extend_schema(request=None, responses={202: serializers.PortSerializer}, parameters=[IDEMPOTENCY_KEY])
    def destroy(self, request, pk=None):
        """Delete: 202; its address returns to the pool once its network host dropped it."""
        return accepted(self, services.delete_port(self.ctx, self.get_object(), idempotency_key=self._key()))


class FloatingIPViewSet(
    CallerInContext,
    Keyed,
    ServiceWrites,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    ScopedViewSet,
):
    """Floating IPs of the current project: allocate, associate (PATCH {"port": id}), disassociate
    (PATCH {"port": null}), release (DELETE)."""

    model = FloatingIP
    policy_prefix = "networking:floating_ip"
    serializer_class = serializers.FloatingIPSerializer
    filterset_class = filters.FloatingIPFilterSet
    ordering_fields = ["address", "created", "status"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    delete_service = staticmethod(services.release_floating_ip)

    def scope_queryset(self, queryset):
        return queryset.select_related("operation").defer("operation__payload", "operation__result")

    @extend_schema(
        request=serializers.FloatingIPCreateSerializer, responses={201: serializers.FloatingIPSerializer}
    )
    def create(self, request):
        """Allocate an address of an external network."""
        body = serializers.FloatingIPCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fip = services.allocate_floating_ip(self.ctx, **body.validated_data)
        return accepted(self, fip, status.HTTP_201_CREATED)

    @extend_schema(
        request=serializers.FloatingIPUpdateSerializer,
        responses={202: serializers.FloatingIPSerializer},
        parameters=[IDEMPOTENCY_KEY],
    )
    def partial_update(self, request, pk=None):
        """Associate with a port of this project (``{"port": id}``) or disassociate (``null``): 202."""
        body = serializers.FloatingIPUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fip, port = self.get_object(), body.validated_data["port"]
        if port is None:
            fip = services.disassociate(self.ctx, fip, idempotency_key=self._key())
        else:
            fip = services.associate(self.ctx, fip, port, idempotency_key=self._key())
        return accepted(self, fip)


class SecurityGroupViewSet(
    ServiceWrites, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ScopedViewSet
):
    """Security groups of the current project, with their rules (``default`` appears on first use)."""

    model = SecurityGroup
    policy_prefix = "networking:security_group"
    serializer_class = serializers.SecurityGroupSerializer
    filterset_class = filters.SecurityGroupFilterSet
    ordering_fields = ["name", "created"]
    delete_service = staticmethod(services.delete_security_group)

    def get_queryset(self):
        if not getattr(self, "swagger_fake_view", False) and self.action == "list" and self.ctx.project:
            services.ensure_default_security_group(self.ctx)
        return super().get_queryset()

    def scope_queryset(self, queryset):
        return queryset.prefetch_related("rules")

    @extend_schema(
        request=serializers.SecurityGroupCreateSerializer,
        responses={201: serializers.SecurityGroupSerializer},
    )
    def create(self, request):
        body = serializers.SecurityGroupCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        group = services.create_security_group(self.ctx, **body.validated_data)
        return accepted(self, group, status.HTTP_201_CREATED)


class SecurityGroupRuleViewSet(
    ServiceWrites, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ScopedViewSet
):
    """Rules of the current project's security groups."""

    model = SecurityGroupRule
    policy_prefix = "networking:security_group_rule"
    serializer_class = serializers.SecurityGroupRuleSerializer
    filterset_class = filters.SecurityGroupRuleFilterSet
    ordering_fields = ["created"]
    delete_service = staticmethod(services.delete_rule)

    @extend_schema(
        request=serializers.SecurityGroupRuleCreateSerializer,
        responses={201: serializers.SecurityGroupRuleSerializer},
    )
    def create(self, request):
        """Add a rule (400 naming the reason: a port range only for tcp/udp, 1-65535, min <= max; a
        remote group only of this project)."""
        body = serializers.SecurityGroupRuleCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = dict(body.validated_data)
        rule = services.create_rule(self.ctx, group=fields.pop("security_group"), **fields)
        return accepted(self, rule, status.HTTP_201_CREATED)
