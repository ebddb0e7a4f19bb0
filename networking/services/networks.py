"""Networks and subnets, the user's side: create (placed on a network host, a VLAN id and bridge
taken from the configured range under a database constraint, quota-checked, in one transaction with
the intent), delete, the project's default network made on first use; subnets with full validation.

Nothing here talks to a host: each change records an Operation the conductor carries to the
network's host (``network.<host>``).
"""

from __future__ import annotations

import random
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q

from identity import audit, policy, quotas
from identity.context import Context
from identity.errors import Conflict, InvalidInput, NotFound
from identity.names import clean_name
from identity.validators import clean_bool, clean_description, clean_int
from workers.lifecycle import clean_idempotency_key, create_with_transition
from workers.models import Host

from ..models import FloatingIP, Network, Port, SecurityGroup, SecurityGroupRule, Subnet
from . import ipam
from .lifecycle import NETWORK_LIFECYCLE

N = Network
MAX_NAME = 255
MAX_DESCRIPTION = 1024
DEFAULT_NAME = "default"
VLAN_TRIES = 20


# --- quota counters -------------------------------------------------------------------------------


def count_usage(project, user=None) -> dict[str, int]:
    """Networks, ports, floating IPs, security groups and rules a project holds: one query."""
    live = "project_id = %s AND status <> 'DELETED'"
    owned = "project_id = %s"
    tables = {
        "networks": (Network, live),
        "ports": (Port, live),
        "floating_ips": (FloatingIP, live),
        "security_groups": (SecurityGroup, owned),
        "security_group_rules": (SecurityGroupRule, owned),
    }
    return quotas.count_by_sql(
        project,
        {
            name: f"SELECT COUNT(*) FROM {model._meta.db_table} WHERE {where}"
            for name, (model, where) in tables.items()
        },
    )


def register_quota_counters() -> None:
    quotas.register_usage_counters(
        ["networks", "ports", "floating_ips", "security_groups", "security_group_rules"], count_usage
    )


# --- VLANs and placement ----------------------------------------------------------------------------


def vlan_range() -> tuple[int, int]:
    """``ZENITH_NETWORK_VLAN_RANGE`` ("first-last") as numbers inside 1-4094."""
    text = str(settings.ZENITH_NETWORK_VLAN_RANGE)
    try:
        first, last = (int(part) for part in text.split("-", 1))
    except ValueError:
        raise InvalidInput(f"ZENITH_NETWORK_VLAN_RANGE {text!r} is not 'first-last'.") from None
    if not 1 <= first <= last <= 4094:
        raise InvalidInput(f"ZENITH_NETWORK_VLAN_RANGE {text!r} must lie within 1-4094.")
    return first, last


def _free_vlans(count: int = 32) -> list[int]:
    first, last = vlan_range()
    used = set(Network.objects.filter(vlan__isnull=False).values_list("vlan", flat=True))
    free = []
    for vlan in range(first, last + 1):
        if vlan not in used:
            free.append(vlan)
            if len(free) >= count:
                break
    return free


def vlan_usage() -> dict[str, int]:
    """How much of the VLAN range live networks hold (the admin's view)."""
    first, last = vlan_range()
    used = Network.objects.filter(vlan__gte=first, vlan__lte=last).count()
    return {"first": first, "last": last, "size": last - first + 1, "used": used}


def place_network() -> Host:
    """The up, enabled network host with the fewest live networks; Conflict saying why otherwise."""
    hosts = (
        Host.objects.with_role("network")
        .up()
        .filter(enabled=True)
        .annotate(load=Count("networks", filter=~Q(networks__status=N.DELETED)))
        .order_by("load", "name")
    )
    host = hosts.first()
    if host is None:
        known = Host.objects.with_role("network").count()
        reason = (
            "no host has the network role"
            if not known
            else f"none of the {known} network host(s) is up and enabled"
        )
        raise Conflict(f"No valid network host was found: {reason}.", code="no_valid_host")
    return host


# --- networks ---------------------------------------------------------------------------------------


