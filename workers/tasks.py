"""Conductor-side tasks (queue ``conductor``): they read and write the database.

The generic steps of every async resource's transitions live here: ``run_transition`` sends the
host work (``workers.lifecycle``), ``transition_done`` settles the host's answer, and
``host_task_failed`` is the one errback of every host task (a task that raised instead of
answering): it settles the same way, with the reason.
"""

from __future__ import annotations

import logging

from celery import shared_task

from . import dispatch, lifecycle, queues, services, tasknames

log = logging.getLogger(__name__)


@shared_task(name=tasknames.SWEEP_OPERATIONS, ignore_result=True)
def sweep_operations() -> dict:
    """Periodic (beat): re-send operations never picked up; fail those past their deadline."""
    return services.sweep().as_dict()


def host_callbacks(operation_id: str, **step) -> dict:
    """``link``/``link_error`` of a host task: its answer comes back to the conductor's queue, to
    ``transition_done`` (or, for a task that raised, ``host_task_failed``) with ``step``'s keys:
    ``resource_type``, ``resource_id`` and ``step`` (none for a bare host task such as a ping)."""
    return {
        "link": transition_done.s(operation_id=operation_id, **step).set(queue=queues.CONDUCTOR),
        "link_error": host_task_failed.s(operation_id=operation_id, **step).set(queue=queues.CONDUCTOR),
    }


@shared_task(name=tasknames.RUN_TRANSITION, ignore_result=True)
def run_transition(
    operation_id: str, resource_type: str, resource_id: str, transition: str, params: dict | None = None
) -> None:
    """<kind>.<transition>: forward to the resource's host, with a callback to settle the state."""
    if services.start(operation_id) is None:
        return
    machine = lifecycle.of(resource_type)
    work = machine.host_work(operation_id, resource_id, machine.transitions[transition], params or {})
    if work is None:
        return
    services.report_progress(operation_id, 10, f"sent to {work.host}")
    dispatch.send_to_host(
        work.task,
        work.host,
        kwargs=work.kwargs,
        queue_kind=work.role,
        **host_callbacks(operation_id, resource_type=resource_type, resource_id=resource_id, step=transition),
    )


@shared_task(name=tasknames.TRANSITION_DONE, ignore_result=True)
def transition_done(
    result: dict, *, operation_id: str, resource_type: str = "", resource_id: str = "", step: str = ""
) -> None:
    """A host answered (``{"ok": bool, ...}``): the resource's lifecycle settles it; a bare host task
    (no resource) just finishes its operation."""
    if resource_type:
        lifecycle.of(resource_type).settle(operation_id, resource_id, step, result)
    elif result.get("ok"):
        services.succeed(operation_id, result=result, message=result.get("message", ""))
    else:
        services.fail(operation_id, result.get("error") or "the host reported a failure", result=result)


@shared_task(name=tasknames.HOST_TASK_FAILED, ignore_result=True)
def host_task_failed(
    task_id: str, *, operation_id: str, resource_type: str = "", resource_id: str = "", step: str = ""
) -> None:
    """Errback of a host task that raised (a bug on the host side): settle with the reason."""
    what = f"The {step} task" if step else "The host task"
    transition_done(
        {"ok": False, "error": f"{what} crashed: {failure_reason(task_id)}"},
        operation_id=operation_id,
        resource_type=resource_type,
        resource_id=resource_id,
        step=step,
    )


@shared_task(name=tasknames.HOST_HEARTBEAT, ignore_result=True)
def host_heartbeat(host: str, info: dict) -> None:
    """An agent's heartbeat (sent by name from ``workers.agent.heartbeat``): register or refresh the
    host, and hand each role's section to the app of that role."""
    services.record_heartbeat(host, info)


@shared_task(name=tasknames.HOST_HEARTBEATS, ignore_result=True)
def host_heartbeats(batch: list[dict]) -> dict:
    """Many hosts' heartbeats in one message (a multi-host agent, ``manage.py agent --simulate``):
    ``[{"host", "info"}, ...]``, each recorded as ``host_heartbeat`` would, in a few statements."""
    return services.record_heartbeats(batch).as_dict()


@shared_task(name=tasknames.PING_HOST, ignore_result=True)
def ping_host(operation_id: str, host: str, role: str = "compute") -> None:
    """Conductor step of host.ping: forward to the host's queue of that role with a callback to us."""
    op = services.start(operation_id)
    if op is None:
        return
    services.report_progress(operation_id, 10, f"sent to {role}.{host}")
    dispatch.send_to_host(
        tasknames.AGENT_PING,
        host,
        kwargs={"nonce": operation_id},
        queue_kind=role,
        **host_callbacks(operation_id),
    )


def failure_reason(task_id: str) -> str:
    """What a failed task raised, from the result backend (for errbacks, which get only its id)."""
    from celery.result import AsyncResult

    try:
        return repr(AsyncResult(task_id).result)
    except Exception:  # result backend unavailable: still fail with what we know
        return "unknown error"


@shared_task(name=tasknames.OPERATION_PROGRESS, ignore_result=True)
def operation_progress(operation_id: str, percent: int, message: str = "") -> None:
    """A host reports how far its part of an operation got (image bytes fetched, ...)."""
    services.report_progress(operation_id, percent, message)
