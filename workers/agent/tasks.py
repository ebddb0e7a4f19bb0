"""Host-side tasks, consumed from ``compute.<host>``, ``storage.<host>``, ``network.<host>``."""

import os
import time
from dataclasses import asdict

from celery import shared_task

from . import heartbeat
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


@shared_task(name="workers.agent.tasks.report_host", acks_late=True)
def report_host() -> dict:
    """ "All hosts report now": send a heartbeat with fresh capacity, and answer with it."""
    info = heartbeat.report(host_name())
    return {"ok": True, "host": host_name(), "info": asdict(info), "message": f"{host_name()} reported"}
