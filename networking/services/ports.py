"""Ports: create (a unique MAC, a fixed IP from the subnet's pools or a requested free one, security
groups; quota-checked, recorded with the Operation that has the network host add its DHCP entry),
update its groups, delete (its address goes back to the pool once the host removed the entry), and
what compute calls for its instances: ``allocate_ports``, ``bind_ports``, ``release_ports``.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from identity import audit, policy, quotas
from identity.context import Context
from identity.errors import Conflict, InvalidInput, NotFound
from identity.names import clean_name
from identity.scoping import is_uuid
from workers.lifecycle import clean_idempotency_key, create_with_transition
from workers.messages import NicSpec

from ..models import FloatingIP, Network, Port, Subnet, generate_mac
from . import ipam, security
from .lifecycle import FLOATING_IP_LIFECYCLE, PORT_LIFECYCLE, nic_specs
from .networks import ensure_default_network

P = Port
MAC_TRIES = 5
DEVICE_OWNER_COMPUTE = "compute:nova"


def _network_for_port(ctx: Context, ref: Any) -> Network:
    """A network the project may put a port on: its own or a shared one (external: admins only);
    another project's private network is not even seen (a 400 saying it is not available)."""
    network = ref if isinstance(ref, Network) else Network.objects.resolve(ctx, ref, "network")
    if network.external and not ctx.is_admin and network.project_id != ctx.project.pk:
        raise InvalidInput(f"Network {network.name} is external: it takes floating IPs, not ports.")
    if network.busy == Network.DELETING or network.status == Network.DELETED:
        raise Conflict(f"Network {network.name} is being deleted.", code="invalid_state")
    return network


def _subnet_of(network: Network, ref: Any) -> Subnet:
    subnets = list(network.subnets.order_by("ip_version", "created"))
    if not subnets:
        raise Conflict(f"Network {network.name} has no subnet: create one first.", code="no_subnet")
    if ref in (None, ""):
        return subnets[0]
    for subnet in subnets:
        if str(subnet.pk) == str(ref) or (subnet.name and subnet.name == ref):
            return subnet
    raise InvalidInput(f"Network {network.name} has no subnet {ref!r}.")


def _insert_port(ctx: Context, key: str, **fields) -> Port:
    for _attempt in range(MAC_TRIES):
        try:
            with transaction.atomic():
                return create_with_transition(ctx, Port, "port", key, mac=generate_mac(), **fields)
        except IntegrityError:
            if key and Port.objects.filter(project=ctx.project, idempotency_key=key).exists():
                raise
            continue  # the same MAC was drawn twice: draw again
    raise Conflict("Could not generate a unique MAC address: try again.", code="mac_busy")


def create_port(
    ctx: Context,
    *,
    network: Any,
    name: Any = "",
    subnet: Any = None,
    ip_address: Any = None,
    security_groups: Any = None,
    instance_id: Any = None,
    device_owner: Any = "",
    idempotency_key: str | None = None,
) -> tuple[Port, bool]:
    """A port on a network the project may use, with one fixed IP of ``subnet`` (its first by
    default): ``ip_address`` if free, else the first free address of the pools; an exhausted pool is
    a Conflict naming the subnet. Returns ``(port, created)``: False for a replayed Idempotency-Key."""
    policy.enforce(ctx, "networking:port:create")
    name = "" if name in (None, "") else clean_name(name, "Port", 255)
    if instance_id not in (None, "") and not is_uuid(instance_id):
        raise InvalidInput("instance_id must be a UUID.")
    if not isinstance(device_owner, str) or len(device_owner) > 64:
        raise InvalidInput("device_owner is text of at most 64 characters.")
    key = clean_idempotency_key(idempotency_key)
    if key:
        existing = Port.objects.filter(project=ctx.project, idempotency_key=key).first()
        if existing is not None:
            return existing, False
    network = _network_for_port(ctx, network)
    target = _subnet_of(network, subnet)
    groups = security.resolve_groups(ctx, security_groups)
    try:
        with transaction.atomic():
            quotas.enforce(ctx.project, {"ports": 1}, ctx.user)
            port = _insert_port(
                ctx,
                key,
                name=name,
                network=network,
                instance_id=instance_id or None,
                device_owner=device_owner,
                status=P.DOWN,
                idempotency_key=key,
            )
            ipam.allocate(target, port=port, requested=ip_address)
            port.security_groups.set(groups)
    except IntegrityError:
        existing = Port.objects.filter(project=ctx.project, idempotency_key=key).first() if key else None
        if existing is None:
            raise
        return existing, False
    return port, True


