"""The instance's state machine, declared once (Nova's): which transition may start from which
``vm_state``, the ``task_state`` while it runs, the ``vm_state`` it ends in, and how users meet it
(label, icon, confirmation, message). ``workers.lifecycle`` turns it into the service's begin, the
conductor's steps, the API's action endpoints and the dashboard's buttons.

Every transition is service -> Operation -> conductor -> the host's ``compute.<host>`` queue ->
callback; nothing here talks to a hypervisor.
"""

from __future__ import annotations

from identity.context import Context
from identity.errors import Conflict
from workers import dispatch, lifecycle, tasknames
from workers import services as ledger
from workers.lifecycle import HostWork, Transition, operation_params
from workers.models import Operation

from ..models import Image, Instance
from . import conductor, image_uploads, images
from .power import POWER_TO_VM_STATE

I = Instance  # noqa: E741 - the state constants read better short

_ALL_LIVE = frozenset({I.BUILDING, I.ACTIVE, I.STOPPED, I.PAUSED, I.SUSPENDED, I.ERROR})
_REBOOT = "compute:instance:reboot"
SNAPSHOT = "snapshot"
REBUILD = "rebuild"


def _action(*args, **kwargs) -> Transition:
    """Every instance transition is carried out by the same agent task, on the compute queue."""
    return Transition(*args, host_task=tasknames.AGENT_INSTANCE_ACTION, **kwargs)


TRANSITIONS = (
    _action(
        "start",
        frozenset({I.STOPPED}),
        I.POWERING_ON,
        I.ACTIVE,
        "Start",
        icon="play-fill",
        style="success",
        message="Starting instance {name}.",
        doc="Boot a stopped instance.",
    ),
    _action(
        "stop",
        frozenset({I.ACTIVE, I.ERROR}),
        I.POWERING_OFF,
        I.STOPPED,
        "Stop",
        icon="stop-fill",
        style="warning",
        confirm="Stop instance {name}? Its guest is shut down.",
        message="Stopping instance {name}.",
        doc="Shut the guest down (ACPI, then power off after a timeout).",
    ),
    _action(
        "reboot",
        frozenset({I.ACTIVE}),
        I.REBOOTING,
        I.ACTIVE,
        "Reboot",
        icon="arrow-clockwise",
        confirm="Reboot instance {name}?",
        message="Rebooting instance {name}.",
        policy=_REBOOT,
        endpoint="",  # the API's reboot endpoint chooses soft or hard from its body
    ),
    _action(
        "reboot_hard",
        frozenset({I.ACTIVE, I.STOPPED, I.PAUSED, I.SUSPENDED, I.ERROR}),
        I.REBOOTING_HARD,
        I.ACTIVE,
        "Hard reboot",
        icon="lightning-charge",
        style="warning",
        confirm="Hard reboot instance {name}? Like pressing reset: what the guest has not written to "
        "disk is lost.",
        message="Hard rebooting instance {name}.",
        policy=_REBOOT,
        endpoint="",
    ),
    _action(
        "pause",
        frozenset({I.ACTIVE}),
        I.PAUSING,
        I.PAUSED,
        "Pause",
        icon="pause-fill",
        message="Pausing instance {name}.",
        doc="Freeze the guest's vCPUs (it stays in memory).",
    ),
    _action(
        "unpause",
        frozenset({I.PAUSED}),
        I.UNPAUSING,
        I.ACTIVE,
        "Unpause",
        icon="play",
        message="Unpausing instance {name}.",
        doc="Thaw a paused guest.",
    ),
    _action(
        "suspend",
        frozenset({I.ACTIVE}),
        I.SUSPENDING,
        I.SUSPENDED,
        "Suspend",
        icon="moon",
        confirm="Suspend instance {name}? Its memory is saved to disk.",
        message="Suspending instance {name}.",
        doc="Save the guest's memory to disk and stop it.",
    ),
    _action(
        "resume",
        frozenset({I.SUSPENDED}),
        I.RESUMING,
        I.ACTIVE,
        "Resume",
        icon="sunrise",
        message="Resuming instance {name}.",
        doc="Restore a suspended guest.",
    ),
    Transition(
        SNAPSHOT,
        frozenset({I.ACTIVE, I.STOPPED}),
        I.IMAGE_SNAPSHOT,
        "",  # the instance stays as it was: running or stopped
        "Create snapshot",
        icon="camera",
        message="Creating a snapshot of instance {name}.",
        host_task=tasknames.AGENT_SNAPSHOT_INSTANCE,
        endpoint="",  # POST instances/{id}/snapshot/ takes the image's name (compute.api.instances)
    ),
    Transition(
        REBUILD,
        frozenset({I.ACTIVE, I.STOPPED, I.ERROR}),
        I.REBUILDING,
        I.ACTIVE,
        "Rebuild",
        icon="arrow-repeat",
        style="warning",
        message="Rebuilding instance {name}.",
        host_task=tasknames.AGENT_REBUILD_INSTANCE,
        endpoint="",  # POST instances/{id}/rebuild/ takes the image (compute.api.instances)
    ),
    _action(
        "delete",
        _ALL_LIVE,
        I.DELETING,
        I.DELETED,
        "Delete",
        icon="trash",
        style="danger",
        confirm="Delete instance {name}? Its disks are destroyed: this cannot be undone.",
        message="Deleting instance {name}.",
        while_busy=True,
        endpoint="",  # DELETE on the instance itself
    ),
)


