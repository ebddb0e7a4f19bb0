"""Instances, the user's side: create (quota-checked, idempotent), every lifecycle action, delete,
lock, console log, the scheduler's dry run and the wizard's hint.

The state machine is declared in ``lifecycle`` (Nova's: an action is allowed only from the
``vm_state`` values its transition names and only while no other task runs, delete excepted); the
conductor's side is in ``conductor`` and power sync in ``power``. Nothing here talks to a hypervisor.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from identity import audit, policy, quotas
from identity.context import Context
from identity.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable
from identity.models import KeyPair
from identity.names import clean_name
from identity.validators import clean_description, clean_string_map, clean_tags
from storage import services as storage
from storage.models import Volume
from workers import dispatch, tasknames
from workers.lifecycle import clean_idempotency_key, create_with_operation
from workers.models import Host

from .. import scheduler
from ..models import ComputeNode, Flavor, Image, Instance
from .images import check_image_bootable
from .lifecycle import INSTANCE

log = logging.getLogger(__name__)

I = Instance  # noqa: E741 - the state constants read better short

MAX_NAME = 255
MAX_USER_DATA = 64 * 1024
MAX_METADATA_ITEMS = 128
MAX_METADATA_LENGTH = 255
MAX_DESCRIPTION = 255
MAX_TAGS = 50  # Nova's limits for server tags
MAX_TAG = 60
CONSOLE_TIMEOUT = 10.0  # seconds a host has to answer a console-log request
MAX_CONSOLE_LINES = 10_000


# --- usage counters (quotas) ----------------------------------------------------------------


def count_usage(project, user=None) -> dict[str, int]:
    """Instances, cores and RAM in use by a project's live instances: one aggregate query."""
    totals = (
        Instance.objects.live()
        .filter(project=project)
        .aggregate(instances=Count("pk"), cores=Sum("vcpus"), ram=Sum("memory_mb"))
    )
    return {name: totals[name] or 0 for name in ("instances", "cores", "ram")}


def register_quota_counters() -> None:
    quotas.register_usage_counters(["instances", "cores", "ram"], count_usage)


# --- validation ---------------------------------------------------------------------------------


def _clean_name(value: Any) -> str:
    return clean_name(value, "Instance", MAX_NAME)


def _clean_metadata(value: Any) -> dict[str, str]:
    return clean_string_map(
        value,
        what="Metadata",
        item="Metadata",
        too_many="An instance has at most {max_items} metadata items",
        max_items=MAX_METADATA_ITEMS,
        max_key=MAX_METADATA_LENGTH,
        max_value=MAX_METADATA_LENGTH,
    )


def _clean_description(value: Any) -> str:
    return clean_description(value, MAX_DESCRIPTION, printable=True)


def _clean_tags(value: Any) -> list[str]:
    return clean_tags(value, what="An instance", max_items=MAX_TAGS, max_length=MAX_TAG, forbidden="/,")


def _clean_user_data(value: Any) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        raise InvalidInput("User data must be text.")
    if len(value.encode()) > MAX_USER_DATA:
        raise InvalidInput(f"User data is limited to {MAX_USER_DATA // 1024} KiB.")
    return value


def _clean_networks(networks: Any, security_groups: Any) -> None:
    """Networking is a later capability: refuse what cannot be honoured, never ignore it silently."""
    if networks not in (None, [], "auto", "none"):
        raise InvalidInput("Networks cannot be chosen yet: this cloud has no networking service enabled.")
    if security_groups not in (None, [], ["default"]):
        raise InvalidInput(
            "Security groups cannot be chosen yet: this cloud has no networking service enabled."
        )


# --- create -------------------------------------------------------------------------------------


