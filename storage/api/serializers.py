"""Storage API shapes. Meaning is checked in storage.services; these check types only, and refuse
keys they do not know (a misspelt ``size`` is a 400, not a blank default)."""

from __future__ import annotations

from rest_framework import serializers

from identity.api.base import allowed_once
from identity.api.strict import StrictCharField, StrictIntegerField, StrictSerializer
from workers.api.serializers import OperationSummarySerializer

from ..models import Attachment, Snapshot, StoragePool, Volume, VolumeType


class VolumeTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = VolumeType
        fields = ["id", "name", "backend", "extra_specs", "description", "is_default", "created"]
        read_only_fields = fields


class VolumeTypeCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=64)
    backend = StrictCharField(max_length=64, required=False, default="local")
    extra_specs = serializers.DictField(child=StrictCharField(allow_blank=True), required=False)
    description = StrictCharField(required=False, allow_blank=True, default="", max_length=1024)
    is_default = serializers.BooleanField(required=False, default=False)


class AttachmentSerializer(serializers.ModelSerializer):
    instance = serializers.UUIDField(source="instance_id", read_only=True)
    volume = serializers.UUIDField(source="volume_id", read_only=True)

    class Meta:
        model = Attachment
        fields = ["id", "volume", "instance", "device", "mode", "delete_on_termination", "attached_at"]
        read_only_fields = fields


class VolumeSerializer(serializers.ModelSerializer):
    status = serializers.CharField(source="display_status", read_only=True, help_text="Cinder's status")
    volume_type = serializers.CharField(source="volume_type.name", read_only=True)
    attachments = serializers.SerializerMethodField(help_text="the live attachment (at most one)")
    operation = OperationSummarySerializer(read_only=True, allow_null=True, help_text="the latest operation")
    host = serializers.SerializerMethodField(help_text="storage host and backend (cloud admins only)")
    source = serializers.SerializerMethodField(help_text="{kind, id}: blank, image, snapshot or volume")

    class Meta:
        model = Volume
        fields = [
            "id",
            "name",
            "description",
            "size",
            "status",
            "volume_type",
            "bootable",
            "source",
            "attachments",
            "fault",
            "operation",
            "host",
            "project",
            "created",
            "updated",
        ]
        read_only_fields = fields

    def get_source(self, obj) -> dict:
        ids = {
            "image": obj.source_image_id,
            "snapshot": obj.source_snapshot_id,
            "volume": obj.source_volume_id,
        }
        ref = ids.get(obj.source)
        return {"kind": obj.source, "id": str(ref) if ref else None}

    def get_attachments(self, obj) -> list[dict]:
        return [AttachmentSerializer(a).data for a in getattr(obj, "live_attachments", [])]

    def get_host(self, obj) -> dict | None:
        if obj.pool_id is None or not self._shows_host():
            return None
        return {"host": obj.pool.host.name, "backend": obj.pool.name, "simulated": obj.pool.simulated}

    def _shows_host(self) -> bool:
        return allowed_once(self, "storage:volume:show_host")


class VolumeCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=255)
    size = StrictIntegerField(required=False, allow_null=True, help_text="GiB (default: the source's size)")
    volume_type = StrictCharField(required=False, allow_null=True, help_text="id or name (default type)")
    description = StrictCharField(required=False, allow_blank=True, allow_null=True, max_length=1024)
    image = StrictCharField(required=False, allow_null=True, help_text="image id or name")
    snapshot = StrictCharField(required=False, allow_null=True, help_text="snapshot id or name")
    source_volume = StrictCharField(required=False, allow_null=True, help_text="volume id or name to clone")


class UploadToImageSerializer(StrictSerializer):
    name = StrictCharField(max_length=255, help_text="the new image's name")
    disk_format = serializers.ChoiceField(choices=["raw", "qcow2"], required=False, help_text="default raw")


class ExtendSerializer(StrictSerializer):
    new_size = StrictIntegerField(help_text="GiB, larger than the volume's size")


class ResetStateSerializer(StrictSerializer):
    status = StrictCharField(help_text="available, in-use, error, error_deleting or error_extending")


class SnapshotSerializer(serializers.ModelSerializer):
    status = serializers.CharField(source="display_status", read_only=True)
    volume = serializers.UUIDField(source="volume_id", read_only=True)
    operation = OperationSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = Snapshot
        fields = [
            "id",
            "name",
            "description",
            "volume",
            "size",
            "status",
            "fault",
            "operation",
            "project",
            "created",
        ]
        read_only_fields = fields


class SnapshotCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=255)
    volume = StrictCharField(help_text="volume id or name")
    description = StrictCharField(required=False, allow_blank=True, allow_null=True, max_length=1024)


class StoragePoolSerializer(serializers.ModelSerializer):
    host = serializers.CharField(source="host.name", read_only=True)
    capacity_gb = serializers.IntegerField(read_only=True)
    free_gb = serializers.FloatField(read_only=True)

    class Meta:
        model = StoragePool
        fields = [
            "id",
            "host",
            "name",
            "type",
            "pool",
            "capacity_bytes",
            "available_bytes",
            "capacity_gb",
            "allocated_gb",
            "free_gb",
            "allocation_ratio",
            "reaches",
            "simulated",
            "reported_at",
        ]
        read_only_fields = fields


class VolumeAttachmentCreateSerializer(StrictSerializer):
    volume = StrictCharField(help_text="volume id or name")
    delete_on_termination = serializers.BooleanField(required=False, default=False)
