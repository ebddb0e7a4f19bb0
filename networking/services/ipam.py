"""Address math (the stdlib ``ipaddress``) and allocation: a subnet's validation and default pools,
and handing out one address of a subnet's pools (the first free one, or one asked for).

An address is handed out by inserting its ``IPAllocation`` row, unique per subnet: two transactions
racing for one address cannot both insert it; the loser takes the next free one, and a subnet with no
free address left is a Conflict naming it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from django.db import IntegrityError, transaction

from identity.errors import Conflict, InvalidInput

from ..models import IPAllocation, Subnet

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_DNS = 5
MAX_ROUTES = 20
MAX_POOLS = 20
DEFAULT = object()  # a gateway not given: the subnet's first address


def parse_cidr(value: Any, what: str = "cidr") -> IPNetwork:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be a network in CIDR notation, e.g. 10.0.0.0/24.")
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise InvalidInput(f"{what} {value!r} is not a valid network: {exc}.") from None


def parse_address(value: Any, what: str) -> IPAddress:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be an IP address.")
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise InvalidInput(f"{what} {value!r} is not an IP address.") from None


def _usable(net: IPNetwork) -> tuple[IPAddress, IPAddress]:
    """First and last address a host may have (IPv4 keeps the network and broadcast addresses out)."""
    if net.version == 4 and net.prefixlen < 31:
        return net.network_address + 1, net.broadcast_address - 1
    if net.version == 6:
        return net.network_address + 1, net.broadcast_address
    return net.network_address, net.broadcast_address


def _inside(net: IPNetwork, address: IPAddress) -> bool:
    first, last = _usable(net)
    return address.version == net.version and first <= address <= last


def clean_subnet(
    *,
    cidr: Any,
    ip_version: Any = None,
    gateway: Any = DEFAULT,
    allocation_pools: Any = None,
    dns_servers: Any = None,
    host_routes: Any = None,
) -> dict:
    """The subnet's fields checked and in canonical text: a 400 naming the reason for a malformed
    CIDR, a gateway outside it, pools outside it, overlapping or holding the gateway."""
    net = parse_cidr(cidr)
    if ip_version is None:
        ip_version = net.version
    if ip_version not in (4, 6):
        raise InvalidInput("ip_version must be 4 or 6.")
    if net.version != ip_version:
        raise InvalidInput(f"cidr {net} is an IPv{net.version} network, not IPv{ip_version}.")
    first, last = _usable(net)
    if int(last) - int(first) < 1:
        raise InvalidInput(f"cidr {net} is too small: a subnet needs room for a gateway and a port.")
    if gateway is DEFAULT:
        gw: IPAddress | None = first
    elif gateway in (None, ""):
        gw = None
    else:
        gw = parse_address(gateway, "gateway")
        if not _inside(net, gw):
            raise InvalidInput(f"gateway {gw} is not a usable address inside the subnet {net}.")
    pools = _clean_pools(net, gw, allocation_pools)
    dns = _clean_dns(dns_servers)
    routes = _clean_routes(net, host_routes)
    return {
        "cidr": str(net),
        "ip_version": net.version,
        "gateway": str(gw) if gw is not None else "",
        "allocation_pools": [[str(a), str(b)] for a, b in pools],
        "dns_servers": dns,
        "host_routes": routes,
    }


def default_pools(net: IPNetwork, gateway: IPAddress | None) -> list[tuple[IPAddress, IPAddress]]:
    """Every usable address of the subnet but the gateway."""
    first, last = _usable(net)
    if gateway is None or not first <= gateway <= last:
        return [(first, last)]
    pools = []
    if gateway > first:
        pools.append((first, gateway - 1))
    if gateway < last:
        pools.append((gateway + 1, last))
    return pools


def _clean_pools(net: IPNetwork, gateway: IPAddress | None, value: Any) -> list[tuple[IPAddress, IPAddress]]:
    if value in (None, []):
        return default_pools(net, gateway)
    if not isinstance(value, list) or len(value) > MAX_POOLS:
        raise InvalidInput(f"allocation_pools is a list of at most {MAX_POOLS} [start, end] pairs.")
    pools = []
    for item in value:
        if isinstance(item, dict) and set(item) == {"start", "end"}:
            item = [item["start"], item["end"]]
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise InvalidInput("Each allocation pool is a [start, end] pair (or {start, end}).")
        start = parse_address(item[0], "allocation pool start")
        end = parse_address(item[1], "allocation pool end")
        for address in (start, end):
            if not _inside(net, address):
                raise InvalidInput(f"allocation pool address {address} is outside the subnet {net}.")
        if start > end:
            raise InvalidInput(f"allocation pool {start}-{end} ends before it starts.")
        if gateway is not None and start <= gateway <= end:
            raise InvalidInput(f"allocation pool {start}-{end} holds the gateway {gateway}.")
        pools.append((start, end))
    pools.sort()
    for (a_start, a_end), (b_start, b_end) in zip(pools, pools[1:], strict=False):
        if b_start <= a_end:
            raise InvalidInput(f"allocation pools {a_start}-{a_end} and {b_start}-{b_end} overlap.")
    return pools


def _clean_dns(value: Any) -> list[str]:
    if value in (None, []):
        return []
    if not isinstance(value, list) or len(value) > MAX_DNS:
        raise InvalidInput(f"dns_servers is a list of at most {MAX_DNS} addresses.")
    return [str(parse_address(v, "dns server")) for v in value]


def _clean_routes(net: IPNetwork, value: Any) -> list[list[str]]:
    if value in (None, []):
        return []
    if not isinstance(value, list) or len(value) > MAX_ROUTES:
        raise InvalidInput(f"host_routes is a list of at most {MAX_ROUTES} [destination, nexthop] pairs.")
    routes = []
    for item in value:
        if isinstance(item, dict) and set(item) == {"destination", "nexthop"}:
            item = [item["destination"], item["nexthop"]]
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise InvalidInput("Each host route is a [destination, nexthop] pair.")
        destination = parse_cidr(item[0], "host route destination")
        nexthop = parse_address(item[1], "host route nexthop")
        if not _inside(net, nexthop):
            raise InvalidInput(f"host route nexthop {nexthop} is not inside the subnet {net}.")
        routes.append([str(destination), str(nexthop)])
    return routes


def overlapping(net: IPNetwork, subnets) -> Subnet | None:
    """The first of ``subnets`` whose CIDR overlaps ``net``."""
    for subnet in subnets:
        other = subnet.net
        if other.version == net.version and other.overlaps(net):
            return subnet
    return None


# --- allocation ---------------------------------------------------------------------------------------


def _candidates(subnet: Subnet, used: set[str]) -> Iterator[str]:
    """The subnet's pool addresses not in ``used``, in order (lazy: an IPv6 /64 is never listed)."""
    gateway = subnet.gateway
    for start, end in subnet.pool_ranges():
        address = start
        while address <= end:
            text = str(address)
            if text not in used and text != gateway:
                yield text
            address += 1


