"""Instances: create (quota-checked, idempotent), every lifecycle action, delete, lock, console log;
and the conductor's side of each: scheduling, spawn results, rescheduling, action results, faults.

Nova's state machine: an action is allowed only from the ``vm_state`` values in ``ACTIONS`` and
only while no other task runs (delete excepted); it sets ``task_state`` at once and the host's answer
settles ``vm_state``/``power_state``. Every action is service -> Operation -> conductor -> the host's
``compute.<host>`` queue -> callback; nothing here talks to a hypervisor.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from identity import policy, quotas
from identity.context import Context
from identity.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable
from identity.models import KeyPair
from workers import dispatch, queues
from workers import services as ledger
from workers.models import Operation

from .. import scheduler
from ..models import Flavor, Host, Image, Instance, InstanceAction
from .images import check_image_bootable, image_boot_spec

log = logging.getLogger(__name__)

I = Instance  # noqa: E741 - the state constants read better short

MAX_NAME = 255
MAX_USER_DATA = 64 * 1024
MAX_METADATA_ITEMS = 128
MAX_METADATA_LENGTH = 255
MAX_IDEMPOTENCY_KEY = 255
NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,255}$")
CONSOLE_TIMEOUT = 10.0  # seconds a host has to answer a console-log request
MAX_CONSOLE_LINES = 10_000
MAX_FAULT_HOSTS = 50  # per-host verdicts kept in a no-valid-host fault (the message counts them all)


@dataclass(frozen=True)
class Action:
    name: str
    allowed: frozenset[str]  # vm_states the action may start from
    task_state: str
    target: str  # vm_state on success
    host_action: str  # what the agent is told to do


_ALL_LIVE = frozenset({I.BUILDING, I.ACTIVE, I.STOPPED, I.PAUSED, I.SUSPENDED, I.ERROR})
ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("reboot", frozenset({I.ACTIVE}), I.REBOOTING, I.ACTIVE, "reboot"),
        Action(
            "reboot_hard",
            frozenset({I.ACTIVE, I.STOPPED, I.PAUSED, I.SUSPENDED, I.ERROR}),
            I.REBOOTING_HARD,
            I.ACTIVE,
            "reboot_hard",
        ),
        Action("stop", frozenset({I.ACTIVE, I.ERROR}), I.POWERING_OFF, I.STOPPED, "stop"),
        Action("start", frozenset({I.STOPPED}), I.POWERING_ON, I.ACTIVE, "start"),
        Action("pause", frozenset({I.ACTIVE}), I.PAUSING, I.PAUSED, "pause"),
        Action("unpause", frozenset({I.PAUSED}), I.UNPAUSING, I.ACTIVE, "unpause"),
        Action("suspend", frozenset({I.ACTIVE}), I.SUSPENDING, I.SUSPENDED, "suspend"),
        Action("resume", frozenset({I.SUSPENDED}), I.RESUMING, I.ACTIVE, "resume"),
        Action("delete", _ALL_LIVE, I.DELETING, I.DELETED, "delete"),
    )
}
# The vm_state that matches what the hypervisor says, when a failed action must fall back to the truth.
POWER_TO_VM_STATE = {
    "running": I.ACTIVE,
    "paused": I.PAUSED,
    "suspended": I.SUSPENDED,
    "shutdown": I.STOPPED,
    "crashed": I.STOPPED,
}


def allowed_actions(instance: Instance) -> list[str]:
    """The actions the instance's state allows now (for buttons and the API's 409s)."""
    if instance.vm_state == I.DELETED or instance.task_state == I.DELETING:
        return []
    names = [] if instance.task_state else [n for n, a in ACTIONS.items() if instance.vm_state in a.allowed]
    if instance.task_state and "delete" not in names:
        names.append("delete")
    return names


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
    name = value.strip() if isinstance(value, str) else ""
    if not NAME_RE.match(name):
        raise InvalidInput(f"Instance name must be 1-{MAX_NAME} printable characters.")
    return name


def _clean_metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("Metadata must be an object of string keys to string values.")
    if len(value) > MAX_METADATA_ITEMS:
        raise InvalidInput(f"An instance has at most {MAX_METADATA_ITEMS} metadata items.")
    for key, item in value.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_METADATA_LENGTH:
            raise InvalidInput(f"Metadata keys must be 1-{MAX_METADATA_LENGTH} characters.")
        if not isinstance(item, str) or len(item) > MAX_METADATA_LENGTH:
            raise InvalidInput(
                f"Metadata {key!r} must be a string of at most {MAX_METADATA_LENGTH} characters."
            )
    return dict(value)


def _clean_user_data(value: Any) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        raise InvalidInput("User data must be text.")
    if len(value.encode()) > MAX_USER_DATA:
        raise InvalidInput(f"User data is limited to {MAX_USER_DATA // 1024} KiB.")
    return value


def _resolve(model, ctx: Context, ref: Any, what: str):
    """A visible row by id or (unique) name; 400 with a clear message otherwise."""
    if isinstance(ref, model):
        ref = ref.pk
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput(f"Say which {what} to use (its id or name).")
    ref = ref.strip()
    visible = model.objects.visible_to(ctx)
    try:
        return visible.get_visible(ctx, pk=ref)
    except NotFound:
        pass
    matches = list(visible.filter(name=ref)[:2])
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InvalidInput(f"More than one {what} is named {ref!r}: use its id.")
    raise InvalidInput(f"No {what} {ref!r} is available to this project.")


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
    image: Any,
    key_name: str | None = None,
    user_data: str | None = None,
    metadata: dict | None = None,
    availability_zone: str | None = None,
    networks: Any = None,
    security_groups: Any = None,
    idempotency_key: str | None = None,
) -> tuple[Instance, bool]:
    """Launch an instance: validate, count quota, record the intent and its Operation in one
    transaction; the conductor schedules and spawns it after commit.

    Returns ``(instance, created)``; ``created`` is False when ``idempotency_key`` names an instance
    this project already launched with the same request (a retried POST).
    """
    policy.enforce(ctx, "compute:instance:create")
    name = _clean_name(name)
    key = _clean_idempotency_key(idempotency_key)
    flavor_obj: Flavor = _resolve(Flavor, ctx, flavor, "flavor")
    if flavor_obj.disabled:
        raise InvalidInput(f"Flavor {flavor_obj.name} is disabled: choose another.")
    image_obj: Image = _resolve(Image, ctx, image, "image")
    check_image_bootable(image_obj, flavor_obj)
    key_data = ""
    if key_name:
        pair = KeyPair.objects.visible_to(ctx).filter(name=key_name).first()
        if pair is None:
            raise InvalidInput(f"You have no key pair named {key_name!r}.")
        key_data = pair.public_key
    user_data = _clean_user_data(user_data)
    metadata = _clean_metadata(metadata)
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
            # The Operation first, so the Instance is inserted with it: the fewer writes under the
            # project's quota lock, the sooner the next create of this project may count.
            instance_id = uuid.uuid4()
            op = dispatch.enqueue(
                ctx,
                kind="instance.create",
                task="compute.tasks.build_instance",
                kwargs={"instance_id": str(instance_id)},
                queue=queues.CONDUCTOR,
                resource_type="instance",
                resource_id=instance_id,
            )
            instance = Instance.objects.create(
                id=instance_id,
                name=name,
                project=ctx.project,
                user=ctx.user,
                flavor=flavor_obj,
                image=image_obj,
                vcpus=flavor_obj.vcpus,
                memory_mb=flavor_obj.ram_mb,
                disk_gb=max(flavor_obj.disk_gb, image_obj.min_disk) + flavor_obj.ephemeral_gb,
                key_name=key_name or "",
                key_data=key_data,
                user_data=user_data,
                metadata=metadata,
                availability_zone=zone,
                vm_state=I.BUILDING,
                task_state=I.SCHEDULING,
                idempotency_key=key,
                operation=op,
            )
            InstanceAction.objects.create(
                instance=instance,
                action="create",
                user=ctx.user,
                request_id=ctx.request_id[:64],
                operation=op,
            )
    except IntegrityError:
        # The same Idempotency-Key raced us and won: answer with its instance.
        existing = _replay(ctx, key, name, flavor_obj, image_obj) if key else None
        if existing is None:
            raise
        return existing, False
    return instance, True


def _clean_idempotency_key(value: str | None) -> str:
    key = (value or "").strip()
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(f"Idempotency-Key is limited to {MAX_IDEMPOTENCY_KEY} characters.")
    return key


def _replay(ctx: Context, key: str, name: str, flavor: Flavor, image: Image) -> Instance | None:
    instance = (
        Instance.objects.filter(project=ctx.project, idempotency_key=key).select_related("operation").first()
    )
    if instance is None:
        return None
    if (instance.name, instance.flavor_id, instance.image_id) != (name, flavor.pk, image.pk):
        raise Conflict(
            f"Idempotency-Key {key!r} was already used for a different request (instance {instance.pk})."
        )
    return instance


def _record_action(
    ctx: Context, instance: Instance, action: str, op: Operation | None, idempotency_key: str = ""
) -> None:
    """The action log's row; an action without an operation (lock, unlock) is done at once."""
    done = {} if op is not None else {"finish_time": timezone.now(), "result": InstanceAction.SUCCESS}
    InstanceAction.objects.create(
        instance=instance,
        action=action,
        user=ctx.user,
        request_id=ctx.request_id[:64],
        operation=op,
        idempotency_key=idempotency_key,
        **done,
    )
    if op is not None:
        Instance.objects.filter(pk=instance.pk).update(operation=op)
        instance.operation = op


