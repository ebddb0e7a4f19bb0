"""The audit trail (``ResourceAction``): every app records what was asked of a resource here, and
the conductor finishes the record when the operation carrying it out ends."""

from __future__ import annotations

import uuid

from django.utils import timezone

from .context import Context
from .models import ResourceAction


def record(
    ctx: Context,
    resource_type: str,
    resource_id: uuid.UUID | str,
    action: str,
    *,
    project=None,
    operation_id=None,
    idempotency_key: str = "",
    message: str = "",
) -> ResourceAction:
    """Log ``action`` on a resource; without an operation it was done inside the request (finished)."""
    done = (
        {} if operation_id is not None else {"finish_time": timezone.now(), "result": ResourceAction.SUCCESS}
    )
    return ResourceAction.objects.create(
        resource_type=resource_type,
        resource_id=resource_id,
        project=project if project is not None else ctx.project,
        action=action,
        user=ctx.user,
        request_id=ctx.request_id[:64],
        operation_id=operation_id,
        idempotency_key=idempotency_key,
        message=message[:4000],
        **done,
    )


def finish(operation_id, result: str, message: str = "") -> None:
    """End the records an operation carried out (``ResourceAction.SUCCESS`` or ``ERROR``)."""
    ResourceAction.objects.filter(operation_id=operation_id, finish_time__isnull=True).update(
        finish_time=timezone.now(), result=result, message=message[:4000]
    )


def note(operation_id, message: str) -> None:
    """Update the running record's message (a step worth showing, e.g. a failed attempt)."""
    ResourceAction.objects.filter(operation_id=operation_id, finish_time__isnull=True).update(
        message=message[:4000]
    )


def earlier_with_key(resource_type: str, resource_id, key: str) -> ResourceAction | None:
    """The action already taken on this resource with this Idempotency-Key, if any."""
    return ResourceAction.objects.filter(
        resource_type=resource_type, resource_id=resource_id, idempotency_key=key
    ).first()


def log_for(resource_type: str, resource_id, limit: int | None = None):
    """A resource's action log, newest first, with who asked (one query)."""
    rows = ResourceAction.objects.filter(resource_type=resource_type, resource_id=resource_id).select_related(
        "user"
    )
    return rows[:limit] if limit else rows
