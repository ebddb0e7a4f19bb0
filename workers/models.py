"""The Operation ledger: one row per unit of asynchronous work, written with the intent (outbox)."""

import uuid

from django.conf import settings
from django.db import models

from identity.scoping import ProjectOwnedQuerySet


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