# --- actions --------------------------------------------------------------------------------------


def _check_lock(ctx: Context, instance: Instance) -> None:
    if instance.locked and not ctx.is_admin:
        raise Conflict(f"Instance {instance.name} is locked: unlock it first.", code="locked")


def _check_allowed(instance: Instance, action: Action) -> None:
    if instance.task_state == I.DELETING:
        raise Conflict(f"Instance {instance.name} is being deleted.", code="invalid_state")
    if action.name != "delete" and instance.task_state:
        raise Conflict(
            f"Instance {instance.name} is busy ({instance.task_state}): wait for it to finish.",
            code="invalid_state",
        )
    if instance.vm_state not in action.allowed:
        raise Conflict(
            f"Cannot {action.name.replace('_', ' ')} instance {instance.name} while it is "
            f"{instance.vm_state} (status {instance.status}).",
            code="invalid_state",
        )


def instance_action(
    ctx: Context, instance: Instance, action: str, idempotency_key: str | None = None
) -> Instance:
    """Start ``action`` (reboot, reboot_hard, stop, start, pause, unpause, suspend, resume, delete).

    With ``idempotency_key``, a retry of an action this instance already took with that key starts
    nothing and answers with the instance as it is now (the earlier action may have finished)."""
    spec = ACTIONS.get(action)
    if spec is None:
        raise InvalidInput(f"Unknown action {action!r}.")
    policy.enforce(ctx, f"compute:instance:{'reboot' if action.startswith('reboot') else action}")
    key = _clean_idempotency_key(idempotency_key)
    with transaction.atomic():
        locked = Instance.objects.select_for_update().filter(pk=instance.pk).first()
        if locked is None or locked.vm_state == I.DELETED:
            raise NotFound("No such instance.")
        instance = locked
        if key:  # the row lock above orders concurrent retries: the first records, the rest find it
            earlier = InstanceAction.objects.filter(instance=instance, idempotency_key=key).first()
            if earlier is not None:
                if earlier.action != action:
                    raise Conflict(
                        f"Idempotency-Key {key!r} was already used for {earlier.action} of this instance."
                    )
                return instance
        _check_lock(ctx, instance)
        _check_allowed(instance, spec)
        if action != "delete" and instance.host_id is None:
            raise Conflict(f"Instance {instance.name} is on no host.", code="invalid_state")
        instance.task_state = spec.task_state
        instance.save(update_fields=["task_state", "updated"])
        op = dispatch.enqueue(
            ctx,
            kind=f"instance.{action}",
            task="compute.tasks.run_instance_action",
            kwargs={"instance_id": str(instance.pk), "action": action},
            queue=queues.CONDUCTOR,
            resource_type="instance",
            resource_id=instance.pk,
            project=instance.project,
        )
        _record_action(ctx, instance, action, op, key)
    return instance


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
    _record_action(ctx, instance, "lock", None)
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
    _record_action(ctx, instance, "unlock", None)
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
        "workers.agent.tasks.console_log",
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
    flavor_obj = _resolve(Flavor, ctx, flavor, "flavor")
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
    free = list(
        Host.objects.up()
        .filter(enabled=True)
        .annotate(**scheduler.free_capacity())
        .values_list("free_vcpus", "free_memory_mb", "free_disk_gb")
    )
    return {
        f.pk: sum(1 for v, m, d in free if v >= f.vcpus and m >= f.ram_mb and d >= f.disk_gb + f.ephemeral_gb)
        for f in flavors
    }


