"""The Operation ledger: one row per unit of asynchronous work, written with the intent (outbox)."""

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from identity.context import Context
from identity.scoping import ProjectOwnedQuerySet, ScopedQuerySet

from . import queues


class OperationQuerySet(ProjectOwnedQuerySet):
    def unfinished(self):
        return self.filter(state__in=Operation.UNFINISHED)


class Operation(models.Model):
    """A dispatched unit of work: what, for whom, on which queue, and how far it got."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STATES = [(s, s) for s in (PENDING, RUNNING, SUCCEEDED, FAILED)]
    UNFINISHED = (PENDING, RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=64, help_text="e.g. instance.create, host.ping")
    state = models.CharField(max_length=16, choices=STATES, default=PENDING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="percent done, 0-100")
    message = models.TextField(blank=True, default="")
    resource_type = models.CharField(max_length=32, blank=True, default="")
    resource_id = models.UUIDField(null=True, blank=True)
    # The host the operation's work was last sent to: only that host's signed answer settles it.
    host = models.CharField(max_length=63, blank=True, default="")
    project = models.ForeignKey(
        "identity.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="operations"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="operations"
    )
    request_id = models.CharField(max_length=64, blank=True, default="")
    task_name = models.CharField(max_length=128)
    queue = models.CharField(max_length=128)
    payload = models.JSONField(default=dict, blank=True, help_text="keyword arguments of the task")
    result = models.JSONField(null=True, blank=True)
    send_count = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField()
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = OperationQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["state", "deadline"], name="operation_sweep"),
            models.Index(fields=["resource_type", "resource_id"], name="operation_resource"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.state})"

    @property
    def finished(self) -> bool:
        return self.state not in self.UNFINISHED


class HostQuerySet(ScopedQuerySet):
    """Hosts are infrastructure: cloud admins see every one, nobody else any."""

    def visible_to(self, ctx: Context):
        return self.all() if ctx.is_admin else self.none()

    def up(self, now: datetime | None = None):
        """Hosts whose last heartbeat is younger than ``ZENITH_HOST_DOWN_AFTER``."""
        now = now or timezone.now()
        return self.filter(last_heartbeat__gte=now - settings.ZENITH_HOST_DOWN_AFTER)

    def down(self, now: datetime | None = None):
        now = now or timezone.now()
        return self.exclude(last_heartbeat__gte=now - settings.ZENITH_HOST_DOWN_AFTER)

    def enabled_for(self, host_field: str = "host_id") -> models.Exists:
        """``EXISTS`` (correlated on the outer row's ``host_field``): that row's host is enabled.

        For conditional claims (``UPDATE ... WHERE fits AND host enabled``): a filter across the
        relation (``host__enabled=True``) makes Django write ``WHERE id IN (SELECT ...)``, whose
        stale read PostgreSQL does not re-check after waiting for a racing UPDATE's row lock, so two
        claims for the last room could both win. With EXISTS the UPDATE stays a plain one.
        """
        return models.Exists(self.model.objects.filter(pk=models.OuterRef(host_field), enabled=True))

    def with_role(self, role: str):
        """Hosts whose agent carries ``role`` (compute, storage, network)."""
        # The JSON list as text holds the quoted name: portable to SQLite, which has no JSON containment.
        return self.filter(roles__icontains=f'"{role}"') if role else self


def _default_roles() -> list[str]:
    return [queues.HOST_QUEUE_KINDS[0]]


class Host(models.Model):
    """A machine running a Zenith agent: registered and kept alive by its heartbeats.

    ``roles`` say which work it takes (``compute``, ``storage``, ``network``: the agent consumes
    ``<role>.<name>``); what each role reports beside liveness lives with that role's app
    (``compute.ComputeNode``: vCPUs, RAM, disk and the scheduler's claims). A host whose last
    heartbeat is older than ``ZENITH_HOST_DOWN_AFTER`` is down; an admin may disable a host (with a
    reason): it then gets no new work.
    """

    UP = "up"
    DOWN = "down"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=63, unique=True)
    roles = models.JSONField(default=_default_roles, blank=True, help_text="compute, storage, network")
    uri = models.CharField(max_length=255, blank=True, default="", help_text="libvirt connection URI")
    availability_zone = models.CharField(max_length=64, default="nova")
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=255, blank=True, default="")
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = HostQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def is_up(self, now: datetime | None = None) -> bool:
        if self.last_heartbeat is None:
            return False
        now = now or timezone.now()
        return self.last_heartbeat >= now - settings.ZENITH_HOST_DOWN_AFTER

    @property
    def state(self) -> str:
        """``up`` while heartbeats arrive, ``down`` once none came for ``ZENITH_HOST_DOWN_AFTER``."""
        return self.UP if self.is_up() else self.DOWN


class HostCredential(models.Model):
    """The key an admin issued to a host at enrollment (``manage.py enroll_host``): every message the
    host's agent sends the conductor is signed with it (``workers.hostauth``). A host without one is
    not part of the cloud: its heartbeats register nothing.

    The conductor needs the key itself to check an HMAC, so it is stored as issued; only the
    conductor and admins read this table. ``previous_key`` stays valid for
    ``ZENITH_HOST_KEY_GRACE`` after a rotation (messages already on their way). ``roles``: the roles
    the host may claim in its heartbeats (empty: any).
    """

    host_name = models.CharField(max_length=63, unique=True)
    key = models.CharField(max_length=128)
    previous_key = models.CharField(max_length=128, blank=True, default="")
    rotated_at = models.DateTimeField(null=True, blank=True)
    roles = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["host_name"]

    def __str__(self) -> str:
        return f"credential of {self.host_name}"


class AsyncResource(models.Model):
    """What every resource with async actions (an instance, a volume, a snapshot, later a network's
    port) has: a UUID, a name, the operation running on it and the fault of the last that failed,
    created/updated. Its app adds its project and user (their reverse names are its own), the state
    fields its lifecycle names (``state_field``, ``busy_field``) and the rest."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    fault = models.JSONField(null=True, blank=True, help_text="{code, message, details} of the last failure")
    operation = models.ForeignKey(
        "workers.Operation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.name


def live_list_index(name: str, **deleted) -> models.Index:
    """The project's list, newest first, without the deleted rows kept for history (``deleted``: the
    state field and its deleted value)."""
    return models.Index(fields=["project", "-created"], condition=~models.Q(**deleted), name=name)


def unique_idempotency_key(name: str) -> models.UniqueConstraint:
    """One resource per project and idempotency key (an empty key is no key)."""
    return models.UniqueConstraint(
        fields=["project", "idempotency_key"], condition=~models.Q(idempotency_key=""), name=name
    )
