"""Django admin for storage: read-only (every change goes through storage.services, which talk to
the hosts), searchable and filterable."""

from django.contrib import admin

from identity.admin import ReadOnlyAdmin

from .models import Attachment, Snapshot, StoragePool, Volume, VolumeType


@admin.register(VolumeType)
class VolumeTypeAdmin(ReadOnlyAdmin):
    list_display = ["name", "backend", "is_default", "created"]
    list_filter = ["backend", "is_default"]
    search_fields = ["name", "backend", "description"]


@admin.register(StoragePool)
class StoragePoolAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "host",
        "type",
        "pool",
        "capacity_bytes",
        "available_bytes",
        "allocated_gb",
        "simulated",
    ]
    list_filter = ["type", "simulated", "name"]
    search_fields = ["name", "pool", "host__name"]
    list_select_related = ["host"]


@admin.register(Volume)
class VolumeAdmin(ReadOnlyAdmin):
    list_display = ["name", "project", "size", "status", "busy", "volume_type", "pool", "bootable", "created"]
    list_filter = ["status", "busy", "bootable", "source", "volume_type"]
    search_fields = ["name", "id", "project__name", "description"]
    list_select_related = ["project", "volume_type", "pool__host"]


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    list_display = ["name", "project", "volume", "size", "status", "created"]
    list_filter = ["status"]
    search_fields = ["name", "id", "project__name", "volume__name"]
    list_select_related = ["project", "volume"]


@admin.register(Attachment)
class AttachmentAdmin(ReadOnlyAdmin):
    list_display = ["volume", "instance_id", "device", "host", "mode", "attached_at", "detached_at"]
    list_filter = ["mode", "delete_on_termination"]
    search_fields = ["volume__name", "instance_id", "host__name"]
    list_select_related = ["volume", "host"]
