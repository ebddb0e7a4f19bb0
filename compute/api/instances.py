"""Compute API: instances (DESIGN.md section 10) and the scheduler's explain for admins."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from identity import audit, policy
from identity.api.base import CallerInContext, ScopedViewSet, allowed_once
from identity.api.serializers import ResourceActionSerializer
from identity.api.strict import StrictCharField, StrictSerializer, refuse_body
from identity.errors import InvalidInput
from storage.api.serializers import AttachmentSerializer, VolumeAttachmentCreateSerializer
from storage.models import Volume
from workers.api.lifecycle import IDEMPOTENCY_KEY, TransitionEndpoints, accepted
from workers.api.serializers import OperationSummarySerializer
from workers.lifecycle import message_shown, shows_hosts
from workers.models import Operation

from .. import services
from ..models import Flavor, Instance
from .filters import InstanceFilterSet
from .images import ImageSerializer


class FlavorSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Flavor
        fields = ["id", "name", "vcpus", "ram_mb", "disk_gb"]


class InstanceSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text="Nova's status, derived from the three states")
    flavor = FlavorSummarySerializer(read_only=True)
    image = serializers.SerializerMethodField()
    addresses = serializers.SerializerMethodField(
        help_text="network name -> addresses (none without networking)"
    )
    operation = OperationSummarySerializer(read_only=True, allow_null=True, help_text="the latest operation")
    host = serializers.SerializerMethodField(help_text="compute host (cloud admins only)")
    fault = serializers.SerializerMethodField(
        help_text="{code, message, created} of the last failure; cloud admins also get its details"
    )
    created = serializers.DateTimeField(read_only=True)
    volumes = serializers.SerializerMethodField(help_text="attached volumes: [{id, device, ...}]")

    class Meta:
        model = Instance
        fields = [
            "id",
            "name",
            "status",
            "vm_state",
            "task_state",
            "power_state",
            "flavor",
            "image",
            "addresses",
            "key_name",
            "metadata",
            "description",
            "tags",
            "availability_zone",
            "locked",
            "created",
            "updated",
            "launched_at",
            "fault",
            "operation",
            "host",
            "project",
            "volumes",
        ]
        read_only_fields = fields

    def get_volumes(self, obj) -> list[dict]:
        """One query per response, not per row: the attachments of every instance it shows."""
        root = self.parent if self.parent is not None else self
        if not hasattr(root, "_zenith_volumes"):
            shown = root.instance
            rows = [shown] if isinstance(shown, Instance) else list(shown or [])
            root._zenith_volumes = services.instance_volumes([r.pk for r in rows if r is not None])
        return [
            {
                "id": str(a.volume_id),
                "name": a.volume.name,
                "device": a.device,
                "delete_on_termination": a.delete_on_termination,
                "attached": a.attached_at is not None,
            }
            for a in root._zenith_volumes.get(str(obj.pk), [])
        ]

    def get_image(self, obj) -> dict | None:
        return {"id": str(obj.image_id), "name": obj.image.name} if obj.image_id else None

    def get_addresses(self, obj) -> dict:
        return {}

    def get_fault(self, obj) -> dict | None:
        return obj.fault_shown(self._shows_host())

    def get_host(self, obj) -> str | None:
        if obj.host_id is None or not self._shows_host():
            return None
        return obj.host.name

    def _shows_host(self) -> bool:
        return allowed_once(self, "compute:instance:show_host")


class BootFromVolumeSerializer(StrictSerializer):
    """Nova's block_device_mapping_v2 entry with boot_index 0 and destination_type volume."""

    size = serializers.IntegerField(
        required=False, min_value=1, help_text="GiB of the new volume (default: what the image needs)"
    )
    volume_type = StrictCharField(required=False, help_text="volume type id or name (default type)")
    delete_on_termination = serializers.BooleanField(
        required=False, default=False, help_text="delete the volume with the instance"
    )