# --- the conductor's side: scheduling and spawning -------------------------------------------------


def _fault(code: str, message: str, details: Any = None) -> dict:
    return {
        "code": code,
        "message": message[:4000],
        "details": details,
        "created": timezone.now().isoformat(),
    }


def _finish_action(operation_id, result: str, message: str = "") -> None:
    InstanceAction.objects.filter(operation_id=operation_id, finish_time__isnull=True).update(
        finish_time=timezone.now(), result=result, message=message[:4000]
    )


def _release_claim(instance_id) -> None:
    """Give the instance's claimed capacity back to its host (once)."""
    with transaction.atomic():
        instance = Instance.objects.select_for_update().get(pk=instance_id)
        if instance.host_id is None:
            return
        scheduler.release(instance.host_id, instance.vcpus, instance.memory_mb, instance.disk_gb)
        instance.host = None
        instance.save(update_fields=["host", "updated"])


DEFERRED = "deferred"


def _hosts_may_come_back(request) -> bool:
    """No host fits, but one may in a moment: every enrolled host is silent (what failed is the
    conductor or the broker: their heartbeats queue up behind this work), or a host this instance
    could use fell silent only lately (its heartbeats may be queued too, or it is restarting). Past
    that grace, a silent host is down for good and the launch fails with "no valid host"."""
    now = timezone.now()
    recent = now - settings.ZENITH_HOST_DOWN_AFTER
    enabled = Host.objects.filter(enabled=True)
    if enabled.exists() and not enabled.filter(last_heartbeat__gte=recent).exists():
        return True
    grace = now - 3 * settings.ZENITH_HOST_DOWN_AFTER
    usable = enabled.exclude(name__in=request.exclude)
    return usable.filter(last_heartbeat__lt=recent, last_heartbeat__gte=grace).exists()


