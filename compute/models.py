"""Compute resources: flavors, hosts, images, instances and their action log."""

import uuid

from django.conf import settings
from django.db import models

from workers.models import AsyncResource, live_list_index, unique_idempotency_key

from .scoping import FlavorQuerySet, ImageQuerySet, InstanceQuerySet


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


class ComputeNode(models.Model):
    """The compute side of a host (``workers.Host``): capacity as libvirt reports it, and what the
    scheduler claimed of it (``*_used``). The scheduler may place up to ``capacity * allocation
    ratio``. Its primary key is its host's, so a claim and its release name the host directly."""

    host = models.OneToOneField(
        "workers.Host", primary_key=True, on_delete=models.CASCADE, related_name="compute"
    )
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
    domains = models.JSONField(
        default=list, blank=True, help_text="the domains libvirt last listed on the host (power sync)"
    )
    domains_reported_at = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["host__name"]
        verbose_name = "compute node"

    def __str__(self) -> str:
        return f"compute on {self.host_id}"

    @property
    def domains_running(self) -> int | None:
        """Domains libvirt last reported running here (the host's own view); None before a report."""
        if self.domains_reported_at is None:
            return None
        return sum(1 for d in self.domains if d.get("power_state") == "running")

    @property
    def domains_total(self) -> int | None:
        """Domains libvirt last reported defined here, running or not; None before a report."""
        return None if self.domains_reported_at is None else len(self.domains)

    @property
    def vcpus_limit(self) -> float:
        return self.vcpus * self.cpu_allocation_ratio

    @property
    def memory_mb_limit(self) -> float:
        return self.memory_mb * self.ram_allocation_ratio

    @property
    def disk_gb_limit(self) -> float:
        return self.disk_gb * self.disk_allocation_ratio


class Image(models.Model):
    """A bootable disk image (what Glance keeps): its bytes in Django's storage, its metadata here.

    ``status`` goes queued (created, no bytes) -> saving (upload under way) -> active (bytes stored,
    size and sha256 recorded); a failed upload ends ``killed``. ``properties`` are free-form
    str -> str, including ``kernel_id``/``ramdisk_id`` (ids of aki/ari images) for direct kernel boot.
    """

    QUEUED = "queued"
    SAVING = "saving"
    ACTIVE = "active"
    KILLED = "killed"
    DELETED = "deleted"
    STATUSES = [(s, s) for s in (QUEUED, SAVING, ACTIVE, KILLED, DELETED)]
    PUBLIC = "public"
    PRIVATE = "private"
    SHARED = "shared"
    VISIBILITIES = [(v, v) for v in (PUBLIC, PRIVATE, SHARED)]
    DISK_FORMATS = [(f, f) for f in ("qcow2", "raw", "iso", "aki", "ari")]
    CONTAINER_FORMATS = [(f, f) for f in ("bare", "aki", "ari")]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    project = models.ForeignKey(
        "identity.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="images"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="images"
    )
    status = models.CharField(max_length=16, choices=STATUSES, default=QUEUED)
    visibility = models.CharField(max_length=16, choices=VISIBILITIES, default=PRIVATE)
    disk_format = models.CharField(max_length=16, choices=DISK_FORMATS, default="qcow2")
    container_format = models.CharField(max_length=16, choices=CONTAINER_FORMATS, default="bare")
    size = models.BigIntegerField(null=True, blank=True, help_text="bytes, once uploaded")
    checksum = models.CharField(max_length=64, blank=True, default="", help_text="sha256, hex")
    min_disk = models.PositiveIntegerField(default=0, help_text="GB of root disk needed to boot it")
    min_ram = models.PositiveIntegerField(default=0, help_text="MB of RAM needed to boot it")
    protected = models.BooleanField(default=False, help_text="cannot be deleted while set")
    properties = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True, help_text="free-form labels, as Glance's tags")
    file = models.FileField(upload_to="images/", blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = ImageQuerySet.as_manager()

    class Meta:
        ordering = ["name", "created"]
        indexes = [models.Index(fields=["visibility", "status"], name="image_visibility")]

    def __str__(self) -> str:
        return self.name


class ImageMember(models.Model):
    """An offer of the shared image ``image`` to ``project``, with the member's consent (as Glance does).

    ``status`` starts ``pending`` when the owner adds the project; only the member project decides it:
    ``accepted`` lets the project list, resolve by name and boot the image, ``rejected`` (also what
    leaving does) hides it again. A pending or rejected image is seen by the member only where it
    decides (``ImageQuerySet.offered_to``), never in its catalogue.
    """

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    STATUSES = [(s, s) for s in (PENDING, ACCEPTED, REJECTED)]

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="members")
    project = models.ForeignKey("identity.Project", on_delete=models.CASCADE, related_name="image_grants")
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created"]
        constraints = [models.UniqueConstraint(fields=["image", "project"], name="unique_image_member")]

    def __str__(self) -> str:
        return f"image {self.image_id} offered to {self.project_id}: {self.status}"


