"""Conductor-side compute tasks (queue ``conductor``): they read and write the database and hand host
work to ``compute.<host>`` with a callback back here (DESIGN.md section 3)."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings
from django.dispatch import receiver

from workers import dispatch, queues
from workers import services as ledger
from workers.models import Operation
from workers.signals import operation_failed
from workers.tasks import failure_reason

from . import services

log = logging.getLogger(__name__)
DEFER_SECONDS = 2  # a build that found its hosts silent looks again this much later
_STARTED = time.monotonic()  # when this conductor process started


@shared_task(name="compute.tasks.host_heartbeat", ignore_result=True)
def host_heartbeat(host: str, info: dict) -> None:
    """An agent's heartbeat (sent by name from ``workers.agent.heartbeat``): register or refresh the host."""
    services.record_heartbeat(host, info)


def _callbacks(done, crashed, **kwargs):
    return {
        "link": done.s(**kwargs).set(queue=queues.CONDUCTOR),
        "link_error": crashed.s(**kwargs).set(queue=queues.CONDUCTOR),
    }


@shared_task(name="compute.tasks.build_instance", ignore_result=True)
def build_instance(operation_id: str, instance_id: str) -> None:
    """instance.create: schedule (claim a host), then hand the spawn to that host's agent."""
    if ledger.start(operation_id) is None:
        return
    _schedule_and_spawn(operation_id, instance_id)


def _schedule_and_spawn(operation_id: str, instance_id: str) -> None:
    work = services.schedule_instance(operation_id, instance_id)
    if work == services.DEFERRED:
        # Every host silent: heartbeats queued behind this message (a conductor or broker outage).
        build_instance.apply_async(
            kwargs={"operation_id": operation_id, "instance_id": instance_id},
            queue=queues.CONDUCTOR,
            countdown=DEFER_SECONDS,
        )
        return
    if work is None:
        return
    dispatch.send_to_host(
        "workers.agent.tasks.spawn_instance",
        work["host"],
        kwargs={"operation_id": operation_id, "instance": work["instance"], "image": work["image"]},
        **_callbacks(spawn_done, spawn_crashed, operation_id=operation_id, instance_id=instance_id),
    )


@shared_task(name="compute.tasks.spawn_done", ignore_result=True)
def spawn_done(result: dict, *, operation_id: str, instance_id: str) -> None:
    """The host answered a spawn: active, or reschedule elsewhere (bounded), or error."""
    outcome = services.spawn_finished(operation_id, instance_id, result)
    if outcome == "reschedule":
        _schedule_and_spawn(operation_id, instance_id)
    elif outcome in ("gone", "stale") and result.get("ok") and result.get("host"):
        # Deleted while the host was spawning, or moved to another host meanwhile (its first host was
        # down): the domain this host just made must not outlive the row, nor run twice.
        dispatch.send_to_host(
            "workers.agent.tasks.instance_action",
            result["host"],
            kwargs={"action": "delete", "domain": f"zenith-{instance_id}", "instance_id": instance_id},
        )


@shared_task(name="compute.tasks.reschedule_from_down_hosts", ignore_result=True)
def reschedule_from_down_hosts() -> int:
    """Periodic (beat): spawns waiting on a host that went down are scheduled again on another host."""
    if time.monotonic() - _STARTED < settings.ZENITH_HOST_DOWN_AFTER.total_seconds():
        # Just (re)started: the heartbeats queued while this conductor was away are still being read,
        # host by host; a host whose turn has not come yet is not down.
        return 0
    moved = services.release_from_down_hosts()
    for operation_id, instance_id in moved:
        _schedule_and_spawn(operation_id, instance_id)
    return len(moved)


@shared_task(name="compute.tasks.spawn_crashed", ignore_result=True)
def spawn_crashed(task_id: str, *, operation_id: str, instance_id: str) -> None:
    spawn_done(
        {"ok": False, "error": f"the spawn task crashed: {failure_reason(task_id)}"},
        operation_id=operation_id,
        instance_id=instance_id,
    )


@shared_task(name="compute.tasks.run_instance_action", ignore_result=True)
def run_instance_action(operation_id: str, instance_id: str, action: str) -> None:
    """instance.<action>: forward to the instance's host, with a callback to settle the state."""
    if ledger.start(operation_id) is None:
        return
    target = services.action_target(operation_id, instance_id, action)
    if target is None:
        return
    dispatch.send_to_host(
        "workers.agent.tasks.instance_action",
        target["host"],
        kwargs={"action": action, "domain": target["domain"], "instance_id": target["instance_id"]},
        **_callbacks(
            action_done, action_crashed, operation_id=operation_id, instance_id=instance_id, action=action
        ),
    )


@shared_task(name="compute.tasks.action_done", ignore_result=True)
def action_done(result: dict, *, operation_id: str, instance_id: str, action: str) -> None:
    services.action_finished(operation_id, instance_id, action, result)


@shared_task(name="compute.tasks.action_crashed", ignore_result=True)
def action_crashed(task_id: str, *, operation_id: str, instance_id: str, action: str) -> None:
    services.action_finished(
        operation_id,
        instance_id,
        action,
        {"ok": False, "error": f"the {action} task crashed: {failure_reason(task_id)}"},
    )


@shared_task(name="compute.tasks.power_sync", ignore_result=True)
def power_sync(host: str, domains: list[dict]) -> dict:
    """An agent's periodic list of its domains: follow power changes the guests made on their own."""
    return services.sync_power_states(host, domains)


@shared_task(name="compute.tasks.power_event", ignore_result=True)
def power_event(host: str, instance_id: str, power_state: str, event: str = "") -> None:
    """A libvirt lifecycle event from an agent (a guest stopped, paused, resumed, ...)."""
    if instance_id:
        services.apply_power_state(instance_id, power_state)


@receiver(operation_failed, sender=Operation, dispatch_uid="compute-instance-operation-failed")
def _on_operation_failed(sender, operation: Operation, **kwargs) -> None:
    services.operation_timed_out(operation)
