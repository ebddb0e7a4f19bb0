"""One lifecycle for every asynchronous resource: instances now, volumes and ports next.

A resource kind declares its transitions once (``Transition``: from which stable states, the busy
state while it runs, the state it ends in, the host task that carries it out, its policy, label,
icon, confirmation and message). From that one table come:

- the service's ``begin``: row lock, Idempotency-Key replay, the state check whose 409 names the
  state, the busy state, the Operation (outbox) and the audit record, in one transaction;
- the conductor's generic steps (``workers.tasks.run_transition`` -> the host's
  ``<role>.<host>`` queue -> ``workers.tasks.transition_done``, one crash errback for all):
  ``host_work`` says where to send it, ``settle`` records the host's answer;
- ``timed_out``: the sweeper failed the operation at its deadline, never leave the row busy;
- the API's action endpoints (``workers.api.lifecycle``) and the dashboard's buttons
  (``workers.dashboard``).

A resource's app subclasses ``Lifecycle`` for what only it knows (which host, what a success
changes beside the state, what the truth is after a failure) and registers it at start-up.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from identity import audit, policy
from identity.context import Context
from identity.errors import Conflict, InvalidInput, NotFound
from identity.models import ResourceAction

from . import dispatch, queues, tasknames
from . import services as ledger
from .models import Operation
from .signals import operation_failed

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True)
class Transition:
    """One action of a resource kind's state machine, and how users meet it."""

    name: str
    allowed: frozenset[str]  # stable states it may start from
    busy: str  # the busy state (task state) while it runs
    target: str  # the stable state it ends in on success; "": the one it started from (a snapshot)
    label: str
    icon: str = "gear"
    style: str = "secondary"  # Bootstrap colour of its button
    confirm: str = ""  # asked before posting, with ``{name}``; empty: no question
    message: str = ""  # told once it started, with ``{name}``
    policy: str = ""  # defaults to ``<policy_prefix>:<name>``
    host_task: str = ""  # the agent task that carries it out
    role: str = queues.HOST_QUEUE_KINDS[0]  # the host queue it goes to: ``<role>.<host>``
    while_busy: bool = False  # may start while another transition runs (delete)
    endpoint: str | None = None  # API path under the resource; None: the name; "": no endpoint
    doc: str = ""  # what the API documents for it

    @property
    def verb(self) -> str:
        return self.label.lower() if self.label else self.name.replace("_", " ")


@dataclass(frozen=True)
class HostWork:
    """Where the conductor sends a transition: a host task on ``<role>.<host>`` with its kwargs."""

    host: str
    task: str
    kwargs: dict
    role: str = queues.HOST_QUEUE_KINDS[0]


def make_fault(code: str, message: str, details: Any = None) -> dict:
    """The ``fault`` a resource shows after a failure: a stable code, a readable message, details."""
    return {
        "code": code,
        "message": message[:4000],
        "details": details,
        "created": timezone.now().isoformat(),
    }


NO_VALID_HOST = "No valid host was found"  # how every no-valid-host message begins (compute.scheduler)


def shows_hosts(ctx: Context | None) -> bool:
    """Whether the caller may see compute hosts' names and capacity (cloud admins)."""
    return ctx is not None and policy.check(ctx, "compute:instance:show_host")


def message_shown(message: str, hosts_shown: bool) -> str:
    """An operation's or action's message as the caller sees it: a no-valid-host message names the
    cloud's hosts and their free capacity, so only those who may see hosts get it whole."""
    if hosts_shown or NO_VALID_HOST not in (message or ""):  # also after "Spawning failed on ..."
        return message
    return f"{NO_VALID_HOST}."


def operation_params(operation_id) -> dict:
    """The ``params`` a transition was begun with (what the conductor's steps need of the request)."""
    payload = Operation.objects.filter(pk=operation_id).values_list("payload", flat=True).first() or {}
    return payload.get("params") or {}


def clean_idempotency_key(value: str | None) -> str:
    key = (value or "").strip()
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(f"Idempotency-Key is limited to {MAX_IDEMPOTENCY_KEY} characters.")
    return key