def create_instance(
    ctx: Context,
    *,
    name: str,
    flavor: Any,
    image: Any = None,
    boot_volume: Any = None,
    boot_from_volume: Any = None,
    key_name: str | None = None,
    user_data: str | None = None,
    metadata: dict | None = None,
    description: str | None = None,
    tags: Any = None,
    availability_zone: str | None = None,
    networks: Any = None,
    security_groups: Any = None,
    idempotency_key: str | None = None,
) -> tuple[Instance, bool]:
    """Launch an instance: validate, count quota, record the intent and its Operation in one
    transaction; the conductor schedules and spawns it after commit.

    Returns ``(instance, created)``; ``created`` is False when ``idempotency_key`` names an instance
    this project already launched with the same request (a retried POST).

    Boot from a volume (Nova's block_device_mapping_v2 with destination_type volume, boot_index 0):
    ``boot_volume`` names an existing bootable, available volume (source_type volume; no ``image``),
    or ``image`` with ``boot_from_volume={"size": GiB, "delete_on_termination": bool,
    "volume_type": ...}`` (source_type image) has a new volume made from the image first (counted in
    the ``volumes``/``gigabytes`` quotas); the instance waits in BUILD while it is created.
    """
    policy.enforce(ctx, "compute:instance:create")
    name = _clean_name(name)
    key = clean_idempotency_key(idempotency_key)
    flavor_obj: Flavor = Flavor.objects.resolve(ctx, flavor, "flavor")
    if flavor_obj.disabled:
        raise InvalidInput(f"Flavor {flavor_obj.name} is disabled: choose another.")
    boot = _clean_boot(ctx, image, boot_volume, boot_from_volume)
    image_obj: Image | None = None
    if boot["volume"] is not None:
        source_image = boot["volume"].source_image_id
        image_obj = Image.objects.filter(pk=source_image).first() if source_image else None
    else:
        image_obj = Image.objects.resolve(ctx, image, "image")
        if boot["new"] is None:
            check_image_bootable(image_obj, flavor_obj)
        elif image_obj.status != Image.ACTIVE:
            raise InvalidInput(f"Image {image_obj.name} is {image_obj.status}, not active: it cannot boot.")
    root_gb = 0 if boot["volume"] is not None or boot["new"] is not None else None
    key_data = ""
    if key_name:
        pair = KeyPair.objects.visible_to(ctx).filter(name=key_name).first()
        if pair is None:
            raise InvalidInput(f"You have no key pair named {key_name!r}.")
        key_data = pair.public_key
    user_data = _clean_user_data(user_data)
    metadata = _clean_metadata(metadata)
    description = _clean_description(description)
    tags = _clean_tags(tags) if tags is not None else []
    zone = (availability_zone or "").strip()
    if zone and not Host.objects.filter(availability_zone=zone).exists():
        raise InvalidInput(f"No availability zone {zone!r}.")
    _clean_networks(networks, security_groups)

    if key:
        existing = _replay(ctx, key, name, flavor_obj, image_obj)
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            quotas.enforce(
                ctx.project, {"instances": 1, "cores": flavor_obj.vcpus, "ram": flavor_obj.ram_mb}, ctx.user
            )
            instance = create_with_operation(
                ctx,
                Instance,
                "instance",
                task=tasknames.BUILD_INSTANCE,
                kwargs=lambda instance_id: {"instance_id": str(instance_id)},
                name=name,
                flavor=flavor_obj,
                image=image_obj,
                vcpus=flavor_obj.vcpus,
                memory_mb=flavor_obj.ram_mb,
                # From a volume the root disk is in the storage pool: the host gives only ephemeral.
                disk_gb=(root_gb if root_gb is not None else max(flavor_obj.disk_gb, image_obj.min_disk))
                + flavor_obj.ephemeral_gb,
                key_name=key_name or "",
                key_data=key_data,
                user_data=user_data,
                metadata=metadata,
                description=description,
                tags=tags,
                availability_zone=zone,
                vm_state=I.BUILDING,
                task_state=I.SCHEDULING,
                idempotency_key=key,
                boots_from_volume=root_gb is not None,
            )
            _reserve_root_volume(ctx, instance, image_obj, boot)
    except IntegrityError:
        # The same Idempotency-Key raced us and won: answer with its instance.
        existing = _replay(ctx, key, name, flavor_obj, image_obj) if key else None
        if existing is None:
            raise
        return existing, False
    return instance, True


