"""Compute API: flavors and their per-project access; hosts (hypervisors) for admins."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, status
from rest_framework import serializers as drf_serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from identity import policy
from identity.api.base import ScopedViewSet, ServiceWrites
from identity.api.strict import refuse_body
from identity.errors import InvalidInput, NotFound
from identity.models import Project
from workers.models import Host

from .. import services
from ..models import Flavor, FlavorAccess
from . import filters, serializers


class FlavorViewSet(
    ServiceWrites,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    ScopedViewSet,
):
    """Flavors: everyone lists the public ones and the private ones shared with their project; admins
    create, change (not the sizes), delete and share them."""

    model = Flavor
    policy_prefix = "compute:flavor"
    serializer_class = serializers.FlavorSerializer
    filterset_class = filters.FlavorFilterSet
    ordering_fields = ["name", "vcpus", "ram_mb", "disk_gb", "created"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    create_service = staticmethod(services.create_flavor)
    update_service = staticmethod(services.update_flavor)
    delete_service = staticmethod(services.delete_flavor)

    def _access_project(self, request) -> Project:
        # DELETE bodies are dropped by some clients and proxies: ``?project=`` works as well.
        data = request.data or {"project": request.query_params.get("project")}
        body = serializers.FlavorAccessRequestSerializer(data=data)
        body.is_valid(raise_exception=True)
        try:
            return Project.objects.get_visible(self.ctx, pk=body.validated_data["project"])
        except NotFound:
            raise InvalidInput("No such project.", details={"project": ["No such project."]}) from None

    @extend_schema(request=None, responses=serializers.FlavorAccessSerializer(many=True), methods=["GET"])
    @extend_schema(
        request=serializers.FlavorAccessRequestSerializer,
        responses={201: serializers.FlavorAccessSerializer},
        methods=["POST"],
    )
    @extend_schema(
        request=None,
        parameters=[
            OpenApiParameter(
                "project",
                OpenApiTypes.UUID,
                OpenApiParameter.QUERY,
                description='project to revoke (or send {"project": id} as the body)',
            )
        ],
        responses={204: None},
        methods=["DELETE"],
    )
    @action(
        detail=True,
        methods=["get", "post", "delete"],
        url_path="access",
        pagination_class=None,
        filter_backends=[],
    )
    def access(self, request, pk=None):
        """The projects that may use a private flavor (admins): list, grant (POST), revoke (DELETE)."""
        # Refuse before reading the body: a non-admin learns nothing about which projects exist.
        policy.enforce(self.ctx, "compute:flavor:access")
        flavor = self.get_object()
        if request.method == "GET":
            rows = FlavorAccess.objects.filter(flavor=flavor).select_related("project")
            return Response(serializers.FlavorAccessSerializer(rows, many=True).data)
        project = self._access_project(request)
        if request.method == "POST":
            granted = services.add_flavor_access(self.ctx, flavor, project)
            return Response(serializers.FlavorAccessSerializer(granted).data, status=status.HTTP_201_CREATED)
        services.remove_flavor_access(self.ctx, flavor, project)
        return Response(status=status.HTTP_204_NO_CONTENT)


class HostViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Compute hosts (hypervisors), for cloud admins: capacity, usage, up/down, enabled.

    Hosts register themselves through their agent's heartbeat; admins disable and enable them.
    """

    model = Host
    policy_prefix = "compute:host"
    serializer_class = serializers.HostSerializer
    filterset_class = filters.HostFilterSet
    ordering_fields = ["name", "vcpus", "memory_mb", "disk_gb", "last_heartbeat", "created"]

    def scope_queryset(self, queryset):
        return services.host_rows(queryset)

    @extend_schema(request=serializers.HostDisableSerializer, responses=serializers.HostSerializer)
    @action(detail=True, methods=["post"])
    def disable(self, request, pk=None):
        """Stop scheduling new instances on the host, saying why."""
        host = self.get_object()
        body = serializers.HostDisableSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        host = services.disable_host(self.ctx, host, body.validated_data["reason"])
        return Response(
            serializers.HostSerializer(services.host_rows(Host.objects.filter(pk=host.pk)).get()).data
        )

    @extend_schema(
        request=None,
        responses=inline_serializer("HostReportRequested", {"messages_sent": drf_serializers.IntegerField()}),
    )
    @action(detail=False, methods=["post"])
    def report(self, request):
        """All hosts report now: every agent sends a fresh heartbeat with its capacity (202)."""
        refuse_body(request.data)
        sent = services.request_host_reports(self.ctx)
        return Response({"messages_sent": sent}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=serializers.HostSerializer)
    @action(detail=True, methods=["post"])
    def enable(self, request, pk=None):
        """Schedule new instances on the host again."""
        refuse_body(request.data)
        host = services.enable_host(self.ctx, self.get_object())
        return Response(
            serializers.HostSerializer(services.host_rows(Host.objects.filter(pk=host.pk)).get()).data
        )
