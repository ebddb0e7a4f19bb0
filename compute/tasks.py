"""Conductor-side compute tasks (queue ``conductor``): they read and write the database and hand host
work to ``compute.<host>`` with a callback back to the conductor (DESIGN.md section 3).

Instance actions have no task of their own here: they are transitions of the instance lifecycle
(``services.lifecycle``), run by the generic steps in ``workers.tasks``.
"""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings

from workers import hostkeys, tasknames
from workers import services as ledger
from workers.hostkeys import HostAuthError

from . import services

log = logging.getLogger(__name__)
_STARTED = time.monotonic()  # when this conductor process started


@shared_task(name=tasknames.BUILD_INSTANCE, ignore_result=True)
def build_instance(operation_id: str, instance_id: str) -> None:
    """instance.create: schedule (claim a host), then hand the spawn to that host's agent."""
    if ledger.start(operation_id) is None:
        return
    services.schedule_and_spawn(operation_id, instance_id)


@shared_task(name=tasknames.RESCHEDULE_FROM_DOWN_HOSTS, ignore_result=True)
def reschedule_from_down_hosts() -> int:
    """Periodic (beat): spawns waiting on a host that went down are scheduled again on another host."""
    if time.monotonic() - _STARTED < settings.ZENITH_HOST_DOWN_AFTER.total_seconds():
        # Just (re)started: the heartbeats queued while this conductor was away are still being read,
        # host by host; a host whose turn has not come yet is not down.
        return 0
    moved = services.release_from_down_hosts()
    for operation_id, instance_id in moved:
        services.schedule_and_spawn(operation_id, instance_id)
    return len(moved)


@shared_task(name=tasknames.POWER_SYNC, ignore_result=True)
def power_sync(host: str, domains: list[dict], apply: bool = True, *, auth: dict | None = None) -> dict:
    """An agent's periodic list of its domains, signed by that host: follow power changes the guests
    made on their own (unless the agent runs with power sync off: then the list feeds the drift view
    only). Only that host's instances are touched."""
    kwargs = {"host": host, "domains": domains, "apply": apply}
    try:
        hostkeys.authenticate(tasknames.POWER_SYNC, (), kwargs, auth, host=host)
    except HostAuthError as exc:
        hostkeys.refused(tasknames.POWER_SYNC, exc, host=host)
        return {"updated": 0}
    return services.sync_power_states(host, domains, apply=apply)


@shared_task(name=tasknames.POWER_EVENT, ignore_result=True)
def power_event(
    host: str, instance_id: str, power_state: str, event: str = "", *, auth: dict | None = None
) -> None:
    """A libvirt lifecycle event from an agent (a guest stopped, paused, resumed, ...), signed by that
    host: it changes an instance placed on that host only."""
    kwargs = {"host": host, "instance_id": instance_id, "power_state": power_state, "event": event}
    try:
        hostkeys.authenticate(tasknames.POWER_EVENT, (), kwargs, auth, host=host)
    except HostAuthError as exc:
        hostkeys.refused(tasknames.POWER_EVENT, exc, host=host, instance=instance_id)
        return
    if instance_id:
        services.apply_power_state(instance_id, power_state, on_host=host)