def _clean_boot(ctx: Context, image: Any, boot_volume: Any, boot_from_volume: Any) -> dict:
    """``{"volume": Volume | None, "new": {size, delete_on_termination, volume_type} | None,
    "delete_on_termination": bool}`` from the launch's block-device source."""
    spec = boot_from_volume
    if spec is not None and not isinstance(spec, dict):
        raise InvalidInput("boot_from_volume is an object: {size, delete_on_termination, volume_type}.")
    spec = dict(spec or {})
    unknown = set(spec) - {"size", "delete_on_termination", "volume_type"}
    if unknown:
        raise InvalidInput(f"boot_from_volume has no field {sorted(unknown)[0]!r}.")
    delete = spec.get("delete_on_termination", False)
    if not isinstance(delete, bool):
        raise InvalidInput("delete_on_termination must be true or false.")
    if boot_volume not in (None, ""):
        if image not in (None, ""):
            raise InvalidInput("Give either image or boot_volume, not both.")
        if "size" in spec or "volume_type" in spec:
            raise InvalidInput(
                "An existing boot_volume has its size and type: give only delete_on_termination."
            )
        volume = Volume.objects.resolve(ctx, boot_volume, "volume")
        if not volume.bootable:
            raise InvalidInput(f"Volume {volume.name} is not bootable.")
        return {"volume": volume, "new": None, "delete_on_termination": delete}
    if image in (None, ""):
        raise InvalidInput("Give an image, or a boot_volume to boot from.")
    if boot_from_volume is None:
        return {"volume": None, "new": None, "delete_on_termination": False}
    size = spec.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise InvalidInput("boot_from_volume.size is a whole number of GiB.")
    return {
        "volume": None,
        "new": {"size": size, "volume_type": spec.get("volume_type")},
        "delete_on_termination": delete,
    }


def _reserve_root_volume(ctx: Context, instance: Instance, image: Image | None, boot: dict) -> None:
    """In the launch's transaction: the new root volume's create (its quota and pool claimed) and
    the root disk's attachment, so that both roll back with the instance."""
    volume = boot["volume"]
    if boot["new"] is not None:
        volume, _created = storage.create_volume(
            ctx,
            name=f"{instance.name}-root"[:255],
            size=boot["new"]["size"],
            volume_type=boot["new"]["volume_type"],
            image=str(image.pk),
            description=f"root disk of instance {instance.pk}",
        )
    if volume is None:
        return
    storage.reserve_boot_volume(
        ctx, volume, instance_id=instance.pk, delete_on_termination=boot["delete_on_termination"]
    )


def _replay(ctx: Context, key: str, name: str, flavor: Flavor, image: Image | None) -> Instance | None:
    instance = (
        Instance.objects.filter(project=ctx.project, idempotency_key=key).select_related("operation").first()
    )
    if instance is None:
        return None
    if (instance.name, instance.flavor_id, instance.image_id) != (
        name,
        flavor.pk,
        image.pk if image else None,
    ):
        raise Conflict(
            f"Idempotency-Key {key!r} was already used for a different request (instance {instance.pk})."
        )
    return instance


# --- actions --------------------------------------------------------------------------------------


def instance_action(
    ctx: Context, instance: Instance, action: str, idempotency_key: str | None = None
) -> Instance:
    """Start ``action`` (reboot, reboot_hard, stop, start, pause, unpause, suspend, resume, delete).

    With ``idempotency_key``, a retry of an action this instance already took with that key starts
    nothing and answers with the instance as it is now (the earlier action may have finished).
    A snapshot is ``snapshot_instance``'s: it makes the image its host fills."""
    if action == "snapshot":
        raise InvalidInput('A snapshot needs the image\'s name: POST instances/{id}/snapshot/ with {"name"}.')
    if action == "rebuild":
        raise InvalidInput('A rebuild needs its image: POST instances/{id}/rebuild/ with {"image"}.')
    return INSTANCE.begin(ctx, instance, action, idempotency_key=idempotency_key)


def rebuild_instance(
    ctx: Context, instance: Instance, *, image: Any, idempotency_key: str | None = None
) -> Instance:
    """``POST instances/{id}/rebuild/``: the same instance (id, name, flavor, host, addresses) on a
    root disk made anew from ``image`` (id or name, one the project may boot, that fits its flavor
    and its host's hypervisor), started; its image is that one once done. task_state rebuilding."""
    policy.enforce(ctx, "compute:instance:rebuild")
    image_obj = Image.objects.resolve(ctx, image, "image")
    check_image_bootable(image_obj, instance.flavor)
    wanted = str((image_obj.properties or {}).get("hypervisor_type", ""))
    node = ComputeNode.objects.filter(host_id=instance.host_id).first()
    if wanted and node is not None and node.hypervisor_type.lower() != wanted.lower():
        raise Conflict(
            f"Image {image_obj.name} needs a {wanted} host; instance {instance.name} is on a "
            f"{node.hypervisor_type or 'unknown'} host.",
            code="hypervisor_mismatch",
        )
    return INSTANCE.begin(
        ctx, instance, "rebuild", idempotency_key=idempotency_key, params={"image_id": str(image_obj.pk)}
    )