def schedule_instance(operation_id, instance_id) -> dict | str | None:
    """Conductor: pick a host and claim it. Returns the host task's kwargs, or None when there is
    nothing to spawn (the instance was deleted meanwhile, or no host fits: it is now in error), or
    DEFERRED when a silent host may be back in a moment (the caller tries again shortly)."""
    instance = Instance.objects.select_related("image").filter(pk=instance_id).first()
    if instance is None or instance.vm_state != I.BUILDING or instance.task_state == I.DELETING:
        ledger.succeed(operation_id, message="instance no longer building: nothing to spawn")
        return None
    if instance.task_state == I.SPAWNING and instance.host_id is not None:
        # Already placed: this is a redelivered message (the conductor died after the claim, maybe before
        # the spawn was sent). Send the spawn again: the agent's spawn is idempotent, and a second answer
        # for a finished operation is ignored (spawn_finished).
        return _spawn_work(instance, instance.host.name)
    if instance.task_state != I.SCHEDULING:
        return None
    request = scheduler.Request.for_instance(instance, exclude=instance.attempted_hosts)
    try:
        # The claim and the placement commit together: a conductor killed between the two would
        # otherwise leave a claim on a host that no instance row accounts for (found by tests/faults).
        # The instance row is locked first, then the host's (the order _release_claim uses too).
        with transaction.atomic():
            instance = (
                Instance.objects.select_for_update(of=("self",)).select_related("image").get(pk=instance_id)
            )
            if instance.vm_state != I.BUILDING or instance.task_state != I.SCHEDULING:
                if instance.task_state in (I.DELETING, "") or instance.vm_state != I.BUILDING:
                    ledger.succeed(operation_id, message="instance deleted while it was being scheduled")
                return None
            host = scheduler.select_and_claim(request)
            instance.host = host
            instance.task_state = I.SPAWNING
            instance.attempted_hosts = [*instance.attempted_hosts, host.name]
            instance.save(update_fields=["host", "task_state", "attempted_hosts", "updated"])
    except scheduler.NoValidHost as exc:
        if _hosts_may_come_back(request):
            ledger.report_progress(operation_id, 5, "waiting for the hosts' heartbeats")
            return DEFERRED
        _error_instance(
            operation_id,
            instance_id,
            _fault("no_valid_host", exc.summary(), [v.as_dict() for v in exc.verdicts[:MAX_FAULT_HOSTS]]),
        )
        return None
    try:
        work = _spawn_work(instance, host.name)
    except InvalidInput as exc:  # e.g. its kernel image was deleted since the launch was accepted
        _release_claim(instance_id)
        _error_instance(operation_id, instance_id, _fault("image_unavailable", exc.message))
        return None
    ledger.report_progress(operation_id, 10, f"scheduled on {host.name}")
    return work


