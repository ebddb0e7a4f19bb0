"""Compute API shapes. Validation of meaning lives in compute.services; these check types only."""

from rest_framework import serializers

from identity.api.strict import StrictCharField, StrictModelSerializer, StrictSerializer
from workers.models import Host

from ..models import Flavor, FlavorAccess


class FlavorSerializer(StrictModelSerializer):
    extra_specs = serializers.DictField(
        child=StrictCharField(allow_blank=True, max_length=255, trim_whitespace=False),
        required=False,
        help_text="scheduler and driver hints, string keys to string values",
    )

    class Meta:
        model = Flavor
        fields = [
            "id",
            "name",
            "vcpus",
            "ram_mb",
            "disk_gb",
            "ephemeral_gb",
            "swap_mb",
            "is_public",
            "extra_specs",
            "description",
            "disabled",
            "created",
        ]
        read_only_fields = ["id", "created"]
        extra_kwargs = {
            "name": {"validators": []},
            "description": {"required": False, "max_length": 1024},
        }


class FlavorAccessRequestSerializer(StrictSerializer):
    project = serializers.UUIDField(help_text="id of the project to grant or revoke")


class FlavorAccessSerializer(serializers.ModelSerializer):
    project_name = serializers.CharField(source="project.name", read_only=True)

    class Meta:
        model = FlavorAccess
        fields = ["project", "project_name", "created"]


class HostSerializer(serializers.ModelSerializer):
    state = serializers.ChoiceField(
        choices=[Host.UP, Host.DOWN],
        read_only=True,
        help_text="up while the agent heartbeats; down after ZENITH_HOST_DOWN_AFTER without one",
    )
    domains_running = serializers.IntegerField(
        source="compute.domains_running",
        read_only=True,
        allow_null=True,
        help_text="domains the host last reported running (its own view)",
    )
    domains_total = serializers.IntegerField(
        source="compute.domains_total",
        read_only=True,
        allow_null=True,
        help_text="domains the host last reported defined, running or not",
    )
    domains_reported_at = serializers.DateTimeField(
        source="compute.domains_reported_at", read_only=True, allow_null=True
    )
    # What its compute node adds to the host's own fields, flat, as Nova's hypervisors show them.
    vcpus = serializers.IntegerField(source="compute.vcpus", read_only=True)
    vcpus_used = serializers.IntegerField(source="compute.vcpus_used", read_only=True)
    memory_mb = serializers.IntegerField(source="compute.memory_mb", read_only=True)
    memory_mb_used = serializers.IntegerField(source="compute.memory_mb_used", read_only=True)
    disk_gb = serializers.IntegerField(source="compute.disk_gb", read_only=True)
    disk_gb_used = serializers.IntegerField(source="compute.disk_gb_used", read_only=True)
    cpu_allocation_ratio = serializers.FloatField(source="compute.cpu_allocation_ratio", read_only=True)
    ram_allocation_ratio = serializers.FloatField(source="compute.ram_allocation_ratio", read_only=True)
    hypervisor_type = serializers.CharField(source="compute.hypervisor_type", read_only=True)
    hypervisor_version = serializers.IntegerField(source="compute.hypervisor_version", read_only=True)

    class Meta:
        model = Host
        fields = [
            "id",
            "name",
            "roles",
            "state",
            "enabled",
            "disabled_reason",
            "vcpus",
            "vcpus_used",
            "memory_mb",
            "memory_mb_used",
            "disk_gb",
            "disk_gb_used",
            "cpu_allocation_ratio",
            "ram_allocation_ratio",
            "availability_zone",
            "hypervisor_type",
            "hypervisor_version",
            "last_heartbeat",
            "domains_running",
            "domains_total",
            "domains_reported_at",
        ]
        read_only_fields = fields


class HostDisableSerializer(StrictSerializer):
    reason = StrictCharField(
        max_length=255, help_text="why no new instances go to this host (shown to admins)"
    )