def create_with_operation(
    ctx: Context, model: type, kind: str, *, task: str, kwargs, audit_extra: dict | None = None, **fields
):
    """A new resource row of ``model`` recorded with the Operation that builds it and its ``create``
    action record, inside the caller's transaction (which holds the quota lock: the Operation first, so
    the row is inserted with it, the fewer writes under that lock). ``kwargs(resource_id)`` are the
    conductor task's; ``fields`` the row's own (``project``, ``user`` and ``operation`` are set here)."""
    resource_id = uuid.uuid4()
    op = dispatch.enqueue(
        ctx,
        kind=f"{kind}.create",
        task=task,
        kwargs=kwargs(resource_id),
        queue=queues.CONDUCTOR,
        resource_type=kind,
        resource_id=resource_id,
    )
    obj = model.objects.create(id=resource_id, project=ctx.project, user=ctx.user, operation=op, **fields)
    audit.record(ctx, kind, obj.pk, "create", operation_id=op.pk, **(audit_extra or {}))
    return obj


def create_with_transition(ctx: Context, model: type, kind: str, key: str = "", **fields):
    """A new ``kind`` row whose building is its lifecycle's ``create`` transition: recorded with the
    Operation that runs it (``run_transition`` -> the host -> ``settle``), in the caller's transaction."""
    return create_with_operation(
        ctx,
        model,
        kind,
        task=tasknames.RUN_TRANSITION,
        kwargs=lambda resource_id: {
            "resource_type": kind,
            "resource_id": str(resource_id),
            "transition": "create",
            "params": {},
        },
        audit_extra={"idempotency_key": key},
        **fields,
    )