class Instance(AsyncResource):
    """A virtual machine. Nova's three states: ``vm_state`` (stable), ``task_state`` (the action in
    progress, "" when none) and ``power_state`` (what the hypervisor last said); ``status`` is derived.

    Sizes are copied from the flavor at launch (what the scheduler claimed on ``host``).
    """

    # vm_state
    BUILDING = "building"
    ACTIVE = "active"
    STOPPED = "stopped"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    ERROR = "error"
    DELETED = "deleted"
    VM_STATES = [(s, s) for s in (BUILDING, ACTIVE, STOPPED, PAUSED, SUSPENDED, ERROR, DELETED)]
    # task_state
    SCHEDULING = "scheduling"
    SPAWNING = "spawning"
    REBOOTING = "rebooting"
    REBOOTING_HARD = "rebooting_hard"
    POWERING_OFF = "powering-off"
    POWERING_ON = "powering-on"
    PAUSING = "pausing"
    UNPAUSING = "unpausing"
    SUSPENDING = "suspending"
    RESUMING = "resuming"
    DELETING = "deleting"
    IMAGE_SNAPSHOT = "image_snapshot"  # Nova's: the root disk is being copied to a new image
    REBUILDING = "rebuilding"  # the root disk is recreated from a (new) image, the domain restarted
    TASK_STATES = [
        (s, s)
        for s in (
            SCHEDULING,
            SPAWNING,
            REBOOTING,
            REBOOTING_HARD,
            POWERING_OFF,
            POWERING_ON,
            PAUSING,
            UNPAUSING,
            SUSPENDING,
            RESUMING,
            DELETING,
            IMAGE_SNAPSHOT,
            REBUILDING,
        )
    ]
    # power_state (the driver's values)
    POWER_STATES = [(s, s) for s in ("nostate", "running", "paused", "shutdown", "crashed", "suspended")]

    project = models.ForeignKey("identity.Project", on_delete=models.CASCADE, related_name="instances")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="instances"
    )
    flavor = models.ForeignKey(Flavor, on_delete=models.PROTECT, related_name="instances")
    image = models.ForeignKey(
        Image, null=True, blank=True, on_delete=models.PROTECT, related_name="instances"
    )
    vcpus = models.PositiveIntegerField()
    memory_mb = models.PositiveIntegerField()
    disk_gb = models.PositiveIntegerField()
    key_name = models.CharField(max_length=255, blank=True, default="")
    key_data = models.TextField(blank=True, default="", help_text="the key pair's public key at launch")
    user_data = models.TextField(blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    description = models.CharField(max_length=255, blank=True, default="")
    # Nova's server tags (2.26): labels to find instances by (``tags__has_item``), nothing more.
    tags = models.JSONField(default=list, blank=True)
    availability_zone = models.CharField(max_length=64, blank=True, default="")
    host = models.ForeignKey(
        "workers.Host", null=True, blank=True, on_delete=models.SET_NULL, related_name="instances"
    )
    vm_state = models.CharField(max_length=16, choices=VM_STATES, default=BUILDING)
    task_state = models.CharField(max_length=16, choices=TASK_STATES, blank=True, default=SCHEDULING)
    power_state = models.CharField(max_length=16, choices=POWER_STATES, default="nostate")
    locked = models.BooleanField(default=False)
    locked_by = models.CharField(max_length=8, blank=True, default="", help_text="owner or admin")
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    attempted_hosts = models.JSONField(default=list, blank=True, help_text="hosts a spawn was tried on")
    launched_at = models.DateTimeField(null=True, blank=True)
    # Its root disk is a volume (storage's Attachment at /dev/vda): only such an instance costs the
    # conductor a lookup of its root volume on the launch path.
    boots_from_volume = models.BooleanField(default=False)
    terminated_at = models.DateTimeField(null=True, blank=True)
    power_synced_at = models.DateTimeField(null=True, blank=True)

    objects = InstanceQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        indexes = [
            # The project's list, newest first, without the deleted rows it keeps for history:
            # measured on 10,000 instances, the page query went from 27 ms to 0.8 ms on PostgreSQL.
            live_list_index("instance_live_list", vm_state="deleted"),
            models.Index(fields=["host", "vm_state"], name="instance_host"),
        ]
        constraints = [unique_idempotency_key("unique_instance_idempotency_key")]

    @property
    def domain_name(self) -> str:
        """The libvirt domain's name on its host."""
        return f"zenith-{self.id}"

    @property
    def status(self) -> str:
        """Nova's status: BUILD, ACTIVE, REBOOT, HARD_REBOOT, REBUILD, SHUTOFF, PAUSED, SUSPENDED, ERROR,
        DELETED."""
        if self.task_state == self.REBUILDING and self.vm_state != self.DELETED:
            return "REBUILD"
        if self.vm_state == self.ACTIVE:
            if self.task_state == self.REBOOTING:
                return "REBOOT"
            if self.task_state == self.REBOOTING_HARD:
                return "HARD_REBOOT"
            return "ACTIVE"
        return {
            self.BUILDING: "BUILD",
            self.STOPPED: "SHUTOFF",
            self.PAUSED: "PAUSED",
            self.SUSPENDED: "SUSPENDED",
            self.ERROR: "ERROR",
            self.DELETED: "DELETED",
        }[self.vm_state]

    def fault_shown(self, shows_hosts: bool) -> dict | None:
        """The fault as a caller sees it. Cloud admins (``shows_hosts``) get it whole, per-host
        verdicts included; anyone else gets no details, and for a failed schedule only the summary with
        what the flavor needs: host names and their free capacity are the cloud's, not the project's."""
        fault = self.fault
        if not fault or shows_hosts:
            return fault
        shown = {key: value for key, value in fault.items() if key != "details"}
        if fault.get("code") == "no_valid_host":
            shown["message"] = (
                f"No valid host was found for flavor {self.flavor.name} "
                f"({self.vcpus} vCPU, {self.memory_mb} MB RAM, {self.disk_gb} GB disk)."
            )
        return shown

    @property
    def transitional(self) -> bool:
        """True while an action is in progress (the dashboard polls such rows)."""
        return bool(self.task_state) or self.vm_state == self.BUILDING
