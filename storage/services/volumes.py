"""Volumes and snapshots, the user's side: create (placed onto a pool with room, quota-checked, in
one transaction with the intent), delete, extend, attach and detach (called by compute, which knows
the instance), snapshot create and delete; force-detach and reset-state for admins; quota counters.

Nothing here talks to a host: each change records an Operation that the conductor carries to the
storage host (``storage.<host>``) or the instance's compute host (``compute.<host>``).
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from identity import audit, policy, quotas
from identity.context import Context
from identity.errors import Conflict, InvalidInput, NotFound
from identity.names import clean_name
from identity.validators import clean_description
from workers import dispatch, tasknames
from workers.lifecycle import clean_idempotency_key, create_with_transition
from workers.messages import VolumeAttachment, VolumeConnection
from workers.models import Host

from ..models import GIB, Attachment, Snapshot, StoragePool, Volume, VolumeType
from . import hooks
from .lifecycle import SNAPSHOT, VOLUME, _operation_params, live_attachment, release_pool

V = Volume

MAX_NAME = 255
MAX_DESCRIPTION = 1024
MAX_SIZE_GB = 16 * 1024
DEVICE_LETTERS = "bcdefghijklmnopqrstuvwxyz"  # vda is the root disk
RESETTABLE = (V.AVAILABLE, V.IN_USE, V.ERROR, V.ERROR_DELETING, V.ERROR_EXTENDING)


# --- quota counters -------------------------------------------------------------------------------


def count_usage(project, user=None) -> dict[str, int]:
    """Volumes and GiB held by a project's live volumes, snapshots (and their GiB) by its live
    snapshots: one query, as every page that shows quotas counts them."""
    volumes, snapshots = Volume._meta.db_table, Snapshot._meta.db_table
    live = "project_id = %s AND status <> 'deleted'"
    counts = quotas.count_by_sql(
        project,
        {
            "volumes": f"SELECT COUNT(*) FROM {volumes} WHERE {live}",
            "volume_gb": f"SELECT COALESCE(SUM(size), 0) FROM {volumes} WHERE {live}",
            "snapshots": f"SELECT COUNT(*) FROM {snapshots} WHERE {live}",
            "snapshot_gb": f"SELECT COALESCE(SUM(size), 0) FROM {snapshots} WHERE {live}",
        },
    )
    return {
        "volumes": counts["volumes"],
        "gigabytes": counts["volume_gb"] + counts["snapshot_gb"],
        "snapshots": counts["snapshots"],
    }


def register_quota_counters() -> None:
    quotas.register_usage_counters(["volumes", "gigabytes", "snapshots"], count_usage)


# --- validation -------------------------------------------------------------------------------------


def _clean_size(value: Any, what: str = "size") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE_GB:
        raise InvalidInput(f"{what} must be a whole number of GiB from 1 to {MAX_SIZE_GB}.")
    return value


def _volume_type(ctx: Context, ref: Any) -> VolumeType:
    if ref in (None, ""):
        default = VolumeType.objects.filter(is_default=True).first()
        if default is None:
            raise InvalidInput("Say which volume type to use: this cloud has no default volume type.")
        return default
    return VolumeType.objects.resolve(ctx, ref, "volume type")


# --- placement --------------------------------------------------------------------------------------


def _fits(size: int) -> Q:
    return Q(allocated_gb__lte=F("capacity_bytes") / GIB * F("allocation_ratio") - size)


def claim_pool(pool_id, size: int) -> bool:
    """Add ``size`` GiB to a pool's claims if they still fit (one conditional UPDATE: two creates
    racing for the pool's last GiB never both win)."""
    return bool(
        StoragePool.objects.filter(_fits(size), Host.objects.enabled_for("host_id"), pk=pool_id).update(
            allocated_gb=F("allocated_gb") + size
        )
    )


def place_volume(backend: str, size: int) -> StoragePool:
    """A pool of ``backend`` on an up, enabled storage host with ``size`` GiB free, claimed; the
    most free first. Conflict saying why when none has room."""
    now = timezone.now()
    candidates = (
        StoragePool.objects.filter(
            _fits(size),
            name=backend,
            host__enabled=True,
            host__last_heartbeat__gte=now - settings.ZENITH_HOST_DOWN_AFTER,
        )
        .annotate(free=F("capacity_bytes") / GIB * F("allocation_ratio") - F("allocated_gb"))
        .select_related("host")
        .order_by("-free", "host__name")
    )
    for _round in range(3):
        pools = list(candidates[:8])
        if not pools:
            break
        for pool in pools:
            if claim_pool(pool.pk, size):
                return pool
    known = StoragePool.objects.filter(name=backend).count()
    reason = (
        f"no storage host reports backend {backend!r}"
        if not known
        else f"none of the {known} pool(s) of backend {backend!r} on an up, enabled host has {size} GiB free"
    )
    raise Conflict(f"No valid storage backend was found: {reason}.", code="no_valid_backend")