class Lifecycle:
    """The declared state machine of one resource kind and the generic steps over it."""

    kind: ClassVar[str]  # resource_type of its Operations and audit records, e.g. "instance"
    model: ClassVar[type]
    state_field: ClassVar[str]  # the stable state, e.g. vm_state
    busy_field: ClassVar[str]  # the transition running ("" when none), e.g. task_state
    deleted: ClassVar[str]  # the stable state of a deleted row (kept for history)
    deleting: ClassVar[str] = ""  # the busy state of a delete; such a row accepts nothing more
    policy_prefix: ClassVar[str]
    fault_field: ClassVar[str] = "fault"
    operation_field: ClassVar[str] = "operation"  # the row's latest Operation ("" when it keeps none)
    delete_failed: ClassVar[str] = ""  # the stable state after a failed delete ("" keeps the state)
    host_role: ClassVar[str] = "storage"  # who a default failure message names: "the <role> host"

    def __init__(self, transitions: Iterable[Transition]):
        self.transitions: dict[str, Transition] = {t.name: t for t in transitions}

    # --- reading ----------------------------------------------------------------------------------

    def state(self, obj) -> str:
        return getattr(obj, self.state_field)

    def busy(self, obj) -> str:
        return getattr(obj, self.busy_field)

    def policy_of(self, transition: Transition) -> str:
        return transition.policy or f"{self.policy_prefix}:{transition.name}"

    def label(self, obj) -> str:
        """How messages name the row (its name; a kind whose names may be blank says more)."""
        return obj.name

    def describe(self, obj) -> str:
        """How the 409 names the state, e.g. ``active (status ACTIVE)``."""
        return self.state(obj)

    def allowed(self, obj) -> list[str]:
        """The transitions the row's state allows now, in declared order (buttons, 409s)."""
        state, busy = self.state(obj), self.busy(obj)
        if state == self.deleted or (self.deleting and busy == self.deleting):
            return []
        return [
            name for name, t in self.transitions.items() if state in t.allowed and (not busy or t.while_busy)
        ]

    def check(self, ctx: Context, obj, transition: Transition) -> None:
        """Refuse, with a 409 that names the state, what the row's state does not allow now."""
        name, busy = self.label(obj), self.busy(obj)
        if self.deleting and busy == self.deleting:
            raise Conflict(f"{self.kind.capitalize()} {name} is being deleted.", code="invalid_state")
        if busy and not transition.while_busy:
            raise Conflict(
                f"{self.kind.capitalize()} {name} is busy ({busy}): wait for it to finish.",
                code="invalid_state",
            )
        if self.state(obj) not in transition.allowed:
            raise Conflict(
                f"Cannot {transition.name.replace('_', ' ')} {self.kind} {name} while it is "
                f"{self.describe(obj)}.",
                code="invalid_state",
            )

    # --- hooks of the resource's app ----------------------------------------------------------------

    def refuse(self, ctx: Context, obj, transition: Transition) -> None:
        """What else forbids the transition (a lock, no host): raise to refuse. Checked first."""

    def refuse_after_state(self, ctx: Context, obj, transition: Transition) -> None:
        """Refusals that only make sense once the state allows the transition."""

    def started(self, obj, operation: Operation) -> None:
        """The transition was accepted (in the transaction): the row points at its operation."""
        if self.operation_field:
            self.model.objects.filter(pk=obj.pk).update(**{self.operation_field: operation})
            setattr(obj, self.operation_field, operation)

    def host_work(self, operation_id, resource_id, transition: Transition, params: dict) -> HostWork | None:
        """Conductor: where the transition goes, or None when it was settled here already."""
        raise NotImplementedError

    def succeeded(self, obj, transition: Transition, result: dict) -> list[str]:
        """Record what a success changes beside the state; returns the fields it set."""
        return []

    def failed(self, obj, transition: Transition, result: dict, error: str) -> list[str]:
        """Fall back to what is true after a failure (e.g. the power state the host reports)."""
        return []

    def deleted_fields(self, obj, result: dict) -> list[str]:
        """A delete succeeded: release what the row held (set those fields, return their names)."""
        return []

    def settle_delete(self, operation_id, resource_id, result: dict) -> None:
        """Conductor: the host answered a delete. A success marks the row deleted (kept for history;
        ``deleted_fields`` releases what it held); a failure sets ``delete_failed`` (when the kind
        has one) and the fault, the row no longer busy."""
        with transaction.atomic():
            row = self.model.objects.select_for_update().filter(pk=resource_id).first()
            if row is None or self.state(row) == self.deleted:
                ledger.succeed(operation_id, message="already deleted")
                return
            fields = [self.state_field, self.busy_field, "updated"]
            setattr(row, self.busy_field, "")
            if not result.get("ok"):
                error = result.get("error") or f"the {self.host_role} host could not delete the {self.kind}"
                if self.delete_failed:
                    setattr(row, self.state_field, self.delete_failed)
                setattr(row, self.fault_field, make_fault("delete_failed", error))
                row.save(update_fields=[*fields, self.fault_field])
                ledger.fail(operation_id, error, result=result)
                audit.finish(operation_id, ResourceAction.ERROR, error)
                return
            setattr(row, self.state_field, self.deleted)
            row.save(update_fields=fields + self.deleted_fields(row, result))
            message = result.get("message") or "deleted"
            ledger.succeed(operation_id, result=result, message=message)
            audit.finish(operation_id, ResourceAction.SUCCESS, message)

    def settle_step(self, operation_id, resource_id, step: str, result: dict) -> None:
        """Conductor: a host answered a step that is no declared transition (e.g. a spawn)."""
        raise InvalidInput(f"{self.kind} has no step {step!r}")

    def earlier_hosts(self, resource_id) -> list[str]:
        """Hosts this resource's work was sent to before its operation's current host (a spawn tried
        on one host, then rescheduled): their late, signed answers still count (the conductor cleans
        up after them: e.g. deletes the domain a down host made once it came back)."""
        return []

    def timed_out_state(self, obj, operation: Operation) -> str | None:
        """The stable state a row takes when its operation missed its deadline (None: keep it)."""
        return None

    # --- the service side ---------------------------------------------------------------------------

    def begin(
        self,
        ctx: Context,
        obj,
        name: str,
        *,
        idempotency_key: str | None = None,
        params: dict | None = None,
    ):
        """Start transition ``name`` on ``obj``: in one transaction lock the row, replay a retry with
        the same Idempotency-Key (nothing more starts; the row is answered as it is now), check the
        state, set the busy state, record the Operation and the audit row. The conductor takes it
        from there once the transaction commits."""
        transition = self.transitions.get(name)
        if transition is None:
            raise InvalidInput(f"Unknown action {name!r}.")
        policy.enforce(ctx, self.policy_of(transition))
        key = clean_idempotency_key(idempotency_key)
        with transaction.atomic():
            row = self.model.objects.select_for_update().filter(pk=obj.pk).first()
            if row is None or self.state(row) == self.deleted:
                raise NotFound(f"No such {self.kind}.")
            if key:  # the row lock orders concurrent retries: the first records, the rest find it
                earlier = audit.earlier_with_key(self.kind, row.pk, key)
                if earlier is not None:
                    if earlier.action != name:
                        raise Conflict(
                            f"Idempotency-Key {key!r} was already used for {earlier.action} "
                            f"of this {self.kind}."
                        )
                    return row
            self.refuse(ctx, row, transition)
            self.check(ctx, row, transition)
            self.refuse_after_state(ctx, row, transition)
            setattr(row, self.busy_field, transition.busy)
            row.save(update_fields=[self.busy_field, "updated"])
            op = dispatch.enqueue(
                ctx,
                kind=f"{self.kind}.{name}",
                task=tasknames.RUN_TRANSITION,
                kwargs={
                    "resource_type": self.kind,
                    "resource_id": str(row.pk),
                    "transition": name,
                    "params": params or {},
                },
                queue=queues.CONDUCTOR,
                resource_type=self.kind,
                resource_id=row.pk,
                project=row.project,
            )
            self.started(row, op)
            audit.record(
                ctx, self.kind, row.pk, name, project=row.project, operation_id=op.pk, idempotency_key=key
            )
        return row

    # --- the conductor side -------------------------------------------------------------------------

    def settle(self, operation_id, resource_id, step: str, result: dict) -> None:
        """Conductor: a host answered ``step``; settle the state (or fall back to what is true)."""
        transition = self.transitions.get(step)
        if transition is None:
            self.settle_step(operation_id, resource_id, step, result)
            return
        if self.deleting and transition.busy == self.deleting:
            self.settle_delete(operation_id, resource_id, result)
            return
        with transaction.atomic():
            row = self.model.objects.select_for_update().filter(pk=resource_id).first()
            if Operation.objects.filter(pk=operation_id).exclude(state__in=Operation.UNFINISHED).exists():
                return  # a redelivered host task answered again: its operation is settled already
            if row is None or self.state(row) == self.deleted:
                ledger.succeed(operation_id, message=f"{self.kind} deleted meanwhile")
                audit.finish(operation_id, ResourceAction.SUCCESS, f"{self.kind} deleted meanwhile")
                return
            if self.deleting and self.busy(row) == self.deleting:
                ledger.succeed(operation_id, result=result, message="superseded by delete")
                audit.finish(operation_id, ResourceAction.SUCCESS, "superseded by delete")
                return
            fields = [self.state_field, self.busy_field, self.fault_field, "updated"]
            setattr(row, self.busy_field, "")
            if result.get("ok"):
                if transition.target:
                    setattr(row, self.state_field, transition.target)
                setattr(row, self.fault_field, None)
                fields += self.succeeded(row, transition, result)
                row.save(update_fields=fields)
                message = result.get("message", "")
                ledger.succeed(operation_id, result=result, message=message)
                audit.finish(operation_id, ResourceAction.SUCCESS, message)
                return
            error = result.get("error") or f"the host could not {transition.verb}"
            fields += self.failed(row, transition, result, error)
            setattr(row, self.fault_field, make_fault(f"{transition.name}_failed", error))
            row.save(update_fields=fields)
            ledger.fail(operation_id, error, result=result)
            audit.finish(operation_id, ResourceAction.ERROR, error)

    def timed_out(self, operation: Operation) -> None:
        """The sweeper failed one of this kind's operations at its deadline: nothing stays busy."""
        message = operation.message or "the operation did not finish in time"
        with transaction.atomic():
            row = self.model.objects.select_for_update().filter(pk=operation.resource_id).first()
            if row is None or self.state(row) == self.deleted:
                return
            state = self.timed_out_state(row, operation)
            if state is not None:
                setattr(row, self.state_field, state)
            setattr(row, self.busy_field, "")
            setattr(row, self.fault_field, make_fault("timeout", message))
            row.save(update_fields=[self.state_field, self.busy_field, self.fault_field, "updated"])
            audit.finish(operation.pk, ResourceAction.ERROR, message)