def _spawn_work(instance: Instance, host_name: str) -> dict:
    """The kwargs of a host's spawn task for ``instance`` (raises InvalidInput when its image is gone)."""
    image_spec = _boot_spec(instance.image)
    return {
        "host": host_name,
        "instance": {
            "id": str(instance.pk),
            "name": instance.name,
            "domain": instance.domain_name,
            "vcpus": instance.vcpus,
            "memory_mb": instance.memory_mb,
            "disk_gb": instance.disk_gb,
            "key_data": instance.key_data,
            "user_data": instance.user_data,
            "metadata": instance.metadata,
        },
        "image": image_spec,
    }


def _boot_spec(image: Image) -> dict:
    spec = image_boot_spec(image)
    spec["cmdline"] = str((image.properties or {}).get("os_command_line", ""))
    return spec


def spawn_finished(operation_id, instance_id, result: dict) -> str:
    """Conductor: the host answered a spawn. Returns "active", "reschedule", "error" or "gone"."""
    instance = Instance.objects.select_related("host").filter(pk=instance_id).first()
    if instance is None:
        return "gone"
    answered_by = result.get("host")
    if answered_by and answered_by != (instance.host.name if instance.host_id else None):
        # A late or repeated answer from a host this instance is no longer placed on (it was rescheduled
        # away from a host that went down, or deleted): it settles nothing here.
        return "stale"
    if result.get("ok"):
        with transaction.atomic():
            instance = Instance.objects.select_for_update().get(pk=instance_id)
            if instance.vm_state == I.DELETED or instance.task_state == I.DELETING:
                return "gone"  # deleted while spawning: the delete's destroy removes the domain
            if instance.vm_state != I.BUILDING:
                return "duplicate"  # a redelivered spawn answered again: already settled
            instance.vm_state = I.ACTIVE
            instance.task_state = ""
            instance.power_state = result.get("power_state") or "running"
            instance.launched_at = timezone.now()
            instance.fault = None
            instance.save(
                update_fields=["vm_state", "task_state", "power_state", "launched_at", "fault", "updated"]
            )
            ledger.succeed(operation_id, result=result, message=f"active on {result.get('host', '')}")
            _finish_action(operation_id, InstanceAction.SUCCESS)
        return "active"
    error = result.get("error") or "the host could not spawn the instance"
    if instance.vm_state != I.BUILDING or instance.task_state != I.SPAWNING:
        return "gone" if instance.task_state == I.DELETING or instance.vm_state == I.DELETED else "duplicate"
    _release_claim(instance_id)
    instance.refresh_from_db()
    if instance.task_state == I.DELETING or instance.vm_state != I.BUILDING:
        return "gone"
    if len(instance.attempted_hosts) < settings.ZENITH_SCHEDULER_MAX_ATTEMPTS:
        Instance.objects.filter(pk=instance_id, vm_state=I.BUILDING).exclude(task_state=I.DELETING).update(
            task_state=I.SCHEDULING, fault=_fault("spawn_failed", f"{result.get('host', '?')}: {error}")
        )
        ledger.report_progress(operation_id, 5, f"spawn failed on {result.get('host', '?')}, rescheduling")
        return "reschedule"
    tried = ", ".join(instance.attempted_hosts)
    _error_instance(
        operation_id,
        instance_id,
        _fault("spawn_failed", f"Spawning failed on every host tried ({tried}); last error: {error}", result),
    )
    return "error"


