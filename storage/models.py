"""Block storage: volume types, the storage hosts' pools, volumes, snapshots and attachments.

A volume lives in one ``StoragePool`` (a libvirt pool a storage host reports in its heartbeat) and is
attached to at most one instance at a time; instances are named by UUID only (storage never imports
compute), as Cinder does.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from identity.scoping import ProjectOwnedQuerySet, ScopedQuerySet
from workers.models import AsyncResource, live_list_index, unique_idempotency_key

GIB = 1024**3


class VolumeTypeQuerySet(ScopedQuerySet):
    """Every signed-in caller sees every volume type (they choose among them)."""

    def visible_to(self, ctx):
        return self.all() if ctx.user is not None else self.none()


class VolumeType(models.Model):
    """A class of volumes: which backend (a backend name the storage hosts report, e.g. ``local``)
    holds them and extra specs for the backend. Exactly one type may be the default (a DB
    constraint): the one a volume gets when its create names none."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=64, unique=True)
    backend = models.CharField(max_length=64, default="local", help_text="the backend name hosts report")
    extra_specs = models.JSONField(default=dict, blank=True, help_text="backend hints, str -> str")
    description = models.TextField(blank=True, default="")
    is_default = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)

    objects = VolumeTypeQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_type"
            )
        ]

    def __str__(self) -> str:
        return self.name


class StoragePoolQuerySet(ScopedQuerySet):
    """Pools are infrastructure: cloud admins see them, nobody else."""

    def visible_to(self, ctx):
        return self.all() if ctx.is_admin else self.none()


class StoragePool(models.Model):
    """One backend of one storage host (``workers.Host``), as its heartbeat reports it
    (``workers.messages.StorageBackendReport``): capacity and free bytes from libvirt, which compute
    hosts reach its volumes, whether it is simulated; and ``allocated_gb``, what placement claimed of
    it (a conditional UPDATE, so two creates never overfill it)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    host = models.ForeignKey("workers.Host", on_delete=models.CASCADE, related_name="storage_pools")
    name = models.CharField(max_length=64, help_text="the backend's name")
    type = models.CharField(max_length=16, default="dir", help_text="libvirt pool type: dir, logical, rbd")
    pool = models.CharField(max_length=128, help_text="the libvirt pool's name on the host")
    capacity_bytes = models.BigIntegerField(default=0)
    available_bytes = models.BigIntegerField(default=0)
    allocated_gb = models.PositiveIntegerField(default=0, help_text="GiB placement claimed")
    allocation_ratio = models.FloatField(
        default=1.0, help_text="thin provisioning: may claim capacity x this"
    )
    reaches = models.JSONField(
        default=list, blank=True, help_text='compute hosts that can attach; ["*"]: all'
    )
    simulated = models.BooleanField(default=False)
    reported_at = models.DateTimeField(null=True, blank=True)

    objects = StoragePoolQuerySet.as_manager()

    class Meta:
        ordering = ["host__name", "name"]
        constraints = [models.UniqueConstraint(fields=["host", "name"], name="unique_pool_per_host")]

    def __str__(self) -> str:
        return f"{self.name}@{self.host_id}"

    @property
    def capacity_gb(self) -> int:
        return self.capacity_bytes // GIB

    @property
    def free_gb(self) -> float:
        return self.capacity_gb * self.allocation_ratio - self.allocated_gb

    def reaches_host(self, host_name: str) -> bool:
        """Whether a compute host can attach this pool's volumes."""
        return "*" in self.reaches or host_name in self.reaches


class VolumeQuerySet(ProjectOwnedQuerySet):
    def live(self):
        return self.exclude(status=Volume.DELETED)

    def for_rows(self):
        """What a volume row shows, in one query."""
        return self.select_related("volume_type", "operation", "pool__host").defer(
            "operation__payload", "operation__result"
        )

    def visible_to(self, ctx):
        return super().visible_to(ctx).live()

    def across_projects(self, ctx):
        return self.live() if ctx.is_admin else self.none()


