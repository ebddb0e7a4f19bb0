"""Compute resources: flavors and hosts (and, later, images, instances)."""

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from .scoping import FlavorQuerySet, HostQuerySet


class Flavor(models.Model):
    """A hardware template for instances: virtual CPUs, memory and disks (sizes never change once created).

    A public flavor is offered to every project; a private one only to the projects listed in its
    FlavorAccess rows. A disabled flavor stays visible (instances refer to it) but launches nothing new.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=64, unique=True)
    vcpus = models.PositiveIntegerField()
    ram_mb = models.PositiveIntegerField(verbose_name="RAM (MB)")
    disk_gb = models.PositiveIntegerField(verbose_name="root disk (GB)")
    ephemeral_gb = models.PositiveIntegerField(default=0, verbose_name="ephemeral disk (GB)")
    swap_mb = models.PositiveIntegerField(default=0, verbose_name="swap (MB)")
    is_public = models.BooleanField(default=True)
    extra_specs = models.JSONField(
        default=dict, blank=True, help_text="scheduler and driver hints, str -> str"
    )
    description = models.TextField(blank=True, default="")
    disabled = models.BooleanField(default=False, help_text="hidden from new launches")
    created = models.DateTimeField(auto_now_add=True)

    objects = FlavorQuerySet.as_manager()

    class Meta:
        ordering = ["vcpus", "ram_mb", "disk_gb", "name"]

    def __str__(self) -> str:
        return self.name


class FlavorAccess(models.Model):
    """``project`` may use the private flavor ``flavor``."""

    flavor = models.ForeignKey(Flavor, on_delete=models.CASCADE, related_name="access")
    project = models.ForeignKey("identity.Project", on_delete=models.CASCADE, related_name="flavor_access")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["flavor__name", "project__name"]
        verbose_name = "flavor access"
        verbose_name_plural = "flavor access"
        constraints = [models.UniqueConstraint(fields=["flavor", "project"], name="unique_flavor_access")]

    def __str__(self) -> str:
        return f"{self.project_id} may use {self.flavor_id}"


def _default_cpu_ratio() -> float:
    return settings.ZENITH_CPU_ALLOCATION_RATIO


def _default_ram_ratio() -> float:
    return settings.ZENITH_RAM_ALLOCATION_RATIO


class Host(models.Model):
    """A compute host (hypervisor): registered and kept up to date by its agent's heartbeats.

    Capacity (vcpus, memory, disk) comes from libvirt; ``*_used`` are claimed by the scheduler.
    The scheduler may place up to ``capacity * allocation ratio``. A host whose last heartbeat is
    older than ``ZENITH_HOST_DOWN_AFTER`` is down; an admin may disable a host (with a reason).
    """

    UP = "up"
    DOWN = "down"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=63, unique=True)
    uri = models.CharField(max_length=255, blank=True, default="", help_text="libvirt connection URI")
    hypervisor_type = models.CharField(max_length=32, blank=True, default="")
    hypervisor_version = models.BigIntegerField(default=0)
    vcpus = models.PositiveIntegerField(default=0, verbose_name="vCPUs")
    memory_mb = models.PositiveIntegerField(default=0, verbose_name="memory (MB)")
    disk_gb = models.PositiveIntegerField(default=0, verbose_name="local disk (GB)")
    vcpus_used = models.PositiveIntegerField(default=0, verbose_name="vCPUs used")
    memory_mb_used = models.PositiveIntegerField(default=0, verbose_name="memory used (MB)")
    disk_gb_used = models.PositiveIntegerField(default=0, verbose_name="local disk used (GB)")
    cpu_allocation_ratio = models.FloatField(default=_default_cpu_ratio)
    ram_allocation_ratio = models.FloatField(default=_default_ram_ratio)
    disk_allocation_ratio = models.FloatField(default=1.0)
    availability_zone = models.CharField(max_length=64, default="nova")
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=255, blank=True, default="")
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = HostQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def is_up(self, now: datetime | None = None) -> bool:
        if self.last_heartbeat is None:
            return False
        now = now or timezone.now()
        return self.last_heartbeat >= now - settings.ZENITH_HOST_DOWN_AFTER

    @property
    def state(self) -> str:
        """``up`` while heartbeats arrive, ``down`` once none came for ``ZENITH_HOST_DOWN_AFTER``."""
        return self.UP if self.is_up() else self.DOWN

    @property
    def vcpus_limit(self) -> float:
        return self.vcpus * self.cpu_allocation_ratio

    @property
    def memory_mb_limit(self) -> float:
        return self.memory_mb * self.ram_allocation_ratio

    @property
    def disk_gb_limit(self) -> float:
        return self.disk_gb * self.disk_allocation_ratio
