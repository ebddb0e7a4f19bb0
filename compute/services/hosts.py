"""Hosts: the agents' heartbeats (registration, liveness and the compute section's capacity), and an
admin's disable/enable. The host itself is the async plane's (``workers.Host``); what compute knows
of it is its ``ComputeNode``."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F

from identity import audit, policy
from identity.context import Context
from identity.errors import Conflict, InvalidInput
from identity.validators import clean_int
from workers import services as ledger
from workers import tasknames
from workers.models import Host

from ..models import ComputeNode

# --- hosts ------------------------------------------------------------------------------------

MAX_DISABLED_REASON = 255


def host_rows(queryset):
    """Hosts with their compute node (one query), sortable by its capacity (API and dashboard); a host
    without the compute role (a storage host only) has none and is not a compute host."""
    return (
        queryset.filter(compute__isnull=False)
        .select_related("compute")
        .annotate(vcpus=F("compute__vcpus"), memory_mb=F("compute__memory_mb"), disk_gb=F("compute__disk_gb"))
    )


def _heartbeat_values(info: Any) -> dict[str, Any]:
    """What a heartbeat's compute section may set: capacity as libvirt reports it. Never the admin's
    fields (ratios) nor the scheduler's claims (*_used)."""
    if not isinstance(info, dict):
        raise InvalidInput("A heartbeat carries the host's info as an object.")
    values: dict[str, Any] = {}
    for field in ("vcpus", "memory_mb", "disk_gb"):
        values[field] = clean_int(info.get(field, 0), field)
    version = info.get("hypervisor_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise InvalidInput("hypervisor_version must be a whole number.")
    values["hypervisor_version"] = version
    values["hypervisor_type"] = str(info.get("hypervisor_type") or "")[:32]
    return values


def record_compute_report(host_name: str, values: dict[str, Any], now, registered: bool = False) -> None:
    """The compute section of a host's heartbeat (cleaned): capacity as libvirt reports it, on the
    host's ComputeNode (made on the first report). One UPDATE in the common case. Keeps what admins
    and the scheduler set: ratios and usage."""
    if not registered and ComputeNode.objects.filter(host__name=host_name).update(updated=now, **values):
        return
    host = Host.objects.only("pk").get(name=host_name)  # new, or a host that gained the compute role
    ComputeNode.objects.update_or_create(host=host, defaults=values)


def record_compute_reports(reports: dict[str, dict[str, Any]], now, registered: set[str]) -> None:
    """The compute sections of a batch of heartbeats (``workers.services.record_heartbeats``): one
    UPDATE per distinct capacity (simulated hosts all report the same), then the ComputeNodes of new
    hosts in one INSERT (those of hosts that gained the compute role one by one)."""
    groups: dict[tuple, list[str]] = {}
    for name, values in reports.items():
        if name not in registered:
            groups.setdefault(tuple(sorted(values.items())), []).append(name)
    updated = 0
    for key, names in groups.items():
        updated += ComputeNode.objects.filter(host__name__in=names).update(updated=now, **dict(key))
    new = [name for name in reports if name in registered]
    if new:
        ids = dict(Host.objects.filter(name__in=new).values_list("name", "pk"))
        ComputeNode.objects.bulk_create(
            [ComputeNode(host_id=ids[name], **reports[name]) for name in new if name in ids],
            ignore_conflicts=True,
        )
    if updated < sum(len(names) for names in groups.values()):
        have = set(
            ComputeNode.objects.filter(host__name__in=list(reports)).values_list("host__name", flat=True)
        )
        for name in sorted(set(reports) - have):
            record_compute_report(name, reports[name], now, registered=True)


def register_heartbeat_receiver() -> None:
    ledger.register_heartbeat_receiver(
        "compute",
        ledger.HeartbeatReceiver(
            clean=_heartbeat_values, record=record_compute_report, record_many=record_compute_reports
        ),
    )


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
    audit.record(ctx, "host", host.pk, "disable", project=None, message=reason)
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
    audit.record(ctx, "host", host.pk, "enable", project=None)
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