def reboot_instance(ctx: Context, instance: Instance, hard: bool = False) -> Instance:
    return instance_action(ctx, instance, "reboot_hard" if hard else "reboot")


def delete_instance(ctx: Context, instance: Instance) -> Instance:
    return instance_action(ctx, instance, "delete")


@transaction.atomic
def lock_instance(ctx: Context, instance: Instance) -> Instance:
    """Refuse every action by non-admins until unlocked (protects an instance from mistakes)."""
    policy.enforce(ctx, "compute:instance:lock")
    instance = Instance.objects.select_for_update().get(pk=instance.pk)
    if instance.locked:
        raise Conflict(f"Instance {instance.name} is already locked.")
    instance.locked = True
    instance.locked_by = "admin" if ctx.is_admin else "owner"
    instance.save(update_fields=["locked", "locked_by", "updated"])
    audit.record(ctx, "instance", instance.pk, "lock", project=instance.project)
    return instance


@transaction.atomic
def unlock_instance(ctx: Context, instance: Instance) -> Instance:
    policy.enforce(ctx, "compute:instance:unlock")
    instance = Instance.objects.select_for_update().get(pk=instance.pk)
    if not instance.locked:
        raise Conflict(f"Instance {instance.name} is not locked.")
    if instance.locked_by == "admin" and not ctx.is_admin:
        raise Conflict(f"Instance {instance.name} was locked by an administrator: ask one to unlock it.")
    instance.locked = False
    instance.locked_by = ""
    instance.save(update_fields=["locked", "locked_by", "updated"])
    audit.record(ctx, "instance", instance.pk, "unlock", project=instance.project)
    return instance


@transaction.atomic
def set_instance_metadata(
    ctx: Context, instance: Instance, metadata: Any, *, replace: bool = False, remove: tuple[str, ...] = ()
) -> Instance:
    """Change an instance's metadata: merge ``metadata`` into it (all of it when ``replace``), then
    drop the keys in ``remove`` (NotFound for one it does not have). A locked instance refuses,
    except to admins, as its lifecycle actions do."""
    policy.enforce(ctx, "compute:instance:metadata")
    instance = _locked_for_change(ctx, instance)
    changes = _clean_metadata(metadata)
    merged = dict(changes) if replace else {**(instance.metadata or {}), **changes}
    for key in remove:
        if key not in merged:
            raise NotFound(f"Metadata item {key} was not found on instance {instance.name}.")
        merged.pop(key)
    if len(merged) > MAX_METADATA_ITEMS:
        raise InvalidInput(f"An instance has at most {MAX_METADATA_ITEMS} metadata items.")
    if merged != (instance.metadata or {}):
        instance.metadata = merged
        instance.save(update_fields=["metadata", "updated"])
        audit.record(ctx, "instance", instance.pk, "set_metadata", project=instance.project)
    return instance


def _locked_for_change(ctx: Context, instance: Instance) -> Instance:
    """The instance's row, locked for a change of what it is called or tagged with; a locked
    instance refuses, except to admins, as its lifecycle actions do."""
    instance = Instance.objects.select_for_update().get(pk=instance.pk)
    if instance.locked and not ctx.is_admin:
        raise Conflict(f"Instance {instance.name} is locked: unlock it first.", code="locked")
    return instance


_UNSET: Any = object()


