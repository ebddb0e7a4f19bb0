"""Conductor-side compute tasks (queue ``conductor``): they read and write the database."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="compute.tasks.host_heartbeat", ignore_result=True)
def host_heartbeat(host: str, info: dict) -> None:
    """An agent's heartbeat (sent by name from ``workers.agent.heartbeat``): register or refresh the host."""
    services.record_heartbeat(host, info)