def _snapshot_kwargs(instance: Instance, operation_id, params: dict) -> dict | str:
    """What the compute host's snapshot task gets (the signed upload URL of the queued image, and
    the instance's base image for a simulated host: see ``workers.agent.tasks.snapshot_instance``),
    or the reason there is nothing to do (the image was deleted meanwhile)."""
    image = Image.objects.filter(pk=params.get("image_id"), status=Image.QUEUED).first()
    if image is None:
        return "the snapshot's image is no longer queued (deleted meanwhile?)"
    base = instance.image if instance.image_id and not instance.boots_from_volume else None
    return {
        "operation_id": str(operation_id),
        "domain": instance.domain_name,
        "instance_id": str(instance.pk),
        "upload_url": image_uploads.upload_url(image.pk, instance.host.name),
        "base_image": images.image_boot_spec(base, instance.project_id)
        if base is not None and base.status == Image.ACTIVE
        else None,
    }


def _snapshot_settled(operation_id, result: dict) -> dict:
    """The host answered a snapshot: the image ends active (the host's checksum is the portal's) or
    killed with the reason. The answer as the instance's settle should take it: a success whose image
    did not end active is a failure, with why."""
    image_id = operation_params(operation_id).get("image_id")
    if not result.get("ok"):
        image_uploads.finish_upload(image_id, ok=False, error=result.get("error") or "the snapshot failed")
        return result
    extra = (
        {"zenith_snapshot_source": str(result.get("source", ""))[:255]} if result.get("simulated") else None
    )
    image_uploads.finish_upload(image_id, ok=True, checksum=result.get("checksum") or "", properties=extra)
    image = Image.objects.filter(pk=image_id).first()
    if image is not None and image.status == Image.ACTIVE:
        return result
    status = image.status if image is not None else "gone"
    return {**result, "ok": False, "error": f"the snapshot was sent but its image is {status}"}


def _snapshot_timed_out(operation_id, message: str) -> None:
    image_uploads.finish_upload(operation_params(operation_id).get("image_id"), ok=False, error=message)


