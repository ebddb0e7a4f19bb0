"""Dispatch: write the Operation in the caller's transaction, send the message on commit."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from identity.context import Context

from . import queues
from .models import Operation

log = logging.getLogger(__name__)


def enqueue(
    ctx: Context,
    *,
    kind: str,
    task: str,
    kwargs: dict | None = None,
    queue: str = queues.CONDUCTOR,
    resource_type: str = "",
    resource_id=None,
    project=None,
    deadline: timedelta | None = None,
) -> Operation:
    """Record an operation in the current transaction and send its task once that commits."""
    op = Operation.objects.create(
        kind=kind,
        task_name=task,
        queue=queue,
        payload=kwargs or {},
        resource_type=resource_type,
        resource_id=resource_id,
        project=project if project is not None else ctx.project,
        user=ctx.user,
        request_id=ctx.request_id[:64],
        deadline=timezone.now() + (deadline or settings.ZENITH_OPERATION_DEFAULT_DEADLINE),
    )
    transaction.on_commit(lambda: send(op.pk))
    return op


def send(operation_id, state: str = Operation.PENDING) -> bool:
    """Publish an operation's task (again) if it is still in ``state`` (pending: not yet picked up;
    running: re-driven by the sweeper); False when it is not."""
    now = timezone.now()
    claimed = Operation.objects.filter(pk=operation_id, state=state).update(
        send_count=F("send_count") + 1, sent_at=now, updated=now
    )
    if not claimed:
        return False
    op = Operation.objects.only("task_name", "queue", "payload").get(pk=operation_id)
    try:
        current_app.send_task(
            op.task_name,
            kwargs={"operation_id": str(op.pk), **op.payload},
            queue=op.queue,
            task_id=str(op.pk),
            # Ledger tasks store no result: without this Celery subscribes to the result channel on
            # every send, through the result backend's own retry loop (20 s against a dead Redis).
            ignore_result=True,
        )
    except Exception:  # broker down: the sweeper re-sends it later
        log.exception("could not publish operation %s; the sweeper will retry", operation_id)
        Operation.objects.filter(pk=operation_id).update(sent_at=None)
        return False
    return True


def send_to_host(
    task: str,
    host: str,
    *,
    kwargs: dict,
    queue_kind: str = "compute",
    link=None,
    link_error=None,
    task_id: str | None = None,
):
    """Publish host work on ``<queue_kind>.<host>`` (the agent of that host alone consumes it)."""
    queue = queues.host_queue(queue_kind, host)
    return current_app.send_task(
        task, kwargs=kwargs, queue=queue, link=link, link_error=link_error, task_id=task_id
    )


def send_to_all_hosts(task: str, hosts: list[str], *, kwargs: dict, role: str = "compute") -> int:
    """Send one task to every host: one fanout message where the broker has fanout (every agent
    subscribes to it), else one per host on its ``<role>.<host>`` queue."""
    if queues.broker_has_fanout(settings.CELERY_BROKER_URL):
        from kombu.common import Broadcast

        broadcast = Broadcast(queues.BROADCAST)
        # Celery never declares a Broadcast queue when publishing, and kombu's virtual transports
        # (Redis) treat an exchange this process has not declared as direct: the message would be
        # pushed onto one agent's list, which agents never read (they subscribe). Declare it fanout.
        current_app.send_task(task, kwargs=kwargs, queue=broadcast, declare=[broadcast.exchange])
        return 1
    for host in hosts:
        current_app.send_task(task, kwargs=kwargs, queue=queues.host_queue(role, host))
    return len(hosts)


def call_host(task: str, host: str, *, kwargs: dict, timeout: float, queue_kind: str = "compute") -> dict:
    """Ask a host's agent and wait for its answer through the result backend (DESIGN.md section 4:
    only for the few synchronous reads, such as a console log). A host that does not answer within
    ``timeout`` seconds is reported as unavailable, never waited on forever."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    from identity.errors import ServiceUnavailable

    try:
        async_result = send_to_host(task, host, kwargs=kwargs, queue_kind=queue_kind)
    except Exception as exc:
        log.exception("could not publish %s to host %s", task, host)
        raise ServiceUnavailable(f"The message broker is unavailable: {exc}") from None
    try:
        answer = async_result.get(timeout=timeout, propagate=False, interval=0.05)
    except CeleryTimeout:
        async_result.forget() if hasattr(async_result, "forget") else None
        raise ServiceUnavailable(f"Host {host} did not answer within {timeout:g} s.") from None
    if isinstance(answer, Exception):
        raise ServiceUnavailable(f"Host {host} failed to answer: {answer}")
    return answer if isinstance(answer, dict) else {"ok": False, "error": f"unexpected answer {answer!r}"}