# --- create -----------------------------------------------------------------------------------------


def create_volume(
    ctx: Context,
    *,
    name: str,
    size: int | None = None,
    volume_type: Any = None,
    description: str | None = None,
    image: Any = None,
    snapshot: Any = None,
    source_volume: Any = None,
    idempotency_key: str | None = None,
) -> tuple[Volume, bool]:
    """Create a volume: blank, from an image, from a snapshot or as a clone of a volume. Quota and
    the pool's room are claimed in the transaction that records it; the conductor has the storage
    host create it after commit. Returns ``(volume, created)``: False for a retried request with the
    same Idempotency-Key."""
    policy.enforce(ctx, "storage:volume:create")
    name = clean_name(name, "Volume", MAX_NAME)
    description = clean_description(description, MAX_DESCRIPTION)
    key = clean_idempotency_key(idempotency_key)
    if sum(1 for s in (image, snapshot, source_volume) if s not in (None, "")) > 1:
        raise InvalidInput("A volume starts from at most one of image, snapshot and source_volume.")
    fields: dict[str, Any] = {"source": V.BLANK}
    pool: StoragePool | None = None
    min_size = 1
    if image not in (None, ""):
        source = hooks.resolve_image(ctx, image)
        min_size = max(1, source.min_disk_gb, -(-source.size_bytes // GIB))
        fields.update(source=V.IMAGE, source_image_id=source.id, bootable=True)
        vtype = _volume_type(ctx, volume_type)
    elif snapshot not in (None, ""):
        snap = Snapshot.objects.resolve(ctx, snapshot, "snapshot")
        if snap.display_status != Snapshot.AVAILABLE:
            raise Conflict(f"Snapshot {snap.name} is {snap.display_status}: it must be available.")
        origin = Volume.objects.select_related("volume_type", "pool").get(pk=snap.volume_id)
        min_size, pool = snap.size, origin.pool
        fields.update(source=V.SNAPSHOT, source_snapshot_id=snap.pk, bootable=origin.bootable)
        vtype = origin.volume_type
    elif source_volume not in (None, ""):
        origin = Volume.objects.resolve(ctx, source_volume, "volume")
        if origin.display_status not in (V.AVAILABLE, V.IN_USE):
            raise Conflict(f"Volume {origin.name} is {origin.display_status}: it cannot be cloned now.")
        min_size, pool = origin.size, origin.pool
        fields.update(source=V.VOLUME, source_volume_id=origin.pk, bootable=origin.bootable)
        vtype = origin.volume_type
    else:
        vtype = _volume_type(ctx, volume_type)
    size = min_size if size is None and fields["source"] != V.BLANK else _clean_size(size)
    if size < min_size:
        raise InvalidInput(f"size must be at least {min_size} GiB for this source.")
    if key:
        existing = _replay(ctx, key, name, size)
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            quotas.enforce(ctx.project, {"volumes": 1, "gigabytes": size}, ctx.user)
            if pool is None:
                pool = place_volume(vtype.backend, size)
            elif not claim_pool(pool.pk, size):
                raise Conflict(
                    f"The pool holding the source has no {size} GiB free for the new volume.",
                    code="no_valid_backend",
                )
            volume = create_with_transition(
                ctx,
                Volume,
                "volume",
                key,
                name=name,
                description=description,
                size=size,
                volume_type=vtype,
                status=V.CREATING,
                pool=pool,
                idempotency_key=key,
                **fields,
            )
    except IntegrityError:
        existing = _replay(ctx, key, name, size) if key else None
        if existing is None:
            raise
        return existing, False
    return volume, True


def _replay(ctx: Context, key: str, name: str, size: int) -> Volume | None:
    volume = Volume.objects.filter(project=ctx.project, idempotency_key=key).first()
    if volume is None:
        return None
    if (volume.name, volume.size) != (name, size):
        raise Conflict(
            f"Idempotency-Key {key!r} was already used for a different request (volume {volume.pk})."
        )
    return volume


# --- actions ----------------------------------------------------------------------------------------


def delete_volume(ctx: Context, volume: Volume, idempotency_key: str | None = None) -> Volume:
    """Delete: refused while attached or while it has snapshots (the 409 says which)."""
    return VOLUME.begin(ctx, volume, "delete", idempotency_key=idempotency_key)


def extend_volume(ctx: Context, volume: Volume, new_size: Any, idempotency_key: str | None = None) -> Volume:
    """Grow a volume to ``new_size`` GiB: an available one on its storage host; an in-use one there
    and then on its instance's compute host, whose guest sees the new size."""
    policy.enforce(ctx, "storage:volume:extend")
    new_size = _clean_size(new_size, "new_size")
    key = clean_idempotency_key(idempotency_key)
    name = "extend_attached" if volume.status == V.IN_USE else "extend"
    with transaction.atomic():
        row = Volume.objects.select_for_update().filter(pk=volume.pk).first()
        if row is None or row.status == V.DELETED:
            raise NotFound("No such volume.")
        if key and audit.earlier_with_key("volume", row.pk, key) is not None:
            return VOLUME.begin(ctx, row, name, idempotency_key=key)
        VOLUME.check(ctx, row, VOLUME.transitions[name])
        if new_size <= row.size:
            raise InvalidInput(f"new_size must be larger than the volume's {row.size} GiB.")
        delta = new_size - row.size
        quotas.enforce(row.project, {"gigabytes": delta}, ctx.user)
        if row.pool_id is None or not claim_pool(row.pool_id, delta):
            raise Conflict(
                f"The pool holding volume {row.name} has no {delta} GiB free.", code="no_valid_backend"
            )
        return VOLUME.begin(ctx, row, name, idempotency_key=key, params={"new_size": new_size})


def upload_to_image(
    ctx: Context, volume: Volume, *, name: Any, disk_format: Any = None, idempotency_key: str | None = None
) -> tuple[Volume, Any]:
    """Cinder's os-volume_upload_image: a new queued image (compute's, through the hook) receives
    the volume's bytes from its storage host; active with its checksum when the host answered,
    killed with the reason otherwise. The volume is ``uploading`` meanwhile, available after.
    Returns the volume and the new image's id."""
    key = clean_idempotency_key(idempotency_key)
    with transaction.atomic():
        row = Volume.objects.select_for_update().filter(pk=volume.pk).exclude(status=V.DELETED).first()
        if row is None:
            raise NotFound("No such volume.")
        if key and audit.earlier_with_key("volume", row.pk, key) is not None:
            image_id = _operation_params(row.operation_id).get("image_id")
            return VOLUME.begin(ctx, row, "upload", idempotency_key=key), image_id
        VOLUME.check(ctx, row, VOLUME.transitions["upload"])
        image_id = hooks.image_upload().create(ctx, name=name, disk_format=disk_format, volume_name=row.name)
        row = VOLUME.begin(ctx, row, "upload", idempotency_key=key, params={"image_id": str(image_id)})
    return row, image_id


def _next_device(instance_id) -> str:
    used = set(Attachment.objects.live().filter(instance_id=instance_id).values_list("device", flat=True))
    for letter in DEVICE_LETTERS:
        device = f"/dev/vd{letter}"
        if device not in used:
            return device
    raise Conflict("The instance has no free disk device left.", code="no_device")


def attach_volume(
    ctx: Context,
    volume: Volume,
    *,
    instance_id,
    host_name: str,
    delete_on_termination: bool = False,
    idempotency_key: str | None = None,
) -> Attachment:
    """Attach ``volume`` to the instance ``instance_id`` running on compute host ``host_name``
    (compute calls this: it knows the instance). The device is chosen here (/dev/vdb, ...) and
    reported; a volume is attached to one instance at most (a database constraint decides
    between concurrent attaches); an instance's host that cannot reach the volume's pool is a 409."""
    policy.enforce(ctx, "storage:volume:attach")
    if not isinstance(delete_on_termination, bool):
        raise InvalidInput("delete_on_termination must be true or false.")
    key = clean_idempotency_key(idempotency_key)
    host = Host.objects.filter(name=host_name).first()
    if host is None:
        raise Conflict("The instance is on no host: it cannot take a volume now.", code="invalid_state")
    try:
        with transaction.atomic():
            row = Volume.objects.select_for_update().filter(pk=volume.pk).first()
            if row is None or row.status == V.DELETED:
                raise NotFound("No such volume.")
            if key and audit.earlier_with_key("volume", row.pk, key) is not None:
                VOLUME.begin(ctx, row, "attach", idempotency_key=key)
                found = (
                    Attachment.objects.filter(volume_id=row.pk, instance_id=instance_id)
                    .order_by("-created")
                    .first()
                )
                if found is None:
                    raise Conflict(
                        f"Idempotency-Key {key!r} was already used for another action of this volume."
                    )
                return found
            live = live_attachment(row.pk)
            if live is not None:
                raise Conflict(
                    f"Volume {row.name} is already attached to instance {live.instance_id}.", code="in_use"
                )
            VOLUME.check(ctx, row, VOLUME.transitions["attach"])
            pool = StoragePool.objects.select_related("host").filter(pk=row.pool_id).first()
            if pool is None or not pool.reaches_host(host_name):
                where = f"backend {pool.name} on {pool.host.name}" if pool else "no pool"
                reached = ", ".join(pool.reaches) if pool and pool.reaches else "no compute host"
                raise Conflict(
                    f"Host {host_name} cannot reach volume {row.name}: it is in {where}, which {reached} "
                    "can reach, not this host.",
                    code="unreachable",
                )
            with transaction.atomic():
                attachment = Attachment.objects.create(
                    volume=row,
                    instance_id=instance_id,
                    host=host,
                    device=_next_device(instance_id),
                    delete_on_termination=delete_on_termination,
                )
            VOLUME.begin(ctx, row, "attach", idempotency_key=key)
            return attachment
    except IntegrityError:
        raise Conflict(
            f"Volume {volume.name} is being attached elsewhere, or the device was taken: try again.",
            code="in_use",
        ) from None


def detach_volume(ctx: Context, volume: Volume, *, instance_id, idempotency_key: str | None = None) -> Volume:
    """Detach ``volume`` from instance ``instance_id`` (its compute host unplugs it)."""
    policy.enforce(ctx, "storage:volume:detach")
    attachment = live_attachment(volume.pk)
    if attachment is None or str(attachment.instance_id) != str(instance_id):
        raise NotFound(f"Volume {volume.name} is not attached to this instance.")
    return VOLUME.begin(ctx, volume, "detach", idempotency_key=idempotency_key)


def attachments_of(instance_ids) -> dict[str, list[Attachment]]:
    """The live attachments of instances, by instance id (one query, for the instance detail)."""
    out: dict[str, list[Attachment]] = {}
    rows = Attachment.objects.live().filter(instance_id__in=list(instance_ids)).select_related("volume")
    for row in rows.order_by("device"):
        out.setdefault(str(row.instance_id), []).append(row)
    return out


@transaction.atomic
def force_detach(ctx: Context, volume: Volume) -> Volume:
    """Admins: forget a volume's attachment whatever its state (a host that is gone, a detach that
    keeps failing). Its compute host is asked to unplug it too, best effort; the volume is available."""
    policy.enforce(ctx, "storage:volume:force_detach")
    row = Volume.objects.select_for_update().filter(pk=volume.pk).exclude(status=V.DELETED).first()
    if row is None:
        raise NotFound("No such volume.")
    attachment = live_attachment(row.pk)
    if attachment is None:
        raise Conflict(f"Volume {row.name} is attached to no instance.", code="invalid_state")
    Attachment.objects.filter(pk=attachment.pk).update(detached_at=timezone.now())
    row.status, row.busy, row.fault = V.AVAILABLE, "", None
    row.save(update_fields=["status", "busy", "fault", "updated"])
    audit.record(
        ctx, "volume", row.pk, "force_detach", project=row.project, message=f"from {attachment.instance_id}"
    )
    if attachment.host is not None and row.connection:
        message = VolumeAttachment(
            domain=f"zenith-{attachment.instance_id}",
            connection=VolumeConnection.from_dict(row.connection),
            target_dev=attachment.target_dev,
        )
        host = attachment.host.name
        transaction.on_commit(
            lambda: _best_effort(
                tasknames.AGENT_DETACH_VOLUME, host, {"attachment": message.as_dict()}, "compute"
            )
        )
    return row


def _best_effort(task: str, host: str, kwargs: dict, role: str) -> None:
    # Broker down: the attachment is forgotten anyway; the drift view shows what a host kept.
    with contextlib.suppress(Exception):
        dispatch.send_to_host(task, host, kwargs=kwargs, queue_kind=role)


@transaction.atomic
def reset_state(ctx: Context, volume: Volume, status: Any) -> Volume:
    """Admins: set a volume's status by hand (after fixing its host), ending any transition."""
    policy.enforce(ctx, "storage:volume:reset_state")
    if status not in RESETTABLE:
        raise InvalidInput(f"status must be one of {', '.join(RESETTABLE)}.")
    row = Volume.objects.select_for_update().filter(pk=volume.pk).exclude(status=V.DELETED).first()
    if row is None:
        raise NotFound("No such volume.")
    attached = Attachment.objects.live().filter(volume_id=row.pk).exists()
    if status == V.IN_USE and not attached:
        raise Conflict(f"Volume {row.name} has no attachment: it cannot be in-use.", code="invalid_state")
    if status == V.AVAILABLE and attached:
        raise Conflict(f"Volume {row.name} is attached: force-detach it instead.", code="in_use")
    before = row.display_status
    row.status, row.busy = status, ""
    row.save(update_fields=["status", "busy", "updated"])
    audit.record(ctx, "volume", row.pk, "reset_state", project=row.project, message=f"{before} -> {status}")
    return row


# --- instances (compute calls these) --------------------------------------------------------------


def instance_deleted(ctx: Context, instance_id) -> list[Volume]:
    """The instance is gone (its domain with it): its volumes are detached, and those attached with
    ``delete_on_termination`` deleted. Returns the volumes being deleted."""
    deleted = []
    for attachment in Attachment.objects.live().filter(instance_id=instance_id).select_related("volume"):
        with transaction.atomic():
            row = Volume.objects.select_for_update().get(pk=attachment.volume_id)
            Attachment.objects.filter(pk=attachment.pk).update(detached_at=timezone.now())
            if row.status == V.IN_USE or row.busy in (V.RESERVED, V.ATTACHING, V.DETACHING):
                row.status, row.busy = V.AVAILABLE, ""
                row.save(update_fields=["status", "busy", "updated"])
            audit.record(
                ctx, "volume", row.pk, "detach", project=row.project, message="its instance was deleted"
            )
        if attachment.delete_on_termination:
            # Snapshots keep it, or it went meanwhile: it stays, detached.
            with contextlib.suppress(Conflict, NotFound):
                deleted.append(VOLUME.begin(ctx, row, "delete"))
    return deleted


# --- boot from volume (compute calls these) ---------------------------------------------------------

ROOT_DEVICE = "/dev/vda"


def reserve_boot_volume(
    ctx: Context, volume: Volume, *, instance_id, delete_on_termination: bool
) -> Attachment:
    """The root disk of a launching instance: its attachment as ``/dev/vda`` is recorded now (with no
    host yet: the database's one-live-attachment constraint keeps every other attach away) and an
    existing volume is ``reserved`` until the instance is ACTIVE. A new volume (``creating``) is
    reserved the same way; its create carries on."""
    if not isinstance(delete_on_termination, bool):
        raise InvalidInput("delete_on_termination must be true or false.")
    row = Volume.objects.select_for_update().filter(pk=volume.pk).exclude(status=V.DELETED).first()
    if row is None:
        raise NotFound("No such volume.")
    if not row.bootable:
        raise InvalidInput(f"Volume {row.name} is not bootable: boot from a volume made from an image.")
    if row.status != V.CREATING:
        if row.status != V.AVAILABLE or row.busy:
            raise Conflict(
                f"Volume {row.name} is {row.display_status}: instances boot only from available volumes.",
                code="invalid_state",
            )
        live = live_attachment(row.pk)
        if live is not None:
            raise Conflict(
                f"Volume {row.name} is already attached to instance {live.instance_id}.", code="in_use"
            )
        row.busy = V.RESERVED
        row.save(update_fields=["busy", "updated"])
    try:
        with transaction.atomic():
            attachment = Attachment.objects.create(
                volume=row,
                instance_id=instance_id,
                host=None,
                device=ROOT_DEVICE,
                delete_on_termination=delete_on_termination,
            )
    except IntegrityError:
        raise Conflict(f"Volume {row.name} is being attached elsewhere: try again.", code="in_use") from None
    audit.record(ctx, "volume", row.pk, "reserve", project=row.project, message=f"root disk of {instance_id}")
    return attachment


def boot_volume_of(instance_id) -> Attachment | None:
    """The live root-disk attachment of an instance that boots from a volume (one query), with its
    volume and pool (and the pool's host)."""
    return (
        Attachment.objects.live()
        .select_related("volume__pool__host")
        .filter(instance_id=instance_id, device=ROOT_DEVICE)
        .first()
    )


def hold_boot_volume(volume_id) -> bool:
    """The boot volume's create finished: keep it reserved for its instance (False when it is not
    available, e.g. someone reset it)."""
    return bool(
        Volume.objects.filter(pk=volume_id, status=V.AVAILABLE, busy__in=("", V.RESERVED)).update(
            busy=V.RESERVED, updated=timezone.now()
        )
    )


def boot_volume_attached(instance_id, host_name: str) -> None:
    """The instance is ACTIVE on ``host_name``: its root volume is attached there, in-use."""
    host = Host.objects.filter(name=host_name).first()
    now = timezone.now()
    with transaction.atomic():
        attachment = boot_volume_of(instance_id)
        if attachment is None:
            return
        Attachment.objects.filter(pk=attachment.pk).update(host=host, attached_at=now)
        Volume.objects.filter(pk=attachment.volume_id).exclude(status=V.DELETED).update(
            status=V.IN_USE, busy="", fault=None, updated=now
        )


# --- snapshots ------------------------------------------------------------------------------------


def create_snapshot(
    ctx: Context,
    *,
    volume: Any,
    name: str,
    description: str | None = None,
    idempotency_key: str | None = None,
) -> Snapshot:
    """Snapshot a volume (available or in-use, not while another action runs on it)."""
    policy.enforce(ctx, "storage:snapshot:create")
    name = clean_name(name, "Snapshot", MAX_NAME)
    description = clean_description(description, MAX_DESCRIPTION)
    key = clean_idempotency_key(idempotency_key)
    source = Volume.objects.resolve(ctx, volume, "volume")
    with transaction.atomic():
        quotas.enforce(ctx.project, {"snapshots": 1, "gigabytes": source.size}, ctx.user)
        row = Volume.objects.select_for_update().get(pk=source.pk)
        if key:
            earlier = Snapshot.objects.filter(volume=row, name=name, operation__isnull=False).first()
            if earlier is not None and audit.earlier_with_key("snapshot", earlier.pk, key):
                return earlier
        if row.busy or row.status not in (V.AVAILABLE, V.IN_USE):
            raise Conflict(
                f"Cannot snapshot volume {row.name} while it is {row.display_status}.", code="invalid_state"
            )
        snapshot = create_with_transition(
            ctx,
            Snapshot,
            "snapshot",
            key,
            name=name,
            description=description,
            volume=row,
            size=row.size,
            status=Snapshot.CREATING,
        )
    return snapshot


def delete_snapshot(ctx: Context, snapshot: Snapshot, idempotency_key: str | None = None) -> Snapshot:
    return SNAPSHOT.begin(ctx, snapshot, "delete", idempotency_key=idempotency_key)


# --- rename (the OpenStack-compatible API's ``PUT /volumes/{id}``) ---------------------------------


@transaction.atomic
def update_volume(ctx: Context, volume: Volume, *, name: Any = None, description: Any = None) -> Volume:
    """Rename a volume or change its description (``None`` keeps a field), in any state but deleted."""
    policy.enforce(ctx, "storage:volume:update")
    row = Volume.objects.select_for_update().filter(pk=volume.pk).exclude(status=V.DELETED).first()
    if row is None:
        raise NotFound("No such volume.")
    fields = []
    if name is not None:
        row.name = clean_name(name, "Volume", MAX_NAME)
        fields.append("name")
    if description is not None:
        row.description = clean_description(description, MAX_DESCRIPTION)
        fields.append("description")
    if fields:
        row.save(update_fields=[*fields, "updated"])
        audit.record(ctx, "volume", row.pk, "update", project=row.project, message=", ".join(fields))
    return row


__all__ = [
    "ROOT_DEVICE",
    "attach_volume",
    "attachments_of",
    "boot_volume_attached",
    "boot_volume_of",
    "hold_boot_volume",
    "reserve_boot_volume",
    "claim_pool",
    "count_usage",
    "create_snapshot",
    "create_volume",
    "delete_snapshot",
    "delete_volume",
    "detach_volume",
    "extend_volume",
    "force_detach",
    "instance_deleted",
    "place_volume",
    "register_quota_counters",
    "release_pool",
    "reset_state",
    "update_volume",
    "upload_to_image",
]
