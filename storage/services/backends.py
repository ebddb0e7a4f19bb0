"""Volume types (admins) and storage backends: the ``storage`` section of every storage host's
heartbeat (``workers.messages.StorageReport``) recorded as its ``StoragePool`` rows."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from identity import audit, policy
from identity.context import Context
from identity.errors import Conflict, InvalidInput
from identity.names import clean_name
from workers import services as ledger
from workers.messages import MessageError, StorageReport
from workers.models import Host

from ..models import StoragePool, Volume, VolumeType

MAX_SPECS = 64
POOL_TYPES = ("dir", "logical", "rbd")


# --- heartbeats -----------------------------------------------------------------------------------


def clean_storage_report(section: Any) -> StorageReport:
    """The storage section of a heartbeat, typed (InvalidInput for anything else)."""
    try:
        report = StorageReport.from_dict(section)
    except (MessageError, TypeError) as exc:
        raise InvalidInput(f"A storage section must be a StorageReport: {exc}") from None
    for backend in report.backends:
        if not isinstance(backend.name, str) or not 1 <= len(backend.name) <= 64:
            raise InvalidInput("A storage backend's name is 1-64 characters.")
        if backend.type not in POOL_TYPES:
            raise InvalidInput(f"A storage backend's type is one of {', '.join(POOL_TYPES)}.")
        for value in (backend.capacity_bytes, backend.available_bytes):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput("A storage backend's capacity and free bytes are whole numbers.")
        if not all(isinstance(h, str) for h in backend.reaches):
            raise InvalidInput("A storage backend's reaches is a list of host names.")
    return report


def record_storage_report(host_name: str, report: StorageReport, now, registered: bool = False) -> None:
    """Each reported backend on its pool row (made on the first report); keeps the claims
    (``allocated_gb``) and the admin's ``allocation_ratio``. One UPDATE per backend in the common case."""
    host_id = None
    for backend in report.backends:
        values = {
            "type": backend.type,
            "pool": str(backend.pool)[:128],
            "capacity_bytes": backend.capacity_bytes,
            "available_bytes": backend.available_bytes,
            "reaches": list(backend.reaches) or [host_name],
            "simulated": bool(backend.simulated),
            "reported_at": now,
        }
        if StoragePool.objects.filter(host__name=host_name, name=backend.name).update(**values):
            continue
        if host_id is None:
            host_id = Host.objects.only("pk").get(name=host_name).pk
        try:
            with transaction.atomic():
                StoragePool.objects.create(host_id=host_id, name=backend.name, **values)
        except IntegrityError:  # another heartbeat of the same host made it meanwhile
            StoragePool.objects.filter(host_id=host_id, name=backend.name).update(**values)


def register_heartbeat_receiver() -> None:
    ledger.register_heartbeat_receiver(
        "storage", ledger.HeartbeatReceiver(clean=clean_storage_report, record=record_storage_report)
    )


# --- volume types ---------------------------------------------------------------------------------


def _clean_specs(value: Any) -> dict[str, str]:
    if value in (None, {}):
        return {}
    if not isinstance(value, dict) or len(value) > MAX_SPECS:
        raise InvalidInput(f"extra_specs is an object of at most {MAX_SPECS} string keys to string values.")
    for key, item in value.items():
        if (
            not isinstance(key, str)
            or not 1 <= len(key) <= 255
            or not isinstance(item, str)
            or len(item) > 255
        ):
            raise InvalidInput("extra_specs keys are 1-255 characters, values strings of at most 255.")
    return dict(value)


def create_volume_type(
    ctx: Context,
    *,
    name: str,
    backend: str = "local",
    extra_specs: dict | None = None,
    description: str = "",
    is_default: bool = False,
) -> VolumeType:
    """Admins: a new class of volumes on ``backend``; ``is_default`` makes it the one creates get
    when they name none (the former default stops being it)."""
    policy.enforce(ctx, "storage:volume_type:create")
    name = clean_name(name, "Volume type", 64)
    backend = clean_name(backend or "local", "Backend", 64)
    if not isinstance(is_default, bool):
        raise InvalidInput("is_default must be true or false.")
    specs = _clean_specs(extra_specs)
    try:
        with transaction.atomic():
            if is_default:
                VolumeType.objects.filter(is_default=True).update(is_default=False)
            vtype = VolumeType.objects.create(
                name=name,
                backend=backend,
                extra_specs=specs,
                description=description or "",
                is_default=is_default,
            )
            audit.record(ctx, "volume_type", vtype.pk, "create", project=ctx.project)
    except IntegrityError:
        raise Conflict(f"A volume type named {name!r} exists already.") from None
    return vtype


@transaction.atomic
def delete_volume_type(ctx: Context, vtype: VolumeType) -> None:
    """Admins: remove a type no volume uses."""
    policy.enforce(ctx, "storage:volume_type:delete")
    if Volume.objects.filter(volume_type=vtype).exists():
        raise Conflict(f"Volume type {vtype.name} is used by volumes: it cannot be deleted.", code="in_use")
    audit.record(ctx, "volume_type", vtype.pk, "delete", project=ctx.project)
    vtype.delete()


__all__ = [
    "clean_storage_report",
    "create_volume_type",
    "delete_volume_type",
    "record_storage_report",
    "register_heartbeat_receiver",
]
