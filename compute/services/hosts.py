"""Hosts: the agents' heartbeats (registration and capacity), and an admin's disable/enable."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from identity import policy
from identity.context import Context
from identity.errors import Conflict, InvalidInput
from workers import tasknames
from workers.services import validate_host_name

from ..models import Host
from .flavors import _clean_int

# --- hosts ------------------------------------------------------------------------------------

MAX_DISABLED_REASON = 255
# What a heartbeat may set: the host's identity and capacity as libvirt reports them. Never the
# admin's fields (enabled, reason, ratios, zone) nor the scheduler's claims (*_used).
HEARTBEAT_FIELDS = ("uri", "hypervisor_type", "hypervisor_version", "vcpus", "memory_mb", "disk_gb")


def _heartbeat_values(info: Any) -> dict[str, Any]:
    if not isinstance(info, dict):
        raise InvalidInput("A heartbeat carries the host's info as an object.")
    values: dict[str, Any] = {}
    for field in ("vcpus", "memory_mb", "disk_gb"):
        values[field] = _clean_int(info.get(field, 0), field, 0)
    version = info.get("hypervisor_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise InvalidInput("hypervisor_version must be a whole number.")
    values["hypervisor_version"] = version
    values["hypervisor_type"] = str(info.get("hypervisor_type") or "")[:32]
    values["uri"] = str(info.get("uri") or "")[:255]
    return values


def record_heartbeat(host_name: str, info: dict[str, Any], now=None) -> bool:
    """An agent says it is alive: create its Host on the first heartbeat, refresh capacity after.
    True when this heartbeat registered the host. One UPDATE in the common case: every host sends
    one every few seconds, so nothing is read back.

    Called by the conductor task ``compute.tasks.host_heartbeat`` (no user: agents are trusted
    through the broker). Keeps what admins and the scheduler set: enabled, reason, ratios, usage.
    """
    name = validate_host_name(host_name)
    values = _heartbeat_values(info)
    now = now or timezone.now()
    values["last_heartbeat"] = now
    # An UPDATE first (the common case, one query); an INSERT the first time, racing safely.
    if Host.objects.filter(name=name).update(updated=now, **values):
        return False
    try:
        with transaction.atomic():
            Host.objects.create(name=name, **values)
        return True
    except IntegrityError:  # another heartbeat of the same host created it meanwhile
        Host.objects.filter(name=name).update(updated=now, **values)
        return False


def _clean_reason(value: Any) -> str:
    reason = value.strip() if isinstance(value, str) else ""
    if not reason or len(reason) > MAX_DISABLED_REASON:
        raise InvalidInput(f"Say why the host is disabled: a reason of 1-{MAX_DISABLED_REASON} characters.")
    return reason


@transaction.atomic
def disable_host(ctx: Context, host: Host, reason: str) -> Host:
    """Stop scheduling new instances on ``host`` (those running stay); the reason is shown to admins."""
    policy.enforce(ctx, "compute:host:disable")
    reason = _clean_reason(reason)
    host = Host.objects.select_for_update().get(pk=host.pk)
    if not host.enabled:
        raise Conflict(f"Host {host.name} is already disabled ({host.disabled_reason}).")
    host.enabled = False
    host.disabled_reason = reason
    host.save(update_fields=["enabled", "disabled_reason", "updated"])
    return host


@transaction.atomic
def enable_host(ctx: Context, host: Host) -> Host:
    """Let the scheduler place new instances on ``host`` again."""
    policy.enforce(ctx, "compute:host:enable")
    host = Host.objects.select_for_update().get(pk=host.pk)
    if host.enabled:
        raise Conflict(f"Host {host.name} is already enabled.")
    host.enabled = True
    host.disabled_reason = ""
    host.save(update_fields=["enabled", "disabled_reason", "updated"])
    return host


def request_host_reports(ctx: Context) -> int:
    """ "All hosts report now": every registered host's agent sends a fresh heartbeat (capacity) at
    once, instead of at its next interval. Returns the number of messages sent."""
    policy.enforce(ctx, "compute:host:report")
    from workers import dispatch

    names = list(Host.objects.order_by("name").values_list("name", flat=True))
    if not names:
        return 0
    return dispatch.send_to_all_hosts(tasknames.AGENT_REPORT_HOST, names, kwargs={})