def create_network(
    ctx: Context,
    *,
    name: str,
    description: str | None = None,
    shared: bool = False,
    external: bool = False,
    mtu: int = 1500,
    idempotency_key: str | None = None,
    is_default: bool = False,
) -> tuple[Network, bool]:
    """A project network on a network host, with a VLAN id and bridge of its own; the conductor has
    the host define it after commit. Shared and external networks are for cloud admins. Returns
    ``(network, created)``: False for a retry with the same Idempotency-Key."""
    policy.enforce(ctx, "networking:network:create")
    name = clean_name(name, "Network", MAX_NAME)
    description = clean_description(description, MAX_DESCRIPTION)
    if clean_bool(shared, "shared"):
        policy.enforce(ctx, "networking:network:create_shared")
    if clean_bool(external, "external"):
        policy.enforce(ctx, "networking:network:create_external")
    clean_int(mtu, "mtu", 576, 9000)
    key = clean_idempotency_key(idempotency_key)
    if key:
        existing = _replay(ctx, key, name)
        if existing is not None:
            return existing, False
    for _attempt in range(VLAN_TRIES):
        free = _free_vlans()
        if not free:
            first, last = vlan_range()
            raise Conflict(f"Every VLAN id of the range {first}-{last} is taken.", code="vlan_exhausted")
        vlan = random.choice(free[:8])  # racing creates mostly pick different ids
        try:
            with transaction.atomic():
                quotas.enforce(ctx.project, {"networks": 1}, ctx.user)
                host = place_network()
                network = create_with_transition(
                    ctx,
                    Network,
                    "network",
                    key,
                    name=name,
                    description=description,
                    shared=shared,
                    external=external,
                    is_default=is_default,
                    mtu=mtu,
                    vlan=vlan,
                    bridge=f"znb{vlan}",
                    host=host,
                    status=N.BUILD,
                    idempotency_key=key,
                )
            return network, True
        except IntegrityError:
            if key:
                existing = _replay(ctx, key, name)
                if existing is not None:
                    return existing, False
            if is_default and default_network_of(ctx.project) is not None:
                raise
            continue  # another network took this VLAN first: take another
    raise Conflict("Could not take a free VLAN id after several tries: try again.", code="vlan_busy")


def _replay(ctx: Context, key: str, name: str) -> Network | None:
    network = Network.objects.filter(project=ctx.project, idempotency_key=key).first()
    if network is None:
        return None
    if network.name != name:
        raise Conflict(
            f"Idempotency-Key {key!r} was already used for a different request (network {network.pk})."
        )
    return network


def default_network_of(project) -> Network | None:
    return Network.objects.live().filter(project=project, is_default=True).first()


def ensure_default_network(ctx: Context) -> Network:
    """The project's default network (with a subnet of ``ZENITH_DEFAULT_NETWORK_CIDR``), made the
    first time it is needed; concurrent first uses make one (a database constraint decides)."""
    existing = default_network_of(ctx.project)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            network, _ = create_network(ctx, name=DEFAULT_NAME, is_default=True)
            create_subnet(
                ctx,
                network=network,
                name=DEFAULT_NAME,
                cidr=settings.ZENITH_DEFAULT_NETWORK_CIDR,
                dns_servers=list(settings.ZENITH_DEFAULT_DNS_SERVERS),
                sync=False,  # the network's create sends it with this subnet
            )
    except IntegrityError:
        existing = default_network_of(ctx.project)
        if existing is None:
            raise
        return existing
    return network


def delete_network(ctx: Context, network: Network, idempotency_key: str | None = None) -> Network:
    """Delete: refused while it has ports or floating IPs (the 409 says which)."""
    _owner_or_admin(ctx, network, "delete")
    return NETWORK_LIFECYCLE.begin(ctx, network, "delete", idempotency_key=idempotency_key)


def sync_network(ctx: Context, network: Network, idempotency_key: str | None = None) -> Network:
    """Send the network to its host again (idempotent ensure: subnets, every port's DHCP entry)."""
    return NETWORK_LIFECYCLE.begin(ctx, network, "update", idempotency_key=idempotency_key)


@transaction.atomic
def update_network(ctx: Context, network: Network, *, name: Any = None, description: Any = None) -> Network:
    """Rename a network or change its description (no host is told: neither reaches it)."""
    policy.enforce(ctx, "networking:network:update")
    _owner_or_admin(ctx, network, "update")
    row = Network.objects.select_for_update().live().filter(pk=network.pk).first()
    if row is None:
        raise NotFound("No such network.")
    fields = []
    if name is not None:
        row.name = clean_name(name, "Network", MAX_NAME)
        fields.append("name")
    if description is not None:
        row.description = clean_description(description, MAX_DESCRIPTION)
        fields.append("description")
    if fields:
        row.save(update_fields=[*fields, "updated"])
        audit.record(ctx, "network", row.pk, "update", project=row.project, message=", ".join(fields))
    return row


