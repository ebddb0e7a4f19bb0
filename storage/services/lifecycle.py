"""The volume's and the snapshot's state machines, declared once (Cinder's statuses): which
transition may start from which ``status``, the busy state while it runs, the status it ends in, the
host task that carries it out and on which queue (``storage.<host>`` for the pool's work,
``compute.<host>`` for attach, detach and the guest's resize). ``workers.lifecycle`` turns it into
the services' begin, the conductor's steps, the API's action endpoints and the dashboard's buttons.

What is sent is a ``workers.messages`` message's ``as_dict()``: ``{"request": VolumeRequest}`` to the
storage tasks, ``{"attachment": VolumeAttachment}`` to the compute host's; what comes back is read with
``from_dict``.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from identity import audit
from identity.context import Context
from identity.errors import Conflict
from identity.models import ResourceAction
from workers import dispatch, lifecycle, tasknames
from workers import services as ledger
from workers.lifecycle import HostWork, Transition, make_fault
from workers.lifecycle import operation_params as _operation_params
from workers.messages import (
    AttachmentResult,
    MessageError,
    VolumeAttachment,
    VolumeConnection,
    VolumeRequest,
    VolumeResult,
    VolumeSource,
)
from workers.models import Host, Operation
from workers.tasks import host_callbacks

from ..models import GIB, Attachment, Snapshot, StoragePool, Volume
from . import hooks

log = logging.getLogger(__name__)

V = Volume
S = Snapshot

STORAGE = "storage"
COMPUTE = "compute"
RESIZE_STEP = "extend_resize"  # the compute host's half of an in-use extend (no declared transition)

VOLUME_TRANSITIONS = (
    Transition(
        "create",
        frozenset(),  # never started on an existing row: create_volume records it with the row
        "",
        V.AVAILABLE,
        "Create",
        host_task=tasknames.AGENT_CREATE_VOLUME,
        role=STORAGE,
        endpoint="",
    ),
    Transition(
        "extend",
        frozenset({V.AVAILABLE}),
        V.EXTENDING,
        V.AVAILABLE,
        "Extend",
        icon="arrows-angle-expand",
        message="Extending volume {name}.",
        host_task=tasknames.AGENT_EXTEND_VOLUME,
        role=STORAGE,
        endpoint="",  # POST volumes/{id}/extend/ takes the new size and picks this or extend_attached
    ),
    Transition(
        "extend_attached",
        frozenset({V.IN_USE}),
        V.EXTENDING,
        V.IN_USE,
        "Extend",
        icon="arrows-angle-expand",
        message="Extending volume {name}: its guest sees the new size.",
        policy="storage:volume:extend",
        host_task=tasknames.AGENT_EXTEND_VOLUME,
        role=STORAGE,
        endpoint="",
    ),
    Transition(
        "attach",
        frozenset({V.AVAILABLE}),
        V.ATTACHING,
        V.IN_USE,
        "Attach",
        icon="link",
        message="Attaching volume {name}.",
        host_task=tasknames.AGENT_ATTACH_VOLUME,
        role=COMPUTE,
        endpoint="",  # POST instances/{id}/volume-attachments/
    ),
    Transition(
        "detach",
        frozenset({V.IN_USE}),
        V.DETACHING,
        V.AVAILABLE,
        "Detach",
        icon="x-circle",
        style="warning",
        confirm="Detach volume {name}? Unmount it in the guest first.",
        message="Detaching volume {name}.",
        host_task=tasknames.AGENT_DETACH_VOLUME,
        role=COMPUTE,
        endpoint="",  # DELETE instances/{id}/volume-attachments/{volume_id}/
    ),
    Transition(
        "upload",
        frozenset({V.AVAILABLE}),
        V.UPLOADING,
        V.AVAILABLE,
        "Upload to image",
        icon="cloud-upload",
        message="Uploading volume {name} to a new image.",
        host_task=tasknames.AGENT_UPLOAD_VOLUME,
        role=STORAGE,
        endpoint="",  # POST volumes/{id}/upload-to-image/ takes the image's name and format
    ),
    Transition(
        "delete",
        frozenset({V.AVAILABLE, V.ERROR, V.ERROR_DELETING, V.ERROR_EXTENDING}),
        V.DELETING,
        V.DELETED,
        "Delete",
        icon="trash",
        style="danger",
        confirm="Delete volume {name}? Its data is destroyed: this cannot be undone.",
        message="Deleting volume {name}.",
        host_task=tasknames.AGENT_DELETE_VOLUME,
        role=STORAGE,
        endpoint="",  # DELETE on the volume itself
    ),
)

SNAPSHOT_TRANSITIONS = (
    Transition(
        "create",
        frozenset(),
        "",
        S.AVAILABLE,
        "Create",
        host_task=tasknames.AGENT_SNAPSHOT_VOLUME,
        role=STORAGE,
        endpoint="",
    ),
    Transition(
        "delete",
        frozenset({S.AVAILABLE, S.ERROR}),
        S.DELETING,
        S.DELETED,
        "Delete",
        icon="trash",
        style="danger",
        confirm="Delete snapshot {name}?",
        message="Deleting snapshot {name}.",
        host_task=tasknames.AGENT_DELETE_VOLUME,
        role=STORAGE,
        endpoint="",
    ),
)


def _volume_result(result: dict) -> VolumeResult:
    try:
        return VolumeResult.from_dict(result)
    except MessageError as exc:  # the agent answered another shape: say so, never read defaults
        return VolumeResult(ok=False, error=f"the storage host answered an unexpected message: {exc}")


def release_pool(pool_id, size_gb: int) -> None:
    """Give back what a placement claimed of a pool (never below zero)."""
    if pool_id is not None and size_gb:
        StoragePool.objects.filter(pk=pool_id).update(allocated_gb=Greatest(F("allocated_gb") - size_gb, 0))


def live_attachment(volume_id) -> Attachment | None:
    return Attachment.objects.live().select_related("host").filter(volume_id=volume_id).first()


def _down(host: Host | None) -> str:
    if host is None:
        return "it is on no host"
    return "" if host.is_up() else f"host {host.name} is down"


class VolumeLifecycle(lifecycle.Lifecycle):
    """Volumes: a pool on a storage host holds them; attach, detach and the guest's resize are the
    instance's compute host's work, with the connection the storage host handed over."""

    kind = "volume"
    model = Volume
    state_field = "status"
    busy_field = "busy"
    deleted = V.DELETED
    deleting = V.DELETING
    delete_failed = V.ERROR_DELETING
    policy_prefix = "storage:volume"

    def refuse_after_state(self, ctx: Context, obj, transition: Transition) -> None:
        if transition.name == "delete":
            if Attachment.objects.live().filter(volume_id=obj.pk).exists():
                raise Conflict(
                    f"Volume {obj.name} is attached to an instance: detach it first.", code="in_use"
                )
            snapshots = Snapshot.objects.filter(volume_id=obj.pk).exclude(status=S.DELETED).count()
            if snapshots:
                raise Conflict(
                    f"Volume {obj.name} has {snapshots} snapshot(s): delete them first.", code="has_snapshots"
                )

    # --- where each transition goes ------------------------------------------------------------

    def host_work(self, operation_id, resource_id, transition: Transition, params: dict) -> HostWork | None:
        volume = Volume.objects.select_related("pool__host").filter(pk=resource_id).first()
        if volume is None:
            ledger.fail(operation_id, "the volume no longer exists")
            return None
        name = transition.name
        if transition.role == COMPUTE:
            attachment = live_attachment(volume.pk)
            problem = "it has no attachment" if attachment is None else _down(attachment.host)
            if problem or not volume.connection:
                problem = problem or "the storage host gave it no connection"
                self.settle(
                    operation_id, resource_id, name, {"ok": False, "error": f"cannot {name}: {problem}"}
                )
                return None
            message = VolumeAttachment(
                domain=f"zenith-{attachment.instance_id}",
                connection=VolumeConnection.from_dict(volume.connection),
                target_dev=attachment.target_dev,
                readonly=attachment.mode == Attachment.RO,
            )
            return HostWork(
                host=attachment.host.name,
                task=transition.host_task,
                kwargs={"attachment": message.as_dict()},
                role=COMPUTE,
            )
        pool = volume.pool
        problem = "it is in no pool" if pool is None else _down(pool.host)
        if problem:
            error = f"the volume cannot be reached: {problem}"
            if name == "delete" and pool is None:  # never placed: nothing exists on any host
                self.settle_delete(
                    operation_id, resource_id, {"ok": True, "message": "deleted (never placed)"}
                )
            else:
                self.settle(operation_id, resource_id, name, {"ok": False, "error": error})
            return None
        size = volume.size
        source = VolumeSource()
        if name == "create":
            source = self._source(volume)
        elif name in ("extend", "extend_attached"):
            size = int(params.get("new_size") or volume.size)
        upload_url = ""
        if name == "upload":
            upload_url = hooks.image_upload().url(params.get("image_id"), pool.host.name)
        request = VolumeRequest(
            backend=pool.name,
            name=volume.backend_name,
            size_gb=size,
            source=source,
            operation_id=str(operation_id),
            upload_url=upload_url,
        )
        return HostWork(
            host=pool.host.name,
            task=transition.host_task,
            kwargs={"request": request.as_dict()},
            role=STORAGE,
        )

    def _source(self, volume: Volume) -> VolumeSource:
        if volume.source == V.IMAGE:
            return VolumeSource(
                kind="image", image=hooks.image_spec(volume.source_image_id, volume.project_id)
            )
        if volume.source == V.SNAPSHOT:
            return VolumeSource(kind="snapshot", name=f"snapshot-{volume.source_snapshot_id}")
        if volume.source == V.VOLUME:
            return VolumeSource(kind="volume", name=f"volume-{volume.source_volume_id}")
        return VolumeSource()

    # --- the host answered ---------------------------------------------------------------------

    def settle(self, operation_id, resource_id, step: str, result: dict) -> None:
        """As every lifecycle settles, except an in-use extend whose storage half succeeded: the
        compute host then resizes the guest's disk before the volume is in-use again."""
        if step == "extend_attached" and result.get("ok"):
            if self._send_resize(operation_id, resource_id, result):
                return
            if result.get("in_use"):
                # The storage host could not grow a volume its guest holds open (a qcow2 file QEMU
                # has locked): only the guest's compute host can, and it cannot be reached now.
                result = {
                    **result,
                    "ok": False,
                    "error": "The volume is held open by its guest, whose compute host cannot be "
                    "reached to resize it: the volume was not extended.",
                }
        super().settle(operation_id, resource_id, step, result)

    def _send_resize(self, operation_id, resource_id, result: dict) -> bool:
        new_size = int(_operation_params(operation_id).get("new_size") or 0)
        with transaction.atomic():
            volume = Volume.objects.select_for_update().filter(pk=resource_id, busy=V.EXTENDING).first()
            attachment = live_attachment(resource_id)
            if volume is None or attachment is None or not volume.connection or _down(attachment.host):
                return False  # settled as a plain extend: no guest to tell
            volume.size = new_size or volume.size
            volume.save(update_fields=["size", "updated"])
            ledger.report_progress(
                operation_id, 60, f"extended on the storage host; resizing on {attachment.host.name}"
            )
        message = VolumeAttachment(
            domain=f"zenith-{attachment.instance_id}",
            connection=VolumeConnection.from_dict(volume.connection),
            target_dev=attachment.target_dev,
            size_bytes=volume.size * GIB,
        )
        dispatch.send_to_host(
            tasknames.AGENT_RESIZE_VOLUME,
            attachment.host.name,
            kwargs={"attachment": message.as_dict()},
            queue_kind=COMPUTE,
            **host_callbacks(
                operation_id,
                host=attachment.host.name,
                resource_type="volume",
                resource_id=str(resource_id),
                step=RESIZE_STEP,
            ),
        )
        return True

    def settle_step(self, operation_id, resource_id, step: str, result: dict) -> None:
        if step != RESIZE_STEP:
            super().settle_step(operation_id, resource_id, step, result)
            return
        with transaction.atomic():
            volume = Volume.objects.select_for_update().filter(pk=resource_id).first()
            if not Operation.objects.filter(pk=operation_id, state__in=Operation.UNFINISHED).exists():
                return
            if volume is None or volume.busy != V.EXTENDING:
                ledger.succeed(operation_id, message="volume changed meanwhile")
                audit.finish(operation_id, ResourceAction.SUCCESS, "volume changed meanwhile")
                return
            volume.busy = ""
            volume.status = V.IN_USE
            if result.get("ok"):
                volume.fault = None
                message = f"extended to {volume.size} GiB; the guest sees it"
                volume.save(update_fields=["busy", "status", "fault", "updated"])
                ledger.succeed(operation_id, result=result, message=message)
                audit.finish(operation_id, ResourceAction.SUCCESS, message)
                return
            error = (
                f"the volume grew to {volume.size} GiB but the guest was not told: "
                f"{result.get('error') or 'the compute host could not resize its disk'}"
            )
            volume.fault = make_fault("resize_failed", error)
            volume.save(update_fields=["busy", "status", "fault", "updated"])
            ledger.fail(operation_id, error, result=result)
            audit.finish(operation_id, ResourceAction.ERROR, error)

    def succeeded(self, obj, transition: Transition, result: dict) -> list[str]:
        name = transition.name
        now = timezone.now()
        if name == "create":
            answer = _volume_result(result)
            if answer.connection is not None:
                obj.connection = answer.connection.as_dict()
            return ["connection"]
        if name in ("extend", "extend_attached"):
            new_size = int(_operation_params(obj.operation_id).get("new_size") or obj.size)
            obj.size = max(obj.size, new_size)
            return ["size"]
        if name == "upload":
            answer = _volume_result(result)
            image_id = _operation_params(obj.operation_id).get("image_id")
            hooks.image_upload().finish(image_id, ok=answer.ok, checksum=answer.checksum, error=answer.error)
        if name == "attach":
            device = AttachmentResult.from_dict(result).target_dev if set(result) <= _ATTACH_KEYS else ""
            update = {"attached_at": now}
            if device:
                update["device"] = f"/dev/{device}"
            Attachment.objects.live().filter(volume_id=obj.pk).update(**update)
        elif name == "detach":
            Attachment.objects.live().filter(volume_id=obj.pk).update(detached_at=now)
        return []

    def failed(self, obj, transition: Transition, result: dict, error: str) -> list[str]:
        name = transition.name
        if name == "create":
            obj.status = V.ERROR
        elif name in ("extend", "extend_attached"):
            obj.status = V.ERROR_EXTENDING
            new_size = int(_operation_params(obj.operation_id).get("new_size") or obj.size)
            release_pool(obj.pool_id, new_size - obj.size)
        elif name == "attach":
            Attachment.objects.live().filter(volume_id=obj.pk).update(detached_at=timezone.now())
        elif name == "upload":  # the volume is as it was; the image goes, with the host's reason
            image_id = _operation_params(obj.operation_id).get("image_id")
            hooks.image_upload().finish(image_id, ok=False, error=error)
        return []

    def deleted_fields(self, obj, result: dict) -> list[str]:
        release_pool(obj.pool_id, obj.size)
        obj.connection = None
        return ["connection"]

    def timed_out_state(self, obj, operation: Operation) -> str | None:
        """Nothing stays creating, attaching, detaching or extending past its deadline."""
        busy = obj.busy
        if obj.status == V.CREATING:
            return V.ERROR
        if busy == V.ATTACHING:
            Attachment.objects.live().filter(volume_id=obj.pk, attached_at__isnull=True).update(
                detached_at=timezone.now()
            )
            return V.AVAILABLE
        if busy == V.DETACHING:
            return V.IN_USE
        if busy == V.EXTENDING:
            return V.ERROR_EXTENDING
        if busy == V.DELETING:
            return V.ERROR_DELETING
        if busy == V.UPLOADING:
            hooks.image_upload().finish(
                _operation_params(operation.pk).get("image_id"), ok=False, error="the upload timed out"
            )
            return V.AVAILABLE
        return None