_REGISTRY: dict[str, Lifecycle] = {}


def register(lifecycle: Lifecycle) -> Lifecycle:
    """Make a resource kind's lifecycle known to the conductor's generic steps (at app start)."""
    _REGISTRY[lifecycle.kind] = lifecycle
    return lifecycle


def of(kind: str) -> Lifecycle:
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise InvalidInput(f"No lifecycle is registered for {kind!r}.") from None


def registered() -> dict[str, Lifecycle]:
    return dict(_REGISTRY)


def action_label(kind: str, action: str) -> str:
    """How users read an action recorded on a ``kind`` resource: its transition's label ("Hard
    reboot" for ``reboot_hard``); an action that is no transition (create, lock) reads as its name."""
    lifecycle = _REGISTRY.get(kind)
    transition = lifecycle.transitions.get(action) if lifecycle is not None else None
    if transition is not None and transition.label:
        return transition.label
    return action.replace("_", " ").capitalize()


@receiver(operation_failed, sender=Operation, dispatch_uid="lifecycle-operation-failed")
def _on_operation_failed(sender, operation: Operation, **kwargs) -> None:
    lifecycle = _REGISTRY.get(operation.resource_type)
    if lifecycle is not None and operation.resource_id is not None:
        lifecycle.timed_out(operation)