def in_pools(subnet: Subnet, address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(start <= ip <= end for start, end in subnet.pool_ranges())


def free_count(subnet: Subnet, used=None) -> int:
    """Addresses still free in the subnet's pools (``used``: the subnet's allocated addresses, read
    when not given); an address handed out by request outside the pools takes none of them."""
    if used is None:
        used = IPAllocation.objects.filter(subnet=subnet).values_list("address", flat=True)
    return max(subnet.pool_size - sum(1 for a in used if in_pools(subnet, a)), 0)


def _insert(subnet: Subnet, address: str, port=None) -> IPAllocation | None:
    try:
        with transaction.atomic():  # a savepoint: a lost race leaves the caller's transaction usable
            return IPAllocation.objects.create(subnet=subnet, address=address, port=port)
    except IntegrityError:
        return None


def allocate(subnet: Subnet, *, port=None, requested: Any = None) -> IPAllocation:
    """One address of ``subnet`` for ``port`` (None: a floating IP's): ``requested`` if it is inside
    and free, else the first free address of the pools. Conflict naming the subnet when none is left."""
    label = f"{subnet.name} ({subnet.cidr})" if subnet.name else subnet.cidr
    if requested not in (None, ""):
        address = parse_address(requested, "ip_address")
        if not _inside(subnet.net, address):
            raise InvalidInput(f"ip_address {address} is not a usable address of subnet {label}.")
        if str(address) == subnet.gateway:
            raise InvalidInput(f"ip_address {address} is the gateway of subnet {label}.")
        row = _insert(subnet, str(address), port)
        if row is None:
            raise Conflict(f"ip_address {address} is already in use on subnet {label}.", code="ip_in_use")
        return row
    for _round in range(3):
        used = set(IPAllocation.objects.filter(subnet=subnet).values_list("address", flat=True))
        for tries, address in enumerate(_candidates(subnet, used)):
            row = _insert(subnet, address, port)
            if row is not None:
                return row
            if tries >= 32:  # many lost races: read what is taken again
                break
        else:
            break
    raise Conflict(
        f"No free address is left on subnet {label}: its allocation pools are exhausted.",
        code="ip_exhausted",
    )


def release(allocations) -> int:
    """Give addresses back to their pools."""
    return IPAllocation.objects.filter(pk__in=[a.pk for a in allocations]).delete()[0]