def release_from_down_hosts(now=None) -> list[tuple[str, str]]:
    """Conductor: instances still spawning on a host that stopped heartbeating give their claim back
    and go back to scheduling (that host stays in ``attempted_hosts``, so another one is chosen).

    Returns ``(operation_id, instance_id)`` pairs to schedule again. Should the down host come back and
    answer its old spawn after all, that answer is stale (spawn_finished) and its domain is deleted.
    """
    now = now or timezone.now()
    down_before = now - settings.ZENITH_HOST_DOWN_AFTER
    if not Host.objects.filter(enabled=True, last_heartbeat__gte=down_before).exists():
        # Every host silent at once: the broker (or this conductor's link to it) is what failed, not
        # the hosts. There is nowhere else to go; their spawns resume when the heartbeats do.
        return []
    candidates = Instance.objects.filter(
        vm_state=I.BUILDING,
        task_state=I.SPAWNING,
        host__isnull=False,
        operation__state=Operation.RUNNING,
    ).filter(Q(host__last_heartbeat__isnull=True) | Q(host__last_heartbeat__lt=down_before))
    moved = []
    for instance_id in list(candidates.values_list("pk", flat=True)):
        with transaction.atomic():
            instance = (
                Instance.objects.select_for_update(of=("self",))
                .select_related("host")
                .filter(pk=instance_id, vm_state=I.BUILDING, task_state=I.SPAWNING)
                .first()
            )
            if instance is None or instance.host is None or instance.host.is_up(now):
                continue
            down = instance.host.name
            scheduler.release(instance.host_id, instance.vcpus, instance.memory_mb, instance.disk_gb)
            instance.host = None
            instance.task_state = I.SCHEDULING
            instance.fault = _fault("host_down", f"{down}: the host went down before it spawned the instance")
            instance.save(update_fields=["host", "task_state", "fault", "updated"])
            ledger.report_progress(instance.operation_id, 5, f"host {down} is down, rescheduling")
        log.warning("instance %s: host %s is down, rescheduling", instance_id, down)
        moved.append((str(instance.operation_id), str(instance_id)))
    return moved


def _error_instance(operation_id, instance_id, fault: dict) -> None:
    with transaction.atomic():
        Instance.objects.filter(pk=instance_id).exclude(vm_state=I.DELETED).update(
            vm_state=I.ERROR, task_state="", fault=fault, updated=timezone.now()
        )
        ledger.fail(operation_id, fault["message"])
        _finish_action(operation_id, InstanceAction.ERROR, fault["message"])


# --- the conductor's side: actions -------------------------------------------------------------------