@transaction.atomic
def update_instance(
    ctx: Context, instance: Instance, *, name: Any = _UNSET, description: Any = _UNSET
) -> Instance:
    """Rename an instance or change its description (the guest is not told: nothing on a host)."""
    policy.enforce(ctx, "compute:instance:update")
    changes = {}
    if name is not _UNSET:
        changes["name"] = _clean_name(name)
    if description is not _UNSET:
        changes["description"] = _clean_description(description)
    instance = _locked_for_change(ctx, instance)
    changes = {k: v for k, v in changes.items() if getattr(instance, k) != v}
    if changes:
        for field_name, value in changes.items():
            setattr(instance, field_name, value)
        instance.save(update_fields=[*changes, "updated"])
        audit.record(ctx, "instance", instance.pk, "update", project=instance.project)
    return instance


@transaction.atomic
def set_instance_tags(
    ctx: Context,
    instance: Instance,
    tags: Any = None,
    *,
    add: tuple[str, ...] = (),
    remove: tuple[str, ...] = (),
) -> Instance:
    """Replace an instance's tags with ``tags`` (None: keep them), then add ``add`` and remove
    ``remove`` (NotFound for a tag it does not have)."""
    policy.enforce(ctx, "compute:instance:update")
    instance = _locked_for_change(ctx, instance)
    current = list(instance.tags or [])
    new = _clean_tags(tags) if tags is not None else current
    new = _clean_tags([*new, *add])
    for tag in remove:
        if tag not in new:
            raise NotFound(f"Instance {instance.name} has no tag {tag}.")
        new.remove(tag)
    if new != current:
        instance.tags = new
        instance.save(update_fields=["tags", "updated"])
        audit.record(ctx, "instance", instance.pk, "set_tags", project=instance.project)
    return instance


def console_log(ctx: Context, instance: Instance, lines: int = 100) -> dict:
    """The last ``lines`` lines of the guest's serial console, asked of its host (with a timeout)."""
    policy.enforce(ctx, "compute:instance:console")
    if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= MAX_CONSOLE_LINES:
        raise InvalidInput(f"lines must be a whole number from 1 to {MAX_CONSOLE_LINES}.")
    if instance.host_id is None or instance.vm_state in (I.BUILDING, I.DELETED):
        raise Conflict(f"Instance {instance.name} has no console yet (status {instance.status}).")
    host = Host.objects.get(pk=instance.host_id)
    if not host.is_up():
        raise ServiceUnavailable(f"Host {host.name} is down: its console log cannot be read now.")
    result = dispatch.call_host(
        tasknames.AGENT_CONSOLE_LOG,
        host.name,
        kwargs={"domain": instance.domain_name, "instance_id": str(instance.pk), "lines": lines},
        timeout=CONSOLE_TIMEOUT,
    )
    if not result.get("ok"):
        raise ServiceUnavailable(result.get("error") or f"Host {host.name} could not read the console log.")
    return {
        "output": result.get("output", ""),
        "supported": result.get("supported", True),
        "message": result.get("message", ""),
    }


def explain_scheduling(
    ctx: Context, *, flavor: Any, availability_zone: str = "", hypervisor_type: str = ""
) -> dict:
    """Admins' dry run: for a flavor, every host with pass or the reasons it fails (nothing claimed)."""
    policy.enforce(ctx, "compute:host:explain")
    flavor_obj = Flavor.objects.resolve(ctx, flavor, "flavor")
    request = scheduler.Request(
        vcpus=flavor_obj.vcpus,
        memory_mb=flavor_obj.ram_mb,
        disk_gb=flavor_obj.disk_gb + flavor_obj.ephemeral_gb,
        availability_zone=(availability_zone or "").strip(),
        hypervisor_type=(hypervisor_type or "").strip(),
    )
    return {
        "flavor": flavor_obj.name,
        "weigher": scheduler.weigher(),
        "hosts": [v.as_dict() for v in scheduler.explain(request)],
    }


def hosts_fitting(flavors) -> dict:
    """How many hosts could take one more instance of each flavor now (the launch wizard's hint;
    a count, no host names). One query."""
    now = timezone.now()
    free = list(
        ComputeNode.objects.filter(
            host__last_heartbeat__gte=now - settings.ZENITH_HOST_DOWN_AFTER, host__enabled=True
        )
        .annotate(**scheduler.free_capacity())
        .values_list("free_vcpus", "free_memory_mb", "free_disk_gb")
    )
    return {
        f.pk: sum(1 for v, m, d in free if v >= f.vcpus and m >= f.ram_mb and d >= f.disk_gb + f.ephemeral_gb)
        for f in flavors
    }
