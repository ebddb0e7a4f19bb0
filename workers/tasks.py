"""Conductor-side tasks (queue ``conductor``): they read and write the database.

The generic steps of every async resource's transitions live here: ``run_transition`` sends the
host work (``workers.lifecycle``), ``transition_done`` settles the host's answer, and
``host_task_failed`` is the one errback of every host task (a task that raised instead of
answering): it settles the same way, with the reason.

Every message a host sends here carries ``auth``, its host's signature (``workers.hostauth``, added by
``workers.agent.signing`` to whatever the agent publishes); each task checks it first
(``workers.hostkeys``) and drops, with a warning, what no enrolled host signed.
"""

from __future__ import annotations

import logging

from celery import shared_task

from . import dispatch, hostkeys, lifecycle, queues, services, tasknames
from .hostkeys import HostAuthError

log = logging.getLogger(__name__)


@shared_task(name=tasknames.SWEEP_OPERATIONS, ignore_result=True)
def sweep_operations() -> dict:
    """Periodic (beat): re-send operations never picked up; fail those past their deadline."""
    return services.sweep().as_dict()


def host_callbacks(operation_id: str, *, host: str, **step) -> dict:
    """``link``/``link_error`` of a host task sent to ``host``: its answer comes back to the
    conductor's queue, to ``transition_done`` (or, for a task that raised, ``host_task_failed``) with
    ``step``'s keys: ``resource_type``, ``resource_id`` and ``step`` (none for a bare host task such
    as a ping). Records ``host`` on the operation: only that host's signed answer settles it."""
    services.sent_to_host(operation_id, host)
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
        **host_callbacks(
            operation_id,
            host=work.host,
            resource_type=resource_type,
            resource_id=resource_id,
            step=transition,
        ),
    )


@shared_task(name=tasknames.TRANSITION_DONE, ignore_result=True)
def transition_done(result: dict, *, auth: dict | None = None, **step) -> None:
    """A host answered (``{"ok": bool, ...}``), signed by the host its operation was sent to: the
    resource's lifecycle settles it; a bare host task (no resource) just finishes its operation.
    ``step``: ``operation_id`` and, for a resource, ``resource_type``, ``resource_id``, ``step``."""
    try:
        hostkeys.authenticate_answer(tasknames.TRANSITION_DONE, (result,), step, auth)
    except HostAuthError as exc:
        hostkeys.refused(tasknames.TRANSITION_DONE, exc, operation=step.get("operation_id"))
        return
    settle(result, **step)


def settle(
    result: dict, *, operation_id: str, resource_type: str = "", resource_id: str = "", step: str = ""
) -> None:
    """Settle an operation with a host's (verified) answer."""
    if not isinstance(result, dict):
        result = {"ok": False, "error": f"unexpected answer {result!r}"[:500]}
    if resource_type:
        lifecycle.of(resource_type).settle(operation_id, resource_id, step, result)
    elif result.get("ok"):
        services.succeed(operation_id, result=result, message=result.get("message", ""))
    else:
        services.fail(operation_id, result.get("error") or "the host reported a failure", result=result)


@shared_task(name=tasknames.HOST_TASK_FAILED, ignore_result=True)
def host_task_failed(task_id: str, *, auth: dict | None = None, **step) -> None:
    """Errback of a host task that raised (a bug on the host side), published by that host's agent
    and signed by it: settle with the reason."""
    try:
        hostkeys.authenticate_answer(tasknames.HOST_TASK_FAILED, (task_id,), step, auth)
    except HostAuthError as exc:
        hostkeys.refused(tasknames.HOST_TASK_FAILED, exc, operation=step.get("operation_id"))
        return
    what = f"The {step['step']} task" if step.get("step") else "The host task"
    settle({"ok": False, "error": f"{what} crashed: {failure_reason(task_id)}"}, **step)


@shared_task(name=tasknames.HOST_HEARTBEAT, ignore_result=True)
def host_heartbeat(host: str, info: dict, *, auth: dict | None = None) -> None:
    """An agent's heartbeat (sent by name from ``workers.agent.heartbeat``), signed by that enrolled
    host: register or refresh the host, and hand each role's section to the app of that role."""
    try:
        hostkeys.authenticate_heartbeat(host, info, auth)
    except HostAuthError as exc:
        hostkeys.refused(tasknames.HOST_HEARTBEAT, exc, host=host)
        return
    services.record_heartbeat(host, info)


@shared_task(name=tasknames.HOST_HEARTBEATS, ignore_result=True)
def host_heartbeats(batch: list[dict], *, auth: dict | None = None) -> dict:
    """Many hosts' heartbeats in one message (a multi-host agent, ``manage.py agent --simulate``):
    ``[{"host", "info", "auth"}, ...]``, each entry signed by its own enrolled host and verified as
    ``host_heartbeat`` would (``hostkeys.verified_heartbeats``: every key in one query); an entry
    with a bad or missing signature is logged and left out (``refused``), the others recorded in a few
    statements. The message's own ``auth`` (none from an agent) proves nothing about its entries."""
    entries, refused = hostkeys.verified_heartbeats(batch)
    return {**services.record_heartbeats(entries).as_dict(), "refused": refused}


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
        **host_callbacks(operation_id, host=host),
    )


def failure_reason(task_id: str) -> str:
    """What a failed task raised, from the result backend (for errbacks, which get only its id)."""
    from celery.result import AsyncResult

    try:
        return repr(AsyncResult(task_id).result)
    except Exception:  # result backend unavailable: still fail with what we know
        return "unknown error"


@shared_task(name=tasknames.OPERATION_PROGRESS, ignore_result=True)
def operation_progress(
    operation_id: str, percent: int, message: str = "", *, auth: dict | None = None
) -> None:
    """A host reports how far its part of an operation got (image bytes fetched, ...): only the host
    the operation was sent to moves it."""
    kwargs = {"operation_id": operation_id, "percent": percent, "message": message}
    try:
        cred = hostkeys.authenticate(tasknames.OPERATION_PROGRESS, (), kwargs, auth)
    except HostAuthError as exc:
        hostkeys.refused(tasknames.OPERATION_PROGRESS, exc, operation=operation_id)
        return
    services.report_progress(operation_id, percent, message, host=cred.host)
