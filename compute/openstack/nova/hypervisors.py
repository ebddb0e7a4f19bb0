"""Hypervisors: the compute hosts, paged from 2.33, with their servers from 2.53."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q
from django.http import HttpRequest, JsonResponse

from identity import policy
from identity.context import Context
from identity.errors import InvalidInput
from identity.openstack.http import (
    at_least,
    get_or_404,
    query_bool,
    query_limit,
)
from identity.scoping import is_uuid
from workers.models import Host

from ...models import Instance
from .common import next_link


def _hosts(request: HttpRequest, ctx: Context):
    """The compute hosts, by name; from 2.53 ``hypervisor_hostname_pattern`` (a substring) and
    ``with_servers`` (each host's servers, prefetched: the query count stays fixed)."""
    policy.enforce(ctx, "compute:host:list")
    running = Count("instances", filter=~Q(instances__vm_state=Instance.DELETED))
    rows = (
        Host.objects.visible_to(ctx)
        .filter(compute__isnull=False)
        .select_related("compute")
        .defer("compute__domains")
        .annotate(running_vms=running)
        .order_by("name")
    )
    if at_least(request, "2.53"):
        pattern = request.GET.get("hypervisor_hostname_pattern")
        if pattern:
            rows = rows.filter(name__contains=pattern)
        if query_bool(request, "with_servers"):
            live = Instance.objects.exclude(vm_state=Instance.DELETED).only("id", "name", "host_id")
            rows = rows.prefetch_related(
                Prefetch("instances", queryset=live.order_by("name"), to_attr="servers")
            )
    return rows


def _host_page(request: HttpRequest, rows) -> tuple[list, int | None]:
    """From 2.33 hypervisor lists page by name (``limit``, ``marker``: a hypervisor id)."""
    if not at_least(request, "2.33"):
        return list(rows), None
    marker = request.GET.get("marker")
    if marker:
        last = rows.filter(pk=marker).values_list("name", flat=True).first() if is_uuid(marker) else None
        if last is None:
            raise InvalidInput(f"marker [{marker}] not found")
        rows = rows.filter(name__gt=last)
    limit = query_limit(request)
    return list(rows if limit is None else rows[:limit]), limit


def render_hypervisor(request: HttpRequest, host: Host, detail: bool = True) -> dict:
    body = {
        "id": str(host.pk),
        "hypervisor_hostname": host.name,
        "state": host.state,
        "status": "enabled" if host.enabled else "disabled",
    }
    if detail:
        node = host.compute
        body.update(
            {
                "hypervisor_type": node.hypervisor_type or "QEMU",
                "hypervisor_version": node.hypervisor_version,
                "host_ip": None,  # hosts register by name; Zenith records no address for them
                "vcpus": node.vcpus,
                "vcpus_used": node.vcpus_used,
                "memory_mb": node.memory_mb,
                "memory_mb_used": node.memory_mb_used,
                "free_ram_mb": node.memory_mb - node.memory_mb_used,
                "local_gb": node.disk_gb,
                "local_gb_used": node.disk_gb_used,
                "free_disk_gb": node.disk_gb - node.disk_gb_used,
                "disk_available_least": node.disk_gb - node.disk_gb_used,
                "running_vms": host.running_vms,
                "current_workload": 0,
                "cpu_info": {} if at_least(request, "2.28") else "{}",
                "service": {
                    "host": host.name,
                    "id": str(host.pk),
                    "disabled_reason": host.disabled_reason or None,
                },
            }
        )
    servers = getattr(host, "servers", None)
    if servers is not None:
        body["servers"] = [{"name": i.name, "uuid": str(i.pk)} for i in servers]
    return body


def _hypervisor_list(request: HttpRequest, ctx: Context, detail: bool, path: str) -> JsonResponse:
    page, limit = _host_page(request, _hosts(request, ctx))
    body = {"hypervisors": [render_hypervisor(request, h, detail=detail) for h in page]}
    return JsonResponse({**body, **next_link(request, path, page, limit, "hypervisors")})


def list_hypervisors(request, ctx: Context):
    return _hypervisor_list(request, ctx, False, "os-hypervisors")


def list_hypervisors_detail(request, ctx: Context):
    return _hypervisor_list(request, ctx, True, "os-hypervisors/detail")


def show_hypervisor(request, ctx: Context, host_id: str):
    host = get_or_404(_hosts(request, ctx), f"Hypervisor {host_id}", pk=host_id)
    return JsonResponse({"hypervisor": render_hypervisor(request, host)})
