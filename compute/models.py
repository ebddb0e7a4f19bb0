"""Compute resources: flavors (and, later, images, instances, hosts)."""

import uuid

from django.db import models

from .scoping import FlavorQuerySet


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
