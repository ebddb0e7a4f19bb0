"""Compute API: flavors and their per-project access."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from identity import policy
from identity.api.base import ScopedViewSet
from identity.errors import InvalidInput, NotFound
from identity.models import Project

from .. import services
from ..models import Flavor, FlavorAccess
from . import filters, serializers


class FlavorViewSet(
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
    serializer_class = serializers.FlavorSerializer
    filterset_class = filters.FlavorFilterSet
    ordering_fields = ["name", "vcpus", "ram_mb", "disk_gb", "created"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def list(self, request, *args, **kwargs):
        policy.enforce(self.ctx, "compute:flavor:list")
        return super().list(request, *args, **kwargs)

    def retrieve(self, request, *args, **kwargs):
        policy.enforce(self.ctx, "compute:flavor:show")
        return super().retrieve(request, *args, **kwargs)

    def perform_create(self, serializer):
        serializer.instance = services.create_flavor(self.ctx, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.update_flavor(
            self.ctx, serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.delete_flavor(self.ctx, instance)

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