def action_target(operation_id, instance_id, action: str) -> dict | None:
    """Conductor: where to send an action (host task kwargs); None when it finished here already."""
    instance = Instance.objects.select_related("host").filter(pk=instance_id).first()
    if instance is None:
        ledger.fail(operation_id, "the instance no longer exists")
        return None
    if action == "delete":
        if instance.host is None or not instance.host.is_up():
            # Never placed, or its host is down: delete here (Nova's local delete). A domain left on a
            # down host shows up in the drift view once the host is back.
            note = "" if instance.host is None else f" (host {instance.host.name} is down: local delete)"
            finish_delete(operation_id, instance_id, {"ok": True, "message": "deleted" + note})
            return None
    elif instance.host is None:
        action_finished(
            operation_id, instance_id, action, {"ok": False, "error": "the instance is on no host"}
        )
        return None
    ledger.report_progress(operation_id, 10, f"sent to {instance.host.name}")
    return {"host": instance.host.name, "domain": instance.domain_name, "instance_id": str(instance.pk)}


def action_finished(operation_id, instance_id, action: str, result: dict) -> None:
    """Conductor: the host answered an action; settle the state (or fall back to what is true)."""
    if action == "delete":
        finish_delete(operation_id, instance_id, result)
        return
    spec = ACTIONS[action]
    with transaction.atomic():
        instance = Instance.objects.select_for_update().filter(pk=instance_id).first()
        if Operation.objects.filter(pk=operation_id).exclude(state__in=Operation.UNFINISHED).exists():
            return  # a redelivered action answered again: its operation is settled already
        if instance is None or instance.vm_state == I.DELETED:
            ledger.succeed(operation_id, message="instance deleted meanwhile")
            return
        if instance.task_state == I.DELETING:
            ledger.succeed(operation_id, result=result, message="superseded by delete")
            _finish_action(operation_id, InstanceAction.SUCCESS, "superseded by delete")
            return
        power = result.get("power_state") or ""
        fields = ["vm_state", "task_state", "power_state", "fault", "updated"]
        if result.get("ok"):
            instance.vm_state = spec.target
            instance.task_state = ""
            instance.power_state = power or instance.power_state
            instance.fault = None
            instance.save(update_fields=fields)
            ledger.succeed(operation_id, result=result, message=result.get("message", ""))
            _finish_action(operation_id, InstanceAction.SUCCESS, result.get("message", ""))
            return
        error = result.get("error") or f"the host could not {action}"
        instance.task_state = ""
        if power:
            instance.power_state = power
            instance.vm_state = POWER_TO_VM_STATE.get(power, instance.vm_state)
        instance.fault = _fault(f"{action}_failed", error)
        instance.save(update_fields=fields)
        ledger.fail(operation_id, error, result=result)
        _finish_action(operation_id, InstanceAction.ERROR, error)


def finish_delete(operation_id, instance_id, result: dict) -> None:
    """Conductor: the domain and its disks are gone (or never existed): release and mark deleted."""
    if not result.get("ok"):
        error = result.get("error") or "the host could not delete the instance"
        with transaction.atomic():
            Instance.objects.filter(pk=instance_id, task_state=I.DELETING).update(
                task_state="", vm_state=I.ERROR, fault=_fault("delete_failed", error), updated=timezone.now()
            )
            ledger.fail(operation_id, error, result=result)
            _finish_action(operation_id, InstanceAction.ERROR, error)
        return
    _release_claim(instance_id)
    now = timezone.now()
    with transaction.atomic():
        Instance.objects.filter(pk=instance_id).update(
            vm_state=I.DELETED, task_state="", power_state="nostate", terminated_at=now, updated=now
        )
        ledger.succeed(operation_id, result=result, message=result.get("message", "deleted"))
        _finish_action(operation_id, InstanceAction.SUCCESS, result.get("message", ""))