class InstanceCreateSerializer(StrictSerializer):
    """Boot sources (one of): ``image`` (a copy-on-write disk on the compute host); ``image`` with
    ``boot_from_volume`` (source_type image: a new volume is created from the image on a storage
    host first, the instance waits in BUILD meanwhile); ``boot_volume`` (source_type volume: an
    existing bootable, available volume; ``boot_from_volume`` may then carry only
    ``delete_on_termination``). The volume is the instance's /dev/vda, in-use once it is ACTIVE."""

    name = StrictCharField(max_length=255)
    flavor = StrictCharField(help_text="flavor id or name")
    image = StrictCharField(required=False, help_text="image id or name")
    boot_volume = StrictCharField(required=False, help_text="id or name of a bootable volume to boot from")
    boot_from_volume = BootFromVolumeSerializer(
        required=False, help_text="boot from a volume: a new one made from image, or boot_volume's options"
    )
    key_name = StrictCharField(required=False, allow_blank=True, allow_null=True, max_length=255)
    user_data = StrictCharField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False)
    metadata = serializers.DictField(child=StrictCharField(allow_blank=True), required=False)
    description = StrictCharField(required=False, allow_blank=True, max_length=255)
    tags = serializers.ListField(child=StrictCharField(), required=False, help_text="labels (at most 50)")
    availability_zone = StrictCharField(required=False, allow_blank=True, allow_null=True, max_length=64)
    networks = serializers.JSONField(required=False, help_text="network ids (needs networking)")
    security_groups = serializers.JSONField(required=False, help_text="security group names")


class InstanceUpdateSerializer(StrictSerializer):
    """What a PATCH changes: the name, the description, the tags (all of them). Nothing on the host."""

    name = StrictCharField(required=False, max_length=255)
    description = StrictCharField(required=False, allow_blank=True, max_length=255)
    tags = serializers.ListField(child=StrictCharField(), required=False)


class RebootSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=["soft", "hard"], default="soft")


class SnapshotSerializer(StrictSerializer):
    name = StrictCharField(max_length=255, help_text="the new image's name")


class RebuildSerializer(StrictSerializer):
    image = StrictCharField(help_text="id or name of the image to rebuild from")


class SnapshotAnswerSerializer(ImageSerializer):
    """The new image (queued), with the operation that fills it and the instance it comes from."""

    operation = OperationSummarySerializer(read_only=True, help_text="the snapshot's operation")
    instance = serializers.UUIDField(read_only=True)

    class Meta(ImageSerializer.Meta):
        fields = [*ImageSerializer.Meta.fields, "operation", "instance"]
        read_only_fields = fields


class InstanceActionSerializer(ResourceActionSerializer):
    """An instance's action log: the audit trail's record, the host names in it for admins only."""

    message = serializers.SerializerMethodField()

    def get_message(self, row) -> str:
        return message_shown(row.message, shows_hosts(getattr(self.context.get("request"), "zenith", None)))

    class Meta(ResourceActionSerializer.Meta):
        # The resource is the instance in the URL.
        fields = [
            f
            for f in ResourceActionSerializer.Meta.fields
            if f not in ("resource_type", "resource_id", "project")
        ]
        read_only_fields = fields


class ConsoleLogSerializer(serializers.Serializer):
    output = serializers.CharField()
    supported = serializers.BooleanField(help_text="false on a simulated host, which runs no guest")
    message = serializers.CharField()


def instance_queryset(qs):
    """What every instance row shows, fetched in the same fixed number of queries."""
    return qs.for_rows()


