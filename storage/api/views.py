"""Storage API (DESIGN.md section 10): volume types, volumes with their actions, snapshots, and
the storage backends for admins. Creates and actions answer 202 with the operation that carries
them out (and a Location header naming it); a state that does not allow an action is a 409 naming it."""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from identity import audit, policy
from identity.api.base import CallerInContext, ScopedViewSet
from workers.api.lifecycle import IDEMPOTENCY_KEY, Keyed, TransitionEndpoints, accepted

from .. import services
from ..models import Attachment, Snapshot, StoragePool, Volume, VolumeType
from . import filters, serializers


def volume_rows(queryset):
    """What every volume row shows, in the same fixed number of queries (the row, its attachment)."""
    return queryset.for_rows().prefetch_related(
        Prefetch("attachments", queryset=Attachment.objects.live(), to_attr="live_attachments")
    )


class VolumeTypeViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ScopedViewSet
):
    """Volume types: everyone lists them; admins create and delete them."""

    model = VolumeType
    policy_prefix = "storage:volume_type"
    serializer_class = serializers.VolumeTypeSerializer
    ordering_fields = ["name", "created"]
    filterset_fields = ["name", "backend", "is_default"]

    @extend_schema(
        request=serializers.VolumeTypeCreateSerializer, responses={201: serializers.VolumeTypeSerializer}
    )
    def create(self, request):
        body = serializers.VolumeTypeCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        vtype = services.create_volume_type(self.ctx, **body.validated_data)
        return Response(self.get_serializer(vtype).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.delete_volume_type(self.ctx, instance)


class VolumeViewSet(
    CallerInContext,
    Keyed,
    TransitionEndpoints,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ScopedViewSet,
):
    """Volumes of the current project."""

    model = Volume
    policy_prefix = "storage:volume"
    serializer_class = serializers.VolumeSerializer
    lifecycle = services.VOLUME
    filterset_class = filters.VolumeFilterSet
    ordering_fields = ["name", "created", "size", "status"]

    def scope_queryset(self, queryset):
        return volume_rows(queryset)

    @extend_schema(
        request=serializers.VolumeCreateSerializer,
        responses={202: serializers.VolumeSerializer, 200: serializers.VolumeSerializer},
        parameters=[IDEMPOTENCY_KEY],
    )
    def create(self, request):
        """Create a volume (blank, from an image, a snapshot or a volume): 202, status creating."""
        return self.create_accepted(request, serializers.VolumeCreateSerializer, services.create_volume)

    @extend_schema(request=None, responses={202: serializers.VolumeSerializer}, parameters=[IDEMPOTENCY_KEY])
    def destroy(self, request, pk=None):
        """Delete: 202; refused (409) while attached or while it has snapshots."""
        return accepted(
            self, services.delete_volume(self.ctx, self.get_object(), idempotency_key=self._key())
        )

    @extend_schema(
        request=serializers.ExtendSerializer,
        responses={202: serializers.VolumeSerializer},
        parameters=[IDEMPOTENCY_KEY],
    )
    @action(detail=True, methods=["post"])
    def extend(self, request, pk=None):
        """Grow the volume; an in-use one is grown under its running guest too."""
        body = serializers.ExtendSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        volume = services.extend_volume(
            self.ctx, self.get_object(), body.validated_data["new_size"], idempotency_key=self._key()
        )
        return accepted(self, volume)

    @extend_schema(
        request=serializers.UploadToImageSerializer,
        responses={202: serializers.VolumeSerializer},
        parameters=[IDEMPOTENCY_KEY],
    )
    @action(detail=True, methods=["post"], url_path="upload-to-image")
    def upload_to_image(self, request, pk=None):
        """Cinder's os-volume_upload_image: a new queued image receives this available volume's
        bytes from its storage host (volume ``uploading`` meanwhile); the answer names the image."""
        body = serializers.UploadToImageSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        volume, image_id = services.upload_to_image(
            self.ctx, self.get_object(), idempotency_key=self._key(), **body.validated_data
        )
        response = accepted(self, volume)
        response.data["image_id"] = str(image_id)
        return response

    @extend_schema(request=None, responses={200: serializers.VolumeSerializer})
    @action(detail=True, methods=["post"], url_path="force-detach")
    def force_detach(self, request, pk=None):
        """Admins: forget the volume's attachment (its host is asked to unplug it, best effort)."""
        services.force_detach(self.ctx, self.get_object())
        return accepted(self, self.get_object(), status.HTTP_200_OK)

    @extend_schema(request=serializers.ResetStateSerializer, responses={200: serializers.VolumeSerializer})
    @action(detail=True, methods=["post"], url_path="reset-state")
    def reset_state(self, request, pk=None):
        """Admins: set the status by hand, ending any transition."""
        body = serializers.ResetStateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.reset_state(self.ctx, self.get_object(), body.validated_data["status"])
        return accepted(self, self.get_object(), status.HTTP_200_OK)

    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def actions(self, request, pk=None):
        """The action log: who asked for what, when, and how it ended."""
        volume = self.get_object()
        policy.enforce(self.ctx, "storage:volume:actions")
        rows = audit.log_for("volume", volume.pk)
        return Response(
            [
                {
                    "action": r.action,
                    "user": r.user.username if r.user else None,
                    "operation": str(r.operation_id) if r.operation_id else None,
                    "start_time": r.start_time,
                    "finish_time": r.finish_time,
                    "result": r.result,
                    "message": r.message,
                }
                for r in rows
            ]
        )


class SnapshotViewSet(
    CallerInContext, TransitionEndpoints, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet
):
    """Snapshots of the current project's volumes."""

    model = Snapshot
    policy_prefix = "storage:snapshot"
    serializer_class = serializers.SnapshotSerializer
    lifecycle = services.SNAPSHOT
    filterset_class = filters.SnapshotFilterSet
    ordering_fields = ["name", "created", "size"]

    def scope_queryset(self, queryset):
        return queryset.select_related("operation").defer("operation__payload", "operation__result")

    @extend_schema(
        request=serializers.SnapshotCreateSerializer,
        responses={202: serializers.SnapshotSerializer},
        parameters=[IDEMPOTENCY_KEY],
    )
    def create(self, request):
        """Snapshot a volume: 202, status creating."""
        body = serializers.SnapshotCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        snapshot = services.create_snapshot(
            self.ctx, idempotency_key=request.headers.get("Idempotency-Key"), **body.validated_data
        )
        return accepted(self, snapshot)

    @extend_schema(
        request=None, responses={202: serializers.SnapshotSerializer}, parameters=[IDEMPOTENCY_KEY]
    )
    def destroy(self, request, pk=None):
        """Delete the snapshot: 202."""
        snapshot = services.delete_snapshot(
            self.ctx, self.get_object(), idempotency_key=request.headers.get("Idempotency-Key")
        )
        return accepted(self, snapshot)


class StoragePoolViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Admins: every storage host's backends with their capacity and what placement claimed."""

    model = StoragePool
    policy_prefix = "storage:pool"
    serializer_class = serializers.StoragePoolSerializer
    filterset_fields = ["name", "type", "simulated"]
    ordering_fields = ["name", "capacity_bytes", "allocated_gb"]

    def scope_queryset(self, queryset):
        return queryset.select_related("host")

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if self.action == "retrieve":
            policy.enforce(self.ctx, "storage:pool:list")