class InstanceLifecycle(lifecycle.Lifecycle):
    """Instances: vm_state / task_state, a lock that stops non-admins, a host for every action but
    delete (which is local when the host is down), power state reported by the host."""

    kind = "instance"
    model = Instance
    state_field = "vm_state"
    busy_field = "task_state"
    deleted = I.DELETED
    deleting = I.DELETING
    policy_prefix = "compute:instance"

    def earlier_hosts(self, resource_id) -> list[str]:
        """The hosts a spawn of the instance was tried on (a late answer from one, e.g. a host that
        went down and came back, is settled: its domain is deleted)."""
        return list(
            Instance.objects.filter(pk=resource_id).values_list("attempted_hosts", flat=True).first() or []
        )

    def describe(self, obj) -> str:
        return f"{obj.vm_state} (status {obj.status})"

    def allowed(self, obj) -> list[str]:
        """As the state allows, but an instance that never got a host (a failed schedule) can only
        be deleted: there is no guest to stop or reboot (``refuse_after_state`` refuses the rest)."""
        names = super().allowed(obj)
        return names if obj.host_id is not None else [name for name in names if name == "delete"]

    def refuse(self, ctx: Context, obj, transition: Transition) -> None:
        if obj.locked and not ctx.is_admin:
            raise Conflict(f"Instance {obj.name} is locked: unlock it first.", code="locked")

    def refuse_after_state(self, ctx: Context, obj, transition: Transition) -> None:
        if transition.name != "delete" and obj.host_id is None:
            raise Conflict(f"Instance {obj.name} is on no host.", code="invalid_state")
        if transition.name == SNAPSHOT and obj.boots_from_volume:
            raise Conflict(
                f"Instance {obj.name} boots from a volume: upload that volume to an image instead.",
                code="boots_from_volume",
            )
        if transition.name == REBUILD and obj.boots_from_volume:
            raise Conflict(
                f"Instance {obj.name} boots from a volume: its root disk is that volume, not a copy of "
                "an image.",
                code="boots_from_volume",
            )

    def host_work(self, operation_id, resource_id, transition: Transition, params: dict) -> HostWork | None:
        instance = Instance.objects.select_related("host").filter(pk=resource_id).first()
        if instance is None:
            ledger.fail(operation_id, "the instance no longer exists")
            return None
        if transition.name == "delete":
            if instance.host is None or not instance.host.is_up():
                # Never placed, or its host is down: delete here (Nova's local delete). A domain left on
                # a down host shows up in the drift view once the host is back.
                note = "" if instance.host is None else f" (host {instance.host.name} is down: local delete)"
                conductor.finish_delete(operation_id, resource_id, {"ok": True, "message": "deleted" + note})
                return None
        elif instance.host is None:
            self.settle(
                operation_id,
                resource_id,
                transition.name,
                {"ok": False, "error": "the instance is on no host"},
            )
            return None
        if transition.name == SNAPSHOT:
            kwargs = _snapshot_kwargs(instance, operation_id, params)
            if isinstance(kwargs, str):
                self.settle(operation_id, resource_id, SNAPSHOT, {"ok": False, "error": kwargs})
                return None
            return HostWork(host=instance.host.name, task=transition.host_task, kwargs=kwargs)
        if transition.name == REBUILD:
            image = Image.objects.filter(pk=params.get("image_id"), status=Image.ACTIVE).first()
            if image is None:
                self.settle(
                    operation_id,
                    resource_id,
                    REBUILD,
                    {"ok": False, "error": "the image is no longer active"},
                )
                return None
            kwargs = {"operation_id": str(operation_id), **conductor.rebuild_work(instance, image)}
            return HostWork(host=instance.host.name, task=transition.host_task, kwargs=kwargs)
        return HostWork(
            host=instance.host.name,
            task=transition.host_task,
            kwargs={
                "action": transition.name,
                "domain": instance.domain_name,
                "instance_id": str(instance.pk),
            },
            role=transition.role,
        )

    def succeeded(self, obj, transition: Transition, result: dict) -> list[str]:
        obj.power_state = result.get("power_state") or obj.power_state
        if transition.name == REBUILD:  # the instance now runs the image it was rebuilt from
            obj.image_id = operation_params(obj.operation_id).get("image_id") or obj.image_id
            return ["power_state", "image"]
        return ["power_state"]

    def failed(self, obj, transition: Transition, result: dict, error: str) -> list[str]:
        power = result.get("power_state") or ""
        if transition.name == REBUILD and power in ("", "nostate"):
            obj.power_state, obj.vm_state = "nostate", I.ERROR  # its old disk went: no guest is left
            return ["power_state"]
        if power:
            obj.power_state = power
            obj.vm_state = POWER_TO_VM_STATE.get(power, obj.vm_state)
        return ["power_state"]

    def settle(self, operation_id, resource_id, step: str, result: dict) -> None:
        """A snapshot's answer settles its image first: a success whose image did not end active
        (the checksums differ) is the instance's failure too, with why."""
        if (
            step == SNAPSHOT
            and Operation.objects.filter(pk=operation_id, state__in=Operation.UNFINISHED).exists()
        ):
            result = _snapshot_settled(operation_id, result)
        super().settle(operation_id, resource_id, step, result)

    def timed_out(self, operation: Operation) -> None:
        if operation.kind == f"instance.{SNAPSHOT}":
            _snapshot_timed_out(operation.pk, operation.message or "the snapshot did not finish in time")
        super().timed_out(operation)

    def settle_delete(self, operation_id, resource_id, result: dict) -> None:
        conductor.finish_delete(operation_id, resource_id, result)

    def settle_step(self, operation_id, resource_id, step: str, result: dict) -> None:
        if step != "create":
            super().settle_step(operation_id, resource_id, step, result)
            return
        outcome = conductor.spawn_finished(operation_id, resource_id, result)
        if outcome == "reschedule":
            conductor.schedule_and_spawn(operation_id, resource_id)
        elif outcome in ("gone", "stale") and result.get("ok") and result.get("host"):
            # Deleted while the host was spawning, or moved to another host meanwhile (its first host
            # was down): the domain this host just made must not outlive the row, nor run twice.
            dispatch.send_to_host(
                tasknames.AGENT_INSTANCE_ACTION,
                result["host"],
                kwargs={
                    "action": "delete",
                    "domain": f"zenith-{resource_id}",
                    "instance_id": str(resource_id),
                },
            )

    def timed_out_state(self, obj, operation: Operation) -> str | None:
        return I.ERROR if operation.kind == "instance.create" and obj.vm_state == I.BUILDING else None


INSTANCE = lifecycle.register(InstanceLifecycle(TRANSITIONS))
ACTIONS = INSTANCE.transitions


def allowed_actions(instance: Instance) -> list[str]:
    """The transitions the instance's state allows now (for buttons and the API's 409s)."""
    return INSTANCE.allowed(instance)


__all__ = ["ACTIONS", "INSTANCE", "TRANSITIONS", "InstanceLifecycle", "allowed_actions"]
