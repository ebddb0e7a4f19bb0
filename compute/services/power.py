"""Power sync and drift: what libvirt says runs on each host against what the database says.

Agents report their domains (periodically and on lifecycle events); stable instances follow what the
hypervisor says, and the admins' drift view lists what neither side explains.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from identity import policy
from identity.context import Context

from ..models import ComputeNode, Instance

I = Instance  # noqa: E741 - the state constants read better short

# The vm_state that matches what the hypervisor says, when a failed action must fall back to the truth.
POWER_TO_VM_STATE = {
    "running": I.ACTIVE,
    "paused": I.PAUSED,
    "suspended": I.SUSPENDED,
    "shutdown": I.STOPPED,
    "crashed": I.STOPPED,
}

__all__ = ["POWER_TO_VM_STATE", "apply_power_state", "drift", "sync_power_states"]


def sync_power_states(host_name: str, domains: list[dict], now=None, apply: bool = True) -> dict:
    """Conductor: what libvirt lists on a host vs the database. Stable instances (no task running)
    whose power state changed on its own (a guest powered itself off) follow the hypervisor; with
    ``apply`` False the list is only recorded (for the drift view)."""
    now = now or timezone.now()
    host_id = ComputeNode.objects.filter(host__name=host_name).values_list("pk", flat=True).first()
    if host_id is None:
        return {"updated": 0}
    ComputeNode.objects.filter(pk=host_id).update(domains=domains, domains_reported_at=now)
    if not apply:
        return {"updated": 0}
    by_id = {d.get("instance_id") or "": d for d in domains}
    updated = 0
    for instance in Instance.objects.filter(host_id=host_id, task_state="").exclude(
        vm_state__in=(I.DELETED, I.BUILDING)
    ):
        dom = by_id.get(str(instance.pk))
        if dom is None:
            continue  # the drift view shows rows whose domain is gone; nothing is guessed here
        updated += apply_power_state(instance.pk, dom.get("power_state") or "nostate", now)
    return {"updated": updated}


def apply_power_state(instance_id, power: str, now=None, on_host: str | None = None) -> int:
    """Record a power state the hypervisor reported (event or sync) for a stable instance.

    The vm_state follows (a guest that powered itself off is SHUTOFF), except for an instance in
    ERROR: that stays ERROR, with the power state recorded, until someone acts on it (as in Nova).
    ``on_host``: the host that reported it; an instance placed elsewhere is left alone.
    """
    fields: dict[str, Any] = {"power_state": power, "power_synced_at": now or timezone.now()}
    stable = Instance.objects.filter(pk=instance_id, task_state="").exclude(
        vm_state__in=(I.DELETED, I.BUILDING)
    )
    if on_host is not None:
        stable = stable.filter(host__name=on_host)
    changed = stable.filter(vm_state=I.ERROR).exclude(power_state=power).update(**fields)
    vm_state = POWER_TO_VM_STATE.get(power)
    others = stable.exclude(vm_state=I.ERROR)
    if vm_state is not None:
        fields["vm_state"] = vm_state
        others = others.exclude(power_state=power, vm_state=vm_state)
    else:
        others = others.exclude(power_state=power)
    return changed + others.update(**fields)


def drift(ctx: Context) -> dict:
    """Admin: domains on hosts that no instance row knows, and rows whose domain is gone (from each
    host's latest domain list; two queries whatever the number of hosts)."""
    policy.enforce(ctx, "compute:instance:drift")
    nodes = list(ComputeNode.objects.exclude(domains_reported_at=None).select_related("host"))
    listed = {(node.pk, d.get("instance_id")) for node in nodes for d in node.domains}
    rows = list(
        Instance.objects.filter(host_id__in=[node.pk for node in nodes])
        .exclude(vm_state=I.DELETED)
        .select_related("project")
    )
    known = {(row.host_id, str(row.pk)) for row in rows}
    # Rows whose domain may rightly be absent: still spawning, or being deleted.
    rows = [row for row in rows if row.vm_state != I.BUILDING and row.task_state != I.DELETING]
    unknown = [
        {"host": node.host.name, **dom}
        for node in nodes
        for dom in node.domains
        if (node.pk, dom.get("instance_id")) not in known
    ]
    by_pk = {node.pk: node.host.name for node in nodes}
    missing = [
        {
            "host": by_pk[row.host_id],
            "instance_id": str(row.pk),
            "name": row.name,
            "project": row.project.name,
            "vm_state": row.vm_state,
        }
        for row in rows
        if (row.host_id, str(row.pk)) not in listed
    ]
    return {"unknown_domains": unknown, "missing_domains": missing}
