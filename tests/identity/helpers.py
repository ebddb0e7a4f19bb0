"""Helpers shared by the identity tests (plain functions; fixtures live in conftest.py)."""

import base64
import hashlib
from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from django.utils import timezone

from workers.models import Operation


def openssh_public_key(private_key, comment: str = "tester@laptop") -> str:
    """The ``authorized_keys`` line of a cryptography private key."""
    blob = private_key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return f"{blob.decode()} {comment}"


def ssh_fingerprint(public_key_line: str) -> str:
    """What ``ssh-keygen -lf`` prints for a key, computed here without Zenith's code."""
    blob = base64.b64decode(public_key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def error_of(response) -> dict:
    """The ``error`` object of an API error response, after checking the one error shape."""
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message"} <= set(error) <= {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    return error


def make_operation(project, user, **fields) -> Operation:
    """A ledger row as the dispatcher would write it (no task is sent)."""
    defaults = {
        "kind": "host.ping",
        "task_name": "workers.tasks.ping_host",
        "queue": "conductor",
        "deadline": timezone.now() + timedelta(minutes=10),
    }
    return Operation.objects.create(project=project, user=user, **{**defaults, **fields})