class Volume(AsyncResource):
    """A persistent block device. ``status`` is the stable state, ``busy`` the transition running
    ("" when none): what users read as the status is ``display_status`` (busy first), Cinder's
    ``creating, available, reserved, attaching, in-use, detaching, extending, deleting, error,
    error_deleting, error_extending``."""

    # stable states
    CREATING = "creating"
    AVAILABLE = "available"
    IN_USE = "in-use"
    ERROR = "error"
    ERROR_DELETING = "error_deleting"
    ERROR_EXTENDING = "error_extending"
    DELETED = "deleted"
    STATUSES = [
        (s, s) for s in (CREATING, AVAILABLE, IN_USE, ERROR, ERROR_DELETING, ERROR_EXTENDING, DELETED)
    ]
    # busy states
    RESERVED = "reserved"
    ATTACHING = "attaching"
    DETACHING = "detaching"
    EXTENDING = "extending"
    DELETING = "deleting"
    UPLOADING = "uploading"
    BUSY = [(s, s) for s in (RESERVED, ATTACHING, DETACHING, EXTENDING, DELETING, UPLOADING)]
    # sources
    BLANK = "blank"
    IMAGE = "image"
    SNAPSHOT = "snapshot"
    VOLUME = "volume"
    SOURCES = [(s, s) for s in (BLANK, IMAGE, SNAPSHOT, VOLUME)]

    description = models.TextField(blank=True, default="")
    project = models.ForeignKey("identity.Project", on_delete=models.CASCADE, related_name="volumes")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="volumes"
    )
    size = models.PositiveIntegerField(help_text="GiB")
    volume_type = models.ForeignKey(VolumeType, on_delete=models.PROTECT, related_name="volumes")
    status = models.CharField(max_length=16, choices=STATUSES, default=CREATING)
    busy = models.CharField(max_length=16, choices=BUSY, blank=True, default="")
    bootable = models.BooleanField(default=False)
    source = models.CharField(max_length=16, choices=SOURCES, default=BLANK)
    source_image_id = models.UUIDField(null=True, blank=True)
    source_snapshot_id = models.UUIDField(null=True, blank=True)
    source_volume_id = models.UUIDField(null=True, blank=True)
    pool = models.ForeignKey(
        StoragePool, null=True, blank=True, on_delete=models.SET_NULL, related_name="volumes"
    )
    connection = models.JSONField(null=True, blank=True, help_text="workers.messages.VolumeConnection")
    idempotency_key = models.CharField(max_length=255, blank=True, default="")

    objects = VolumeQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        indexes = [live_list_index("volume_live_list", status="deleted")]
        constraints = [unique_idempotency_key("unique_volume_idempotency_key")]

    @property
    def backend_name(self) -> str:
        """The libvirt volume's name in its pool."""
        return f"volume-{self.id}"

    @property
    def display_status(self) -> str:
        return self.busy or self.status

    @property
    def transitional(self) -> bool:
        return bool(self.busy) or self.status == self.CREATING


class SnapshotQuerySet(ProjectOwnedQuerySet):
    def visible_to(self, ctx):
        return super().visible_to(ctx).exclude(status=Snapshot.DELETED)


class Snapshot(AsyncResource):
    """A point-in-time copy of a volume, kept in the volume's pool (new volumes can start from it)."""

    CREATING = "creating"
    AVAILABLE = "available"
    ERROR = "error"
    DELETED = "deleted"
    DELETING = "deleting"
    STATUSES = [(s, s) for s in (CREATING, AVAILABLE, ERROR, DELETED)]

    description = models.TextField(blank=True, default="")
    project = models.ForeignKey("identity.Project", on_delete=models.CASCADE, related_name="snapshots")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="snapshots"
    )
    volume = models.ForeignKey(Volume, on_delete=models.PROTECT, related_name="snapshots")
    size = models.PositiveIntegerField(help_text="GiB, the volume's when taken")
    status = models.CharField(max_length=16, choices=STATUSES, default=CREATING)
    busy = models.CharField(max_length=16, blank=True, default="")
    fault = models.JSONField(null=True, blank=True)  # as it was made (without AsyncResource's help text)

    objects = SnapshotQuerySet.as_manager()

    @property
    def backend_name(self) -> str:
        return f"snapshot-{self.id}"

    @property
    def display_status(self) -> str:
        return self.busy or self.status


class AttachmentQuerySet(models.QuerySet):
    def live(self):
        return self.filter(detached_at__isnull=True)


class Attachment(models.Model):
    """A volume attached (or being attached) to an instance, named by UUID. At most one live
    attachment per volume, and one per device of an instance: database constraints, so concurrent
    attaches cannot both win."""

    RW = "rw"
    RO = "ro"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    volume = models.ForeignKey(Volume, on_delete=models.CASCADE, related_name="attachments")
    instance_id = models.UUIDField()
    host = models.ForeignKey("workers.Host", null=True, on_delete=models.SET_NULL, related_name="+")
    device = models.CharField(max_length=32, help_text="e.g. /dev/vdb")
    mode = models.CharField(max_length=2, choices=[(RW, RW), (RO, RO)], default=RW)
    delete_on_termination = models.BooleanField(default=False)
    attached_at = models.DateTimeField(null=True, blank=True, help_text="when the host confirmed it")
    detached_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    objects = AttachmentQuerySet.as_manager()

    class Meta:
        ordering = ["created"]
        constraints = [
            models.UniqueConstraint(
                fields=["volume"],
                condition=Q(detached_at__isnull=True),
                name="one_live_attachment_per_volume",
            ),
            models.UniqueConstraint(
                fields=["instance_id", "device"],
                condition=Q(detached_at__isnull=True),
                name="one_volume_per_instance_device",
            ),
        ]
        indexes = [models.Index(fields=["instance_id"], name="attachment_instance")]

    def __str__(self) -> str:
        return f"{self.volume_id} on {self.instance_id} as {self.device}"

    @property
    def target_dev(self) -> str:
        return self.device.rsplit("/", 1)[-1]