def operation_timed_out(operation: Operation) -> None:
    """The sweeper failed an instance operation at its deadline: never leave the instance in limbo."""
    if operation.resource_type != "instance" or operation.resource_id is None:
        return
    message = operation.message or "the operation did not finish in time"
    with transaction.atomic():
        instance = Instance.objects.select_for_update().filter(pk=operation.resource_id).first()
        if instance is None or instance.vm_state == I.DELETED:
            return
        if operation.kind == "instance.create" and instance.vm_state == I.BUILDING:
            instance.vm_state = I.ERROR
        instance.task_state = ""
        instance.fault = _fault("timeout", message)
        instance.save(update_fields=["vm_state", "task_state", "fault", "updated"])
        _finish_action(operation.pk, InstanceAction.ERROR, message)


# --- power sync -----------------------------------------------------------------------------------


def sync_power_states(host_name: str, domains: list[dict], now=None) -> dict:
    """Conductor: what libvirt lists on a host vs the database. Stable instances (no task running)
    whose power state changed on its own (a guest powered itself off) follow the hypervisor."""
    now = now or timezone.now()
    host = Host.objects.filter(name=host_name).first()
    if host is None:
        return {"updated": 0}
    Host.objects.filter(pk=host.pk).update(domains=domains, domains_reported_at=now)
    by_id = {d.get("instance_id") or "": d for d in domains}
    updated = 0
    for instance in Instance.objects.filter(host=host, task_state="").exclude(
        vm_state__in=(I.DELETED, I.BUILDING)
    ):
        dom = by_id.get(str(instance.pk))
        if dom is None:
            continue  # the drift view shows rows whose domain is gone; nothing is guessed here
        updated += apply_power_state(instance.pk, dom.get("power_state") or "nostate", now)
    return {"updated": updated}


def apply_power_state(instance_id, power: str, now=None) -> int:
    """Record a power state the hypervisor reported (event or sync) for a stable instance.

    The vm_state follows (a guest that powered itself off is SHUTOFF), except for an instance in
    ERROR: that stays ERROR, with the power state recorded, until someone acts on it (as in Nova).
    """
    fields: dict[str, Any] = {"power_state": power, "power_synced_at": now or timezone.now()}
    stable = Instance.objects.filter(pk=instance_id, task_state="").exclude(
        vm_state__in=(I.DELETED, I.BUILDING)
    )
    changed = stable.filter(vm_state=I.ERROR).exclude(power_state=power).update(**fields)
    vm_state = POWER_TO_VM_STATE.get(power)
    others = stable.exclude(vm_state=I.ERROR)
    if vm_state is not None:
        fields["vm_state"] = vm_state
        others = others.exclude(power_state=power, vm_state=vm_state)
    else:
        others = others.exclude(power_state=power)
    return changed + others.update(**fields)


def drift(ctx: Context) -> dict:
    """Admin: domains on hosts that no instance row knows, and rows whose domain is gone (from each
    host's latest domain list; two queries whatever the number of hosts)."""
    policy.enforce(ctx, "compute:instance:drift")
    hosts = list(Host.objects.exclude(domains_reported_at=None))
    listed = {(host.pk, d.get("instance_id")) for host in hosts for d in host.domains}
    rows = list(Instance.objects.filter(host__in=hosts).exclude(vm_state=I.DELETED).select_related("project"))
    known = {(row.host_id, str(row.pk)) for row in rows}
    # Rows whose domain may rightly be absent: still spawning, or being deleted.
    rows = [row for row in rows if row.vm_state != I.BUILDING and row.task_state != I.DELETING]
    unknown = [
        {"host": host.name, **dom}
        for host in hosts
        for dom in host.domains
        if (host.pk, dom.get("instance_id")) not in known
    ]
    by_pk = {host.pk: host.name for host in hosts}
    missing = [
        {
            "host": by_pk[row.host_id],
            "instance_id": str(row.pk),
            "name": row.name,
            "project": row.project.name,
            "vm_state": row.vm_state,
        }
        for row in rows
        if (row.host_id, str(row.pk)) not in listed
    ]
    return {"unknown_domains": unknown, "missing_domains": missing}
