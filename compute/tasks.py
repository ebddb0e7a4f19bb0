"""Conductor-side compute tasks (queue ``conductor``): they read and write the database and hand host
work to ``compute.<host>`` with a callback back to the conductor (DESIGN.md section 3).

Instance actions have no task of their own here: they are transitions of the instance lifecycle
(``services.lifecycle``), run by the generic steps in ``workers.tasks``.
"""

from __future__ import annotations

import logging

from celery import shared_task

from workers import services as ledger
from workers import tasknames

from . import services

log = logging.getLogger(__name__)


@shared_task(name=tasknames.BUILD_INSTANCE, ignore_result=True)
def build_instance(operation_id: str, instance_id: str) -> None:
    """instance.create: schedule (claim a host), then hand the spawn to that host's agent."""
    if ledger.start(operation_id) is None:
        return
    services.schedule_and_spawn(operation_id, instance_id)


@shared_task(name=tasknames.POWER_SYNC, ignore_result=True)
def power_sync(host: str, domains: list[dict], apply: bool = True) -> dict:
    """An agent's periodic list of its domains: follow power changes the guests made on their own
    (unless the agent runs with power sync off: then the list feeds the drift view only)."""
    return services.sync_power_states(host, domains, apply=apply)


@shared_task(name=tasknames.POWER_EVENT, ignore_result=True)
def power_event(host: str, instance_id: str, power_state: str, event: str = "") -> None:
    """A libvirt lifecycle event from an agent (a guest stopped, paused, resumed, ...)."""
    if instance_id:
        services.apply_power_state(instance_id, power_state)
