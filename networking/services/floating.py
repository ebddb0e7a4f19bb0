"""Floating IPs: allocate one from an external network (quota ``floating_ips``), associate it with
one of the project's ports (the external network's host adds the NAT), disassociate, release."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from identity import audit, policy, quotas
from identity.context import Context
from identity.errors import Conflict, InvalidInput, NotFound

from ..models import FloatingIP, IPAllocation, Network, Port
from . import ipam
from .lifecycle import FLOATING_IP_LIFECYCLE

F = FloatingIP


def allocate_floating_ip(ctx: Context, *, network: Any, ip_address: Any = None) -> FloatingIP:
    """An address of an external network's subnet, held by the project (``DOWN`` until associated)."""
    policy.enforce(ctx, "networking:floating_ip:create")
    network = network if isinstance(network, Network) else Network.objects.resolve(ctx, network, "network")
    if not network.external:
        raise InvalidInput(
            f"Network {network.name} is not external: floating IPs come from external networks."
        )
    subnets = list(network.subnets.filter(ip_version=4).order_by("created"))
    if not subnets:
        raise Conflict(f"External network {network.name} has no IPv4 subnet.", code="no_subnet")
    with transaction.atomic():
        quotas.enforce(ctx.project, {"floating_ips": 1}, ctx.user)
        allocation = None
        for n, subnet in enumerate(subnets):
            try:
                allocation = ipam.allocate(subnet, requested=ip_address)
                break
            except Conflict:
                if ip_address not in (None, "") or n == len(subnets) - 1:
                    raise
        try:
            with transaction.atomic():
                fip = FloatingIP.objects.create(
                    network=network,
                    project=ctx.project,
                    user=ctx.user,
                    name=allocation.address,
                    allocation=allocation,
                    address=allocation.address,
                    status=F.DOWN,
                )
        except IntegrityError:
            raise Conflict(f"Address {allocation.address} is held already.", code="ip_in_use") from None
        audit.record(ctx, "floating_ip", fip.pk, "create", message=fip.address)
    return fip


def associate(ctx: Context, fip: FloatingIP, port: Any, idempotency_key: str | None = None) -> FloatingIP:
    """NAT the floating IP to a port's fixed IP: the port must be the project's own (another
    project's port is not even seen) on a network with an IPv4 address."""
    policy.enforce(ctx, "networking:floating_ip:associate")
    target = port if isinstance(port, Port) else Port.objects.resolve(ctx, port, "port")
    fixed = (
        IPAllocation.objects.filter(port=target, subnet__ip_version=4)
        .order_by("id")
        .values_list("address", flat=True)
        .first()
    )
    if fixed is None:
        raise InvalidInput(f"Port {target} has no IPv4 address to associate with.")
    with transaction.atomic():
        row = FloatingIP.objects.select_for_update().live().filter(pk=fip.pk).first()
        if row is None:
            raise NotFound("No such floating IP.")
        if row.port_id == target.pk and row.status in (F.ACTIVE,) and not row.busy:
            return row
        if row.port_id is not None and row.port_id != target.pk and row.status != F.DOWN:
            raise Conflict(
                f"Floating IP {row.address} is associated with port {row.port_id}: disassociate it first.",
                code="in_use",
            )
        FLOATING_IP_LIFECYCLE.check(ctx, row, FLOATING_IP_LIFECYCLE.transitions["associate"])
        if FloatingIP.objects.live().filter(port=target).exclude(pk=row.pk).exists():
            raise Conflict(f"Port {target} has a floating IP already.", code="in_use")
        try:
            with transaction.atomic():
                FloatingIP.objects.filter(pk=row.pk).update(port=target, fixed_ip=fixed)
        except IntegrityError:
            raise Conflict(f"Port {target} has a floating IP already.", code="in_use") from None
        row.port_id, row.fixed_ip = target.pk, fixed
        return FLOATING_IP_LIFECYCLE.begin(ctx, row, "associate", idempotency_key=idempotency_key)


def disassociate(ctx: Context, fip: FloatingIP, idempotency_key: str | None = None) -> FloatingIP:
    policy.enforce(ctx, "networking:floating_ip:disassociate")
    if fip.port_id is None and fip.status == F.DOWN and not fip.busy:
        return fip
    return FLOATING_IP_LIFECYCLE.begin(ctx, fip, "disassociate", idempotency_key=idempotency_key)


def release_floating_ip(ctx: Context, fip: FloatingIP) -> None:
    """Give the address back to its external network (refused while associated: disassociate first)."""
    policy.enforce(ctx, "networking:floating_ip:delete")
    with transaction.atomic():
        row = FloatingIP.objects.select_for_update().live().filter(pk=fip.pk).first()
        if row is None:
            raise NotFound("No such floating IP.")
        if row.busy or row.status != F.DOWN or row.port_id is not None:
            raise Conflict(
                f"Floating IP {row.address} is {row.display_status}: disassociate it before releasing it.",
                code="in_use",
            )
        allocation_id = row.allocation_id
        address = row.address
        row.status, row.address, row.allocation = F.DELETED, None, None
        row.save(update_fields=["status", "address", "allocation", "updated"])
        IPAllocation.objects.filter(pk=allocation_id).delete()
        audit.record(ctx, "floating_ip", row.pk, "delete", project=row.project, message=address or "")


__all__ = ["allocate_floating_ip", "associate", "disassociate", "release_floating_ip"]