def _owner_or_admin(ctx: Context, network: Network, verb: str) -> None:
    """Shared and external networks are seen by every project, changed only by their own (or admins)."""
    if not ctx.is_admin and (ctx.project is None or network.project_id != ctx.project.pk):
        raise NotFound(f"Network {network.name} is not this project's: it cannot {verb} it.")


# --- subnets ----------------------------------------------------------------------------------------


def create_subnet(
    ctx: Context,
    *,
    network: Any,
    cidr: Any,
    name: Any = "",
    ip_version: Any = None,
    gateway: Any = ipam.DEFAULT,
    allocation_pools: Any = None,
    dns_servers: Any = None,
    dhcp: Any = True,
    host_routes: Any = None,
    sync: bool = True,
) -> Subnet:
    """A subnet of one of the project's networks: 400 naming the reason for a malformed CIDR, a
    gateway or pool outside it, overlapping pools, a CIDR overlapping another subnet of the network
    or of the project. The network's host is told (an ``update`` of the network)."""
    policy.enforce(ctx, "networking:subnet:create")
    if not isinstance(network, Network):
        network = Network.objects.resolve(ctx, network, "network")
    _owner_or_admin(ctx, network, "add a subnet to")
    name = "" if name in (None, "") else clean_name(name, "Subnet", MAX_NAME)
    fields = ipam.clean_subnet(
        cidr=cidr,
        ip_version=ip_version,
        gateway=gateway,
        allocation_pools=allocation_pools,
        dns_servers=dns_servers,
        host_routes=host_routes,
    )
    dhcp = clean_bool(dhcp, "dhcp")
    with transaction.atomic():
        row = Network.objects.select_for_update().live().filter(pk=network.pk).first()
        if row is None or row.busy == N.DELETING:
            raise Conflict(f"Network {network.name} is being deleted.", code="invalid_state")
        net = ipam.parse_cidr(fields["cidr"])
        clash = ipam.overlapping(net, Subnet.objects.filter(network=row))
        if clash is not None:
            raise InvalidInput(f"cidr {net} overlaps subnet {clash.cidr} of network {row.name}.")
        clash = ipam.overlapping(
            net,
            Subnet.objects.filter(network__project_id=row.project_id)
            .exclude(network__status=N.DELETED)
            .select_related("network"),
        )
        if clash is not None:
            raise InvalidInput(
                f"cidr {net} overlaps subnet {clash.cidr} of the project's network {clash.network.name}."
            )
        subnet = Subnet.objects.create(network=row, project_id=row.project_id, name=name, dhcp=dhcp, **fields)
        audit.record(ctx, "subnet", subnet.pk, "create", project=row.project, message=fields["cidr"])
        if sync:
            NETWORK_LIFECYCLE.begin(ctx, row, "update")
    return subnet


def delete_subnet(ctx: Context, subnet: Subnet) -> None:
    """Delete a subnet none of whose addresses is handed out (409 naming how many are)."""
    policy.enforce(ctx, "networking:subnet:delete")
    network = subnet.network
    _owner_or_admin(ctx, network, "delete a subnet of")
    with transaction.atomic():
        row = Network.objects.select_for_update().get(pk=network.pk)
        used = subnet.allocations.count()
        if used:
            raise Conflict(
                f"Subnet {subnet.name or subnet.cidr} has {used} address(es) in use: delete their ports "
                "or floating IPs first.",
                code="in_use",
            )
        audit.record(ctx, "subnet", subnet.pk, "delete", project=row.project, message=subnet.cidr)
        subnet.delete()
        if row.status != N.DELETED and row.busy != N.DELETING:
            NETWORK_LIFECYCLE.begin(ctx, row, "update")


__all__ = [
    "count_usage",
    "create_network",
    "create_subnet",
    "default_network_of",
    "delete_network",
    "delete_subnet",
    "ensure_default_network",
    "place_network",
    "register_quota_counters",
    "sync_network",
    "update_network",
    "vlan_range",
    "vlan_usage",
]
