"""The conductor's decisions about instances, each owning its next dispatch: schedule and claim a
host, hand the spawn to that host's agent, record its answer (active, reschedule elsewhere, or
error with a fault naming every attempt), and finish a delete (release the claim)."""

from __future__ import annotations

import dataclasses
import logging

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from identity import audit
from identity.context import system_context
from identity.errors import InvalidInput
from identity.models import ResourceAction
from storage import services as storage_services
from workers import dispatch, queues, tasknames
from workers import services as ledger
from workers.lifecycle import make_fault
from workers.models import Host, Operation
from workers.tasks import host_callbacks

from .. import scheduler
from ..models import Image, Instance
from .images import image_boot_spec

log = logging.getLogger(__name__)

I = Instance  # noqa: E741 - the state constants read better short

DEFER_SECONDS = 2  # a build that found its hosts silent looks again this much later
MAX_FAULT_HOSTS = 50  # per-host verdicts kept in a no-valid-host fault (the message counts them all)

__all__ = [
    "DEFERRED",
    "MAX_FAULT_HOSTS",
    "finish_delete",
    "release_from_down_hosts",
    "schedule_and_spawn",
    "schedule_instance",
    "spawn_finished",
]


def schedule_and_spawn(operation_id: str, instance_id: str) -> None:
    """Conductor: schedule the instance (claim a host), then hand the spawn to that host's agent,
    whose answer comes back to ``settle_step("create")`` of the instance lifecycle."""
    work = schedule_instance(operation_id, instance_id)
    if work == VOLUME_WAIT:
        # Its root volume is still being created on a storage host: look again shortly.
        current_app.send_task(
            tasknames.BUILD_INSTANCE,
            kwargs={"operation_id": operation_id, "instance_id": instance_id},
            queue=queues.CONDUCTOR,
            countdown=VOLUME_POLL_SECONDS,
        )
        return
    if work == DEFERRED:
        # Every host silent: heartbeats queued behind this message (a conductor or broker outage).
        current_app.send_task(
            tasknames.BUILD_INSTANCE,
            kwargs={"operation_id": operation_id, "instance_id": instance_id},
            queue=queues.CONDUCTOR,
            countdown=DEFER_SECONDS,
        )
        return
    if work is None:
        return
    dispatch.send_to_host(
        tasknames.AGENT_SPAWN_INSTANCE,
        work["host"],
        kwargs={
            "operation_id": operation_id,
            "instance": work["instance"],
            "image": work["image"],
            **({"root_volume": work["root_volume"]} if work.get("root_volume") else {}),
        },
        **host_callbacks(
            operation_id, host=work["host"], resource_type="instance", resource_id=instance_id, step="create"
        ),
    )


def _failed_attempts(fault: dict | None) -> list[dict]:
    """The failed spawns of this build so far, ``[{host, error}]``: kept in the instance's fault
    while it is rescheduled, so that the fault it ends with still names every host's own error."""
    details = (fault or {}).get("details")
    return list(details.get("attempts") or []) if isinstance(details, dict) else []


def _attempts_text(attempts: list[dict]) -> str:
    """The attempts for a message: "host: error; host: error"."""
    return "; ".join(f"{a['host']}: {a['error']}" for a in attempts)


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
VOLUME_WAIT = "volume_wait"
VOLUME_POLL_SECONDS = 0.5  # how often a build waiting for its root volume's create looks again


def _compute_hosts():
    return Host.objects.filter(enabled=True, compute__isnull=False)


def _hosts_may_come_back(request) -> bool:
    """No host fits, but one may in a moment: every enrolled host is silent (what failed is the
    conductor or the broker: their heartbeats queue up behind this work), or a host this instance
    could use fell silent only lately (its heartbeats may be queued too, or it is restarting). Past
    that grace, a silent host is down for good and the launch fails with "no valid host"."""
    now = timezone.now()
    recent = now - settings.ZENITH_HOST_DOWN_AFTER
    enabled = _compute_hosts()
    if enabled.exists() and not enabled.filter(last_heartbeat__gte=recent).exists():
        return True
    grace = now - 3 * settings.ZENITH_HOST_DOWN_AFTER
    usable = enabled.exclude(name__in=request.exclude)
    return usable.filter(last_heartbeat__lt=recent, last_heartbeat__gte=grace).exists()


