"""The audit trail (``ResourceAction``): every app records what was asked of a resource here, and
the conductor finishes the record when the operation carrying it out ends."""

from __future__ import annotations

import uuid

from django.utils import timezone

from .context import Context
from .models import ResourceAction

# ``project=CALLER`` (the default) files the record under the caller's project; ``project=None`` under
# none: resources no project owns (flavors, hosts, users) and identity's own (projects, role
# assignments, quotas), whose trail must outlive the project it names.
CALLER = object()


def record(
    ctx: Context,
    resource_type: str,
    resource_id: uuid.UUID | str,
    action: str,
    *,
    project=CALLER,
    operation_id=None,
    idempotency_key: str = "",
    message: str = "",
    result: str = ResourceAction.SUCCESS,
) -> ResourceAction:
    """Log ``action`` on a resource (``project``: a Project, its id, None or CALLER). Without an
    operation it was done inside the request and is recorded finished with ``result``: a success, or an
    error that ended outside any transaction (a killed upload)."""
    done = {} if operation_id is not None else {"finish_time": timezone.now(), "result": result}
    if project is CALLER:
        project = ctx.project
    owner = {"project_id": project} if isinstance(project, uuid.UUID | str) else {"project": project}
    return ResourceAction.objects.create(
        resource_type=resource_type,
        resource_id=resource_id,
        **owner,
        action=action,
        user=ctx.user,
        request_id=ctx.request_id[:64],
        operation_id=operation_id,
        idempotency_key=idempotency_key,
        message=message[:4000],
        **done,
    )


def changed(fields=(), **given) -> str:
    """The message of an update: which fields it changed, named in ``fields`` or given a value other
    than None in ``given`` (never their values: a password is one)."""
    names = sorted(set(fields) | {name for name, value in given.items() if value is not None})
    return "changed " + ", ".join(names) if names else "no change"


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