def update_port(ctx: Context, port: Port, *, name: Any = None, security_groups: Any = None) -> Port:
    """Rename a port or replace its security groups (a bound port gets its new filter)."""
    policy.enforce(ctx, "networking:port:update")
    with transaction.atomic():
        row = Port.objects.select_for_update().live().filter(pk=port.pk).first()
        if row is None:
            raise NotFound("No such port.")
        if name is not None:
            row.name = "" if name == "" else clean_name(name, "Port", 255)
            row.save(update_fields=["name", "updated"])
        if security_groups is not None:
            groups = security.resolve_groups(ctx, security_groups) if security_groups else []
            row.security_groups.set(groups)
            if row.host and row.busy != P.DELETING:
                PORT_LIFECYCLE.begin(ctx, row, "update_filter")
        audit.record(ctx, "port", row.pk, "update", project=row.project)
    return row


def delete_port(ctx: Context, port: Port, idempotency_key: str | None = None) -> Port:
    """Delete a port: its floating IP (if any) is disassociated, its network host drops its DHCP
    entry, and its address returns to the pool."""
    with transaction.atomic():
        for fip in FloatingIP.objects.live().filter(port_id=port.pk, status=FloatingIP.ACTIVE, busy=""):
            FLOATING_IP_LIFECYCLE.begin(ctx, fip, "disassociate")
        return PORT_LIFECYCLE.begin(ctx, port, "delete", idempotency_key=idempotency_key)


def ports_rows(queryset):
    """What every port row shows, in a fixed number of queries."""
    return (
        queryset.select_related("network", "operation")
        .prefetch_related("fixed_ips__subnet", "security_groups")
        .defer("operation__payload", "operation__result")
    )


# --- instances (compute calls these) ---------------------------------------------------------------


def allocate_ports(
    ctx: Context, instance_id, networks: Any = None, security_groups: Any = None
) -> list[NicSpec]:
    """The ports of a launching instance, one per network named (the project's default network when
    none is), each with a fixed IP and the security groups named (the default group when none is),
    in one transaction: an exhausted pool or a quota refuses all of them (a Conflict naming the
    subnet). Returns what the spawn needs, one ``NicSpec`` per port, in order."""
    refs = list(networks or [])
    if not refs:
        refs = [ensure_default_network(ctx)]
    if len(refs) > 16:
        raise InvalidInput("An instance has at most 16 networks.")
    with transaction.atomic():
        ports = [
            create_port(
                ctx,
                network=ref,
                instance_id=str(instance_id),
                security_groups=security_groups,
                device_owner=DEVICE_OWNER_COMPUTE,
            )[0]
            for ref in refs
        ]
    rows = list(Port.objects.select_related("network").filter(pk__in=[p.pk for p in ports]))
    order = {p.pk: n for n, p in enumerate(ports)}
    rows.sort(key=lambda p: order[p.pk])
    return nic_specs(rows)


def instance_ports(instance_id) -> list[Port]:
    return list(ports_rows(Port.objects.live().filter(instance_id=instance_id)).order_by("created"))


def instance_nics(instance_id) -> list[NicSpec]:
    """The NICs of an instance's live ports, in creation order (a spawn again, e.g. on another host)."""
    return nic_specs([p for p in instance_ports(instance_id) if p.busy != P.DELETING])


def bind_ports(instance_id, host_name: str) -> int:
    """The instance runs on compute host ``host_name``: its ports are there (filters go there)."""
    return Port.objects.live().filter(instance_id=instance_id).update(host=host_name)


def addresses_of(instance_ids) -> dict[str, dict[str, list[dict]]]:
    """Nova's ``addresses`` of instances: ``{instance: {network name: [{addr, version, mac, type}]}}``
    with floating IPs as ``floating`` (a fixed number of queries)."""
    out: dict[str, dict[str, list[dict]]] = {}
    ports = ports_rows(Port.objects.live().filter(instance_id__in=list(instance_ids))).prefetch_related(
        "floating_ips"
    )
    for port in ports.order_by("created"):
        entry = out.setdefault(str(port.instance_id), {}).setdefault(port.network.name, [])
        for ip in port.fixed_ips.all():
            entry.append(
                {"addr": ip.address, "version": ip.subnet.ip_version, "mac": port.mac, "type": "fixed"}
            )
        for fip in port.floating_ips.all():
            if fip.status != FloatingIP.DELETED:
                entry.append({"addr": fip.address, "version": 4, "mac": port.mac, "type": "floating"})
    return out


def release_ports(instance_id, ctx: Context | None = None) -> list[Port]:
    """The instance is gone: each of its ports is deleted (floating IPs disassociated, addresses
    back to their pools once the network host dropped the DHCP entries). Returns them."""
    from identity.context import system_context

    ctx = ctx or system_context()
    released = []
    for port in Port.objects.live().filter(instance_id=instance_id).exclude(busy=P.DELETING):
        try:
            released.append(delete_port(ctx, port))
        except (Conflict, NotFound):
            continue  # deleted meanwhile
    return released


__all__ = [
    "DEVICE_OWNER_COMPUTE",
    "addresses_of",
    "allocate_ports",
    "bind_ports",
    "create_port",
    "delete_port",
    "instance_nics",
    "instance_ports",
    "ports_rows",
    "release_ports",
    "update_port",
]