def schedule_instance(operation_id, instance_id) -> dict | str | None:
    """Conductor: pick a host and claim it. Returns the host task's kwargs, or None when there is
    nothing to spawn (the instance was deleted meanwhile, or no host fits: it is now in error), or
    DEFERRED when a silent host may be back in a moment (the caller tries again shortly)."""
    instance = Instance.objects.select_related("image", "host").filter(pk=instance_id).first()
    if instance is None or instance.vm_state != I.BUILDING or instance.task_state == I.DELETING:
        ledger.succeed(operation_id, message="instance no longer building: nothing to spawn")
        return None
    if instance.task_state == I.SPAWNING and instance.host_id is not None:
        # Already placed: this is a redelivered message (the conductor died after the claim, maybe
        # before the spawn was sent). Send the spawn again: the agent's spawn is idempotent, and a
        # second answer for a finished operation is ignored (spawn_finished).
        return _spawn_work(instance, instance.host.name)
    if instance.task_state != I.SCHEDULING:
        return None
    request = scheduler.Request.for_instance(instance, exclude=instance.attempted_hosts)
    root = storage_services.boot_volume_of(instance_id) if instance.boots_from_volume else None
    if root is not None:
        reaches = _root_volume_ready(operation_id, instance_id, root)
        if reaches is None or reaches == VOLUME_WAIT:
            return reaches
        request = dataclasses.replace(request, reaches=reaches)
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
        verdicts = [v.as_dict() for v in exc.verdicts[:MAX_FAULT_HOSTS]]
        attempts = _failed_attempts(instance.fault)
        if attempts:  # a reschedule: the hosts' own errors first, "already tried" says nothing
            fault = make_fault(
                "no_valid_host",
                f"Spawning failed on {_attempts_text(attempts)}. {exc.summary()}",
                {"attempts": attempts, "hosts": verdicts},
            )
        else:
            fault = make_fault("no_valid_host", exc.summary(), verdicts)
        _error_instance(operation_id, instance_id, fault)
        return None
    try:
        work = _spawn_work(instance, host.name)
    except InvalidInput as exc:  # e.g. its kernel image was deleted since the launch was accepted
        _release_claim(instance_id)
        _error_instance(operation_id, instance_id, make_fault("image_unavailable", exc.message))
        return None
    ledger.report_progress(operation_id, 10, f"scheduled on {host.name}")
    return work


def _root_volume_ready(operation_id, instance_id, root) -> tuple[str, ...] | str | None:
    """A launch step of a boot from volume: the compute hosts its root volume's pool reaches (None:
    any) once it is available and held for the instance; VOLUME_WAIT while it is being created; None
    (the instance is now ERROR, the volume deleted if so marked) when its create failed."""
    volume = root.volume
    if volume.status == volume.CREATING:
        ledger.report_progress(operation_id, 3, f"creating its root volume {volume.name}")
        return VOLUME_WAIT
    if volume.status == volume.AVAILABLE and storage_services.hold_boot_volume(volume.pk):
        reaches = tuple(volume.pool.reaches) if volume.pool is not None else ()
        return None if "*" in reaches else reaches  # type: ignore[return-value]
    error = (volume.fault or {}).get("message") or f"it is {volume.display_status}"
    _error_instance(
        operation_id,
        instance_id,
        make_fault(
            "volume_failed",
            f"Its root volume {volume.name} could not be used: {error}",
            {"volume": str(volume.pk), "status": volume.display_status},
        ),
    )
    # Detached, and deleted when it was made for this instance to go with it.
    storage_services.instance_deleted(system_context(), instance_id)
    return None


