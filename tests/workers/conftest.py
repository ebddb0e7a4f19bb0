"""Fixtures of the ledger's unit tests: a recording ``send_task`` and a quick Operation maker.

No worker and no broker here: the message send itself is tested for real in tests/integration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from celery import current_app
from django.utils import timezone

from workers import queues
from workers.models import Operation


@dataclass
class SentTask:
    name: str
    kwargs: dict
    queue: object
    task_id: str | None
    options: dict = field(default_factory=dict)


class Recorder(list):
    """Every ``send_task`` call, in order; ``fail_with`` makes the next calls raise (broker down)."""

    fail_with: Exception | None = None

    def __call__(self, name, args=None, kwargs=None, **options):
        if self.fail_with is not None:
            raise self.fail_with
        self.append(
            SentTask(
                name=name,
                kwargs=dict(kwargs or {}),
                queue=options.pop("queue", None),
                task_id=options.pop("task_id", None),
                options=options,
            )
        )


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The cloud fixture and token clients hash passwords; PBKDF2's cost buys nothing in these tests."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def sent(monkeypatch) -> Recorder:
    """Replace the Celery app's ``send_task`` (on the instance, undone after the test) with a recorder."""
    recorder = Recorder()
    app = current_app._get_current_object()
    monkeypatch.setitem(vars(app), "send_task", recorder)
    return recorder


def make_operation(**fields) -> Operation:
    """An Operation row written directly (no dispatch), with sane defaults."""
    values = {
        "kind": "test.kind",
        "task_name": "workers.tasks.ping_host",
        "queue": queues.CONDUCTOR,
        "deadline": timezone.now() + timedelta(minutes=10),
    }
    values.update(fields)
    return Operation.objects.create(**values)
