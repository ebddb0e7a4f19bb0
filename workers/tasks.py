"""Conductor-side tasks (queue ``conductor``): they read and write the database."""

from __future__ import annotations

import logging

from celery import shared_task

from . import dispatch, queues, services

log = logging.getLogger(__name__)


@shared_task(name="workers.tasks.sweep_operations", ignore_result=True)
def sweep_operations() -> dict:
    """Periodic (beat): re-send operations never picked up; fail those past their deadline."""
    return services.sweep().as_dict()


@shared_task(name="workers.tasks.ping_host", ignore_result=True)
def ping_host(operation_id: str, host: str) -> None:
    """Conductor step of host.ping: forward to the host's compute queue with a callback to us."""
    op = services.start(operation_id)
    if op is None:
        return
    services.report_progress(operation_id, 10, f"sent to {queues.compute_queue(host)}")
    dispatch.send_to_host(
        "workers.agent.tasks.ping",
        host,
        kwargs={"nonce": operation_id},
        link=host_task_done.s(operation_id=operation_id).set(queue=queues.CONDUCTOR),
        link_error=host_task_crashed.s(operation_id=operation_id).set(queue=queues.CONDUCTOR),
    )


@shared_task(name="workers.tasks.host_task_done", ignore_result=True)
def host_task_done(result: dict, *, operation_id: str) -> None:
    """Callback of a host task: record its answer (agents answer ``{"ok": bool, ...}``)."""
    if result.get("ok"):
        services.succeed(operation_id, result=result, message=result.get("message", ""))
    else:
        services.fail(operation_id, result.get("error") or "the host reported a failure", result=result)


@shared_task(name="workers.tasks.host_task_crashed", ignore_result=True)
def host_task_crashed(task_id: str, *, operation_id: str) -> None:
    """Errback of a host task that raised (a bug on the host side): fail the operation with the reason."""
    services.fail(operation_id, f"The host task crashed: {failure_reason(task_id)}")


def failure_reason(task_id: str) -> str:
    """What a failed task raised, from the result backend (for errbacks, which get only its id)."""
    from celery.result import AsyncResult

    try:
        return repr(AsyncResult(task_id).result)
    except Exception:  # result backend unavailable: still fail with what we know
        return "unknown error"


@shared_task(name="workers.tasks.operation_progress", ignore_result=True)
def operation_progress(operation_id: str, percent: int, message: str = "") -> None:
    """A host reports how far its part of an operation got (image bytes fetched, ...)."""
    services.report_progress(operation_id, percent, message)