_ATTACH_KEYS = {"ok", "error", "message", "target_dev", "live"}


class SnapshotLifecycle(lifecycle.Lifecycle):
    """Snapshots: taken and deleted by the storage host that holds their volume's pool."""

    kind = "snapshot"
    model = Snapshot
    state_field = "status"
    busy_field = "busy"
    deleted = S.DELETED
    deleting = S.DELETING
    delete_failed = S.ERROR
    policy_prefix = "storage:snapshot"

    def host_work(self, operation_id, resource_id, transition: Transition, params: dict) -> HostWork | None:
        snapshot = Snapshot.objects.select_related("volume__pool__host").filter(pk=resource_id).first()
        if snapshot is None:
            ledger.fail(operation_id, "the snapshot no longer exists")
            return None
        pool = snapshot.volume.pool
        problem = "its volume is in no pool" if pool is None else _down(pool.host)
        if problem:
            error = f"the snapshot cannot be reached: {problem}"
            if transition.name == "delete":
                self.settle_delete(operation_id, resource_id, {"ok": False, "error": error})
            else:
                self.settle(operation_id, resource_id, transition.name, {"ok": False, "error": error})
            return None
        request = VolumeRequest(
            backend=pool.name,
            name=snapshot.backend_name,
            size_gb=snapshot.size,
            source=VolumeSource(kind="volume", name=snapshot.volume.backend_name),
            operation_id=str(operation_id),
        )
        return HostWork(
            host=pool.host.name,
            task=transition.host_task,
            kwargs={"request": request.as_dict()},
            role=STORAGE,
        )

    def failed(self, obj, transition: Transition, result: dict, error: str) -> list[str]:
        obj.status = S.ERROR
        return []

    def timed_out_state(self, obj, operation: Operation) -> str | None:
        return S.ERROR if obj.status == S.CREATING or obj.busy == S.DELETING else None


VOLUME = lifecycle.register(VolumeLifecycle(VOLUME_TRANSITIONS))
SNAPSHOT = lifecycle.register(SnapshotLifecycle(SNAPSHOT_TRANSITIONS))


def allowed_actions(volume: Volume) -> list[str]:
    """The transitions the volume's state allows now (buttons, 409s)."""
    return VOLUME.allowed(volume)


__all__ = [
    "RESIZE_STEP",
    "SNAPSHOT",
    "SNAPSHOT_TRANSITIONS",
    "VOLUME",
    "VOLUME_TRANSITIONS",
    "SnapshotLifecycle",
    "VolumeLifecycle",
    "allowed_actions",
    "live_attachment",
    "release_pool",
]