class InstanceViewSet(
    CallerInContext, TransitionEndpoints, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet
):
    """Instances of the current project. Create and every action answer 202 with the operation that
    carries them out; an action the state does not allow answers 409 naming the state."""

    model = Instance
    policy_prefix = "compute:instance"
    serializer_class = InstanceSerializer
    lifecycle = services.INSTANCE
    ordering_fields = ["name", "created", "vm_state", "launched_at"]
    filterset_class = InstanceFilterSet

    def scope_queryset(self, queryset):
        return instance_queryset(queryset)

    @extend_schema(request=InstanceUpdateSerializer, responses=InstanceSerializer)
    def partial_update(self, request, pk=None):
        """Rename, describe or re-tag an instance (200 with it); a locked one refuses (409)."""
        body = InstanceUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        instance = self.get_object()
        with transaction.atomic():
            tags = changes.pop("tags", None)
            if changes:
                services.update_instance(self.ctx, instance, **changes)
            if tags is not None:
                services.set_instance_tags(self.ctx, instance, tags)
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        request=InstanceCreateSerializer,
        responses={202: InstanceSerializer, 200: InstanceSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="a retried POST with the same key answers with the same instance (200)",
            )
        ],
    )
    def create(self, request):
        """Launch an instance: 202 with the instance (status BUILD) and its operation."""
        body = InstanceCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        instance, created = services.create_instance(
            self.ctx, idempotency_key=request.headers.get("Idempotency-Key"), **body.validated_data
        )
        return accepted(self, instance, status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)

    @extend_schema(request=None, responses={202: InstanceSerializer})
    def destroy(self, request, pk=None):
        """Delete: 202; the instance shows task_state deleting until its host removed the domain."""
        return self.run_transition("delete")

    @extend_schema(
        request=RebootSerializer, responses={202: InstanceSerializer}, parameters=[IDEMPOTENCY_KEY]
    )
    @action(detail=True, methods=["post"])
    def reboot(self, request, pk=None):
        """Soft (ACPI, the default) or hard (reset) reboot."""
        body = RebootSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        return self.run_transition("reboot_hard" if body.validated_data["type"] == "hard" else "reboot")

    @extend_schema(
        request=SnapshotSerializer, responses={202: SnapshotAnswerSerializer}, parameters=[IDEMPOTENCY_KEY]
    )
    @action(detail=True, methods=["post"])
    def snapshot(self, request, pk=None):
        """Nova's createImage: a new private image (queued -> saving -> active) of the instance's
        root disk, running (paused during the copy) or stopped; task_state image_snapshot meanwhile."""
        body = SnapshotSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        instance, image = services.snapshot_instance(
            self.ctx,
            self.get_object(),
            name=body.validated_data["name"],
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
        image.instance = instance.pk
        image.operation = Operation.objects.filter(pk=instance.operation_id).first()
        data = SnapshotAnswerSerializer(image, context={"ctx": self.ctx}).data
        response = Response(data, status=status.HTTP_202_ACCEPTED)
        if instance.operation_id:
            response["Location"] = f"/api/v1/operations/{instance.operation_id}/"
        return response

    @extend_schema(
        request=RebuildSerializer, responses={202: InstanceSerializer}, parameters=[IDEMPOTENCY_KEY]
    )
    @action(detail=True, methods=["post"])
    def rebuild(self, request, pk=None):
        """Nova's rebuild: the same instance (id, host, flavor) on a root disk made anew from the image;
        task_state rebuilding (status REBUILD), then ACTIVE running that image."""
        body = RebuildSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        instance = services.rebuild_instance(
            self.ctx,
            self.get_object(),
            image=body.validated_data["image"],
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
        return accepted(self, instance)

    @extend_schema(request=None, responses={200: InstanceSerializer})
    @action(detail=True, methods=["post"])
    def lock(self, request, pk=None):
        """Refuse every action by non-admins until unlocked."""
        refuse_body(request.data)
        services.lock_instance(self.ctx, self.get_object())
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=None, responses={200: InstanceSerializer})
    @action(detail=True, methods=["post"])
    def unlock(self, request, pk=None):
        """Allow actions again."""
        refuse_body(request.data)
        services.unlock_instance(self.ctx, self.get_object())
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("lines", OpenApiTypes.INT, OpenApiParameter.QUERY, description="default 100")
        ],
        responses=ConsoleLogSerializer,
    )
    @action(detail=True, methods=["get"], url_path="console-log", filter_backends=[], pagination_class=None)
    def console_log(self, request, pk=None):
        """The last lines of the guest's serial console, read by its host (503 when the host is down)."""
        raw = request.query_params.get("lines", "100")
        try:
            lines = int(raw)
        except ValueError:
            raise InvalidInput("lines must be a whole number.") from None
        return Response(services.console_log(self.ctx, self.get_object(), lines))

    @extend_schema(
        request=VolumeAttachmentCreateSerializer,
        responses={202: AttachmentSerializer},
        parameters=[IDEMPOTENCY_KEY],
        methods=["POST"],
    )
    @extend_schema(responses=AttachmentSerializer(many=True), methods=["GET"])
    @action(
        detail=True,
        methods=["get", "post"],
        url_path="volume-attachments",
        filter_backends=[],
        pagination_class=None,
    )
    def volume_attachments(self, request, pk=None):
        """GET: the volumes attached to the instance. POST ``{"volume"}``: attach one (202); its
        device (``/dev/vdb``...) is chosen and reported; 409 when the volume is attached elsewhere or
        the instance's host cannot reach its backend."""
        instance = self.get_object()
        if request.method == "GET":
            rows = services.instance_volumes([instance.pk]).get(str(instance.pk), [])
            return Response(AttachmentSerializer(rows, many=True).data)
        body = VolumeAttachmentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        attachment = services.attach_volume_to_instance(
            self.ctx,
            instance,
            body.validated_data["volume"],
            delete_on_termination=body.validated_data["delete_on_termination"],
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
        response = Response(AttachmentSerializer(attachment).data, status=status.HTTP_202_ACCEPTED)
        operation_id = (
            Volume.objects.filter(pk=attachment.volume_id).values_list("operation_id", flat=True).first()
        )
        if operation_id:
            response["Location"] = f"/api/v1/operations/{operation_id}/"
        return response

    @extend_schema(request=None, responses={202: None}, parameters=[IDEMPOTENCY_KEY])
    @action(
        detail=True,
        methods=["delete"],
        url_path=r"volume-attachments/(?P<volume_id>[0-9a-fA-F-]{32,36})",
        filter_backends=[],
        pagination_class=None,
    )
    def detach_volume(self, request, pk=None, volume_id=None):
        """Detach the volume from the instance: 202 (the volume shows detaching, then available)."""
        volume = services.detach_volume_from_instance(
            self.ctx, self.get_object(), volume_id, idempotency_key=request.headers.get("Idempotency-Key")
        )
        response = Response(status=status.HTTP_202_ACCEPTED)
        if volume.operation_id:
            response["Location"] = f"/api/v1/operations/{volume.operation_id}/"
        return response

    @extend_schema(responses=InstanceActionSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def actions(self, request, pk=None):
        """The action log: who asked for what, when, and how it ended."""
        instance = self.get_object()
        policy.enforce(self.ctx, "compute:instance:actions")
        rows = audit.log_for("instance", instance.pk)
        return Response(InstanceActionSerializer(rows, many=True, context={"request": request}).data)


class SchedulerExplainSerializer(StrictSerializer):
    flavor = StrictCharField(help_text="flavor id or name")
    availability_zone = StrictCharField(required=False, allow_blank=True, default="")
    hypervisor_type = StrictCharField(required=False, allow_blank=True, default="")


@extend_schema(
    request=SchedulerExplainSerializer,
    responses=inline_serializer(
        "SchedulerExplain",
        {
            "weigher": serializers.CharField(),
            "hosts": serializers.ListField(child=serializers.DictField()),
        },
    ),
)
class SchedulerExplainViewSet(ScopedViewSet):
    """Admins: a dry run of the scheduler for a flavor: per host, pass or why it fails, best first."""

    model = Flavor
    serializer_class = SchedulerExplainSerializer  # also what OPTIONS describes

    def create(self, request):
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(services.explain_scheduling(self.ctx, **body.validated_data))
