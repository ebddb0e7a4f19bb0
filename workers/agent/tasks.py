"""Host-side tasks, consumed from ``compute.<host>``, ``storage.<host>``, ``network.<host>``."""

import os
import time

from celery import shared_task

from .runtime import host_name


@shared_task(name="workers.agent.tasks.ping", acks_late=True)
def ping(nonce: str = "") -> dict:
    """Answer with who ran it: proves a message for this host reached this host's agent."""
    return {
        "ok": True,
        "host": host_name(),
        "pid": os.getpid(),
        "nonce": nonce,
        "time": time.time(),
        "message": f"pong from {host_name()}",
    }