def _spawn_work(instance: Instance, host_name: str) -> dict:
    """The kwargs of a host's spawn task for ``instance`` (raises InvalidInput when its image is gone)."""
    root = storage_services.boot_volume_of(instance.pk) if instance.boots_from_volume else None
    if root is not None and not root.volume.connection:
        raise InvalidInput(f"Its root volume {root.volume.name} has no connection from its storage host.")
    if instance.image_id is None:
        image_spec: dict = {"name": "", "size": 0, "disk_format": "raw", "cmdline": ""}
    elif root is not None and not (instance.image.properties or {}).get("kernel_id"):
        # Booting from the volume: the host fetches nothing of the image.
        image_spec = {"name": instance.image.name, "size": 0, "disk_format": "raw", "cmdline": ""}
    else:
        image_spec = _boot_spec(instance.image, instance.project_id)
    return {
        "root_volume": root.volume.connection if root is not None else None,
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


def rebuild_work(instance: Instance, image: Image) -> dict:
    """The kwargs of a host's rebuild task: the spawn's, with ``image`` as the instance's image."""
    instance.image = image
    work = _spawn_work(instance, instance.host.name)
    return {"instance": work["instance"], "image": work["image"]}


def _boot_spec(image: Image, project_id) -> dict:
    spec = image_boot_spec(image, project_id)  # its URLs are good while this project may use the image
    spec["cmdline"] = str((image.properties or {}).get("os_command_line", ""))
    return spec


def spawn_finished(operation_id, instance_id, result: dict) -> str:
    """Conductor: the host answered a spawn. Returns "active", "reschedule", "error", "gone" (deleted
    meanwhile), "duplicate" (a redelivered spawn answered again) or "stale" (from a host the instance
    is no longer placed on)."""
    instance = Instance.objects.select_related("host").filter(pk=instance_id).first()
    if instance is None:
        return "gone"
    answered_by = result.get("host")
    if answered_by and answered_by != (instance.host.name if instance.host_id else None):
        # A late or repeated answer from a host this instance is no longer placed on (it was
        # rescheduled away from a host that went down, or deleted): it settles nothing here.
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
            attempts = _failed_attempts(instance.fault)
            instance.fault = None
            instance.save(
                update_fields=["vm_state", "task_state", "power_state", "launched_at", "fault", "updated"]
            )
            message = f"active on {result.get('host', '')}"
            if attempts:  # the action log keeps what the cleared fault said
                message += f" after spawning failed on {_attempts_text(attempts)}"
            if instance.boots_from_volume:
                storage_services.boot_volume_attached(instance_id, result.get("host") or instance.host.name)
            ledger.succeed(operation_id, result=result, message=message)
            audit.finish(operation_id, ResourceAction.SUCCESS, message)
        return "active"
    error = result.get("error") or "the host could not spawn the instance"
    if instance.vm_state != I.BUILDING or instance.task_state != I.SPAWNING:
        return "gone" if instance.task_state == I.DELETING or instance.vm_state == I.DELETED else "duplicate"
    _release_claim(instance_id)
    instance.refresh_from_db()
    if instance.task_state == I.DELETING or instance.vm_state != I.BUILDING:
        return "gone"
    attempts = [*_failed_attempts(instance.fault), {"host": result.get("host") or "?", "error": error}]
    if len(instance.attempted_hosts) < settings.ZENITH_SCHEDULER_MAX_ATTEMPTS:
        message = f"Spawning failed on {_attempts_text(attempts)}; rescheduling"
        Instance.objects.filter(pk=instance_id, vm_state=I.BUILDING).exclude(task_state=I.DELETING).update(
            task_state=I.SCHEDULING, fault=make_fault("spawn_failed", message, {"attempts": attempts})
        )
        audit.note(operation_id, message)  # the running create action shows each attempt
        ledger.report_progress(operation_id, 5, f"spawn failed on {result.get('host', '?')}, rescheduling")
        return "reschedule"
    tried = ", ".join(instance.attempted_hosts)
    _error_instance(
        operation_id,
        instance_id,
        make_fault(
            "spawn_failed",
            f"Spawning failed on every host tried ({tried}): {_attempts_text(attempts)}",
            {"attempts": attempts},
        ),
    )
    return "error"


def release_from_down_hosts(now=None) -> list[tuple[str, str]]:
    """Conductor: instances still spawning on a host that stopped heartbeating give their claim back
    and go back to scheduling (that host stays in ``attempted_hosts``, so another one is chosen).

    Returns ``(operation_id, instance_id)`` pairs to schedule again. Should the down host come back
    and answer its old spawn after all, that answer is stale (spawn_finished) and its domain deleted.
    """
    now = now or timezone.now()
    down_before = now - settings.ZENITH_HOST_DOWN_AFTER
    if not _compute_hosts().filter(last_heartbeat__gte=down_before).exists():
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
            # An attempt like a failed spawn: the fault the build may end with names this host's cause
            # (found by tests/faults on the real host: it read only "already tried for this instance").
            attempts = [
                *_failed_attempts(instance.fault),
                {"host": down, "error": "the host went down before it spawned the instance"},
            ]
            message = f"Spawning failed on {_attempts_text(attempts)}; rescheduling"
            instance.fault = make_fault("host_down", message, {"attempts": attempts})
            instance.save(update_fields=["host", "task_state", "fault", "updated"])
            audit.note(instance.operation_id, message)
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
        audit.finish(operation_id, ResourceAction.ERROR, fault["message"])


def finish_delete(operation_id, instance_id, result: dict) -> None:
    """Conductor: the domain and its disks are gone (or never existed): release and mark deleted."""
    if not result.get("ok"):
        error = result.get("error") or "the host could not delete the instance"
        with transaction.atomic():
            Instance.objects.filter(pk=instance_id, task_state=I.DELETING).update(
                task_state="",
                vm_state=I.ERROR,
                fault=make_fault("delete_failed", error),
                updated=timezone.now(),
            )
            ledger.fail(operation_id, error, result=result)
            audit.finish(operation_id, ResourceAction.ERROR, error)
        return
    _release_claim(instance_id)
    now = timezone.now()
    with transaction.atomic():
        Instance.objects.filter(pk=instance_id).update(
            vm_state=I.DELETED, task_state="", power_state="nostate", terminated_at=now, updated=now
        )
        ledger.succeed(operation_id, result=result, message=result.get("message", "deleted"))
        audit.finish(operation_id, ResourceAction.SUCCESS, result.get("message", ""))
    # Its domain is gone: its volumes are detached, and deleted where they were attached so.
    storage_services.instance_deleted(system_context(), instance_id)
