"""The network's, the port's and the floating IP's state machines, declared once, and the host
messages built from the models (``workers.messages``): a ``NetworkSpec`` with every DHCP host of the
network's ports to ``network.<host>`` (ensure is idempotent and replaces the DHCP entries whole, so
a port's create and delete both send it), ``AGENT_DELETE_NETWORK`` for a delete, a
``FloatingIpRequest`` to the external network's host, a ``PortFilter`` to the port's compute host.
"""

from __future__ import annotations

import ipaddress

from identity.context import Context
from identity.errors import Conflict
from workers import lifecycle, tasknames
from workers import services as ledger
from workers.lifecycle import HostWork, Transition
from workers.messages import (
    DhcpHost,
    FilterRule,
    FloatingIpRequest,
    MessageError,
    NetworkResult,
    NetworkSpec,
    NicSpec,
    PortFilter,
    SubnetSpec,
)
from workers.models import Host

from ..models import FloatingIP, IPAllocation, Network, Port, SecurityGroupRule

N, P, F = Network, Port, FloatingIP
NETWORK = "network"
COMPUTE = "compute"


# --- messages built from the models ---------------------------------------------------------------


def network_spec(network: Network, operation_id: str = "") -> NetworkSpec:
    """What the network host must have for ``network``: its subnets and the DHCP entry of every live
    port that is not being deleted (three queries)."""
    subnets = [
        SubnetSpec(
            cidr=s.cidr,
            ip_version=s.ip_version,
            gateway=s.gateway,
            dhcp=s.dhcp,
            allocation_pools=tuple(tuple(p) for p in s.allocation_pools),
            dns_servers=tuple(s.dns_servers),
            host_routes=tuple(tuple(r) for r in s.host_routes),
        )
        for s in network.subnets.order_by("created")
    ]
    rows = (
        IPAllocation.objects.filter(port__network=network, subnet__dhcp=True)
        .exclude(port__status=P.DELETED)
        .exclude(port__busy=P.DELETING)
        .values_list("port__mac", "address", "port__name", "port_id")
        .order_by("port__created", "id")
    )
    hosts = tuple(
        DhcpHost(mac=mac, ip=address, hostname=_hostname(name, port_id))
        for mac, address, name, port_id in rows
    )
    return NetworkSpec(
        network_id=str(network.pk),
        name=network.libvirt_name,
        bridge=network.bridge or "",
        vlan=network.vlan,
        external=network.external,
        mtu=network.mtu,
        subnets=tuple(subnets),
        dhcp_hosts=hosts,
        operation_id=str(operation_id),
    )


def _hostname(name: str, port_id) -> str:
    clean = "".join(c if c.isalnum() or c == "-" else "-" for c in (name or "").lower()).strip("-")
    return clean[:63] or f"host-{port_id.hex[:8]}"


def _as_cidr(address: str) -> str:
    ip = ipaddress.ip_address(address)
    return f"{ip}/{ip.max_prefixlen}"


def port_filters(ports: list[Port]) -> dict:
    """The ``PortFilter`` of each port (by id): its groups' rules, remote groups expanded into their
    members' fixed IPs (hosts never see a group). A fixed number of queries for any number of ports."""
    ids = [p.pk for p in ports]
    groups_of: dict = {}
    for port_id, group_id in Port.security_groups.through.objects.filter(port_id__in=ids).values_list(
        "port_id", "securitygroup_id"
    ):
        groups_of.setdefault(port_id, set()).add(group_id)
    all_groups = {g for gs in groups_of.values() for g in gs}
    rules = list(SecurityGroupRule.objects.filter(group_id__in=all_groups).order_by("created"))
    remote_ids = {r.remote_group_id for r in rules if r.remote_group_id}
    members: dict = {}
    if remote_ids:
        through = Port.security_groups.through.objects.filter(securitygroup_id__in=remote_ids)
        member_ports = dict(through.values_list("port_id", "securitygroup_id"))
        pairs = (
            IPAllocation.objects.filter(port_id__in=list(member_ports))
            .exclude(port__status=P.DELETED)
            .values_list("port_id", "address")
        )
        by_port: dict = {}
        for port_id, address in pairs:
            by_port.setdefault(port_id, []).append(address)
        for port_id, group_id in through.values_list("port_id", "securitygroup_id"):
            members.setdefault(group_id, []).extend(by_port.get(port_id, []))
    fixed: dict = {}
    for port_id, address in IPAllocation.objects.filter(port_id__in=ids).values_list("port_id", "address"):
        fixed.setdefault(port_id, []).append(address)
    out = {}
    for port in ports:
        expanded = []
        for rule in rules:
            if rule.group_id not in groups_of.get(port.pk, ()):
                continue
            version = 4 if rule.ethertype == "IPv4" else 6
            if rule.remote_group_id:
                remotes = [
                    _as_cidr(a)
                    for a in members.get(rule.remote_group_id, [])
                    if ipaddress.ip_address(a).version == version
                ]
            else:
                remotes = [rule.remote_cidr]
            expanded += [
                FilterRule(
                    direction=rule.direction,
                    ethertype=rule.ethertype,
                    protocol=rule.protocol,
                    port_min=rule.port_min,
                    port_max=rule.port_max,
                    remote_cidr=remote,
                )
                for remote in remotes
            ]
        out[port.pk] = PortFilter(
            port_id=str(port.pk),
            name=port.filter_name,
            mac=port.mac or "",
            ips=tuple(fixed.get(port.pk, [])),
            rules=tuple(expanded),
        )
    return out


def nic_specs(ports: list[Port]) -> list[NicSpec]:
    """What a spawn (or a hot plug) needs of each port: MAC, libvirt network, bridge, filter."""
    filters = port_filters(ports)
    return [
        NicSpec(
            port_id=str(p.pk),
            mac=p.mac or "",
            network=p.network.libvirt_name,
            bridge=p.network.bridge or "",
            filter=filters[p.pk],
            domain=f"zenith-{p.instance_id}" if p.instance_id else "",
        )
        for p in ports
    ]


def _answer(result: dict) -> NetworkResult:
    try:
        return NetworkResult.from_dict(result)
    except MessageError as exc:  # another shape: say so, never read defaults
        return NetworkResult(ok=False, error=f"the network host answered an unexpected message: {exc}")


def _down(host: Host | None) -> str:
    if host is None:
        return "it is on no network host"
    if not host.is_up():
        return f"network host {host.name} is down"
    return ""


def _settle_failed(machine, operation_id, resource_id, name: str, error: str) -> None:
    if machine.deleting and machine.transitions[name].busy == machine.deleting:
        machine.settle_delete(operation_id, resource_id, {"ok": False, "error": error})
    else:
        machine.settle(operation_id, resource_id, name, {"ok": False, "error": error})


# --- networks -------------------------------------------------------------------------------------

NETWORK_TRANSITIONS = (
    Transition(
        "create",
        frozenset(),  # recorded with the row by create_network
        "",
        N.ACTIVE,
        "Create",
        host_task=tasknames.AGENT_ENSURE_NETWORK,
        role=NETWORK,
        endpoint="",
    ),
    Transition(
        "update",
        frozenset({N.BUILD, N.ACTIVE, N.ERROR}),
        N.UPDATING,
        N.ACTIVE,
        "Sync",
        icon="arrow-repeat",
        message="Applying network {name} on its host again.",
        host_task=tasknames.AGENT_ENSURE_NETWORK,
        role=NETWORK,
        while_busy=True,  # ensure is idempotent and sends what is true when it runs
        endpoint="sync",
        doc="Apply the network (subnets, DHCP entries) on its network host again: 202.",
    ),
    Transition(
        "delete",
        frozenset({N.BUILD, N.ACTIVE, N.ERROR}),
        N.DELETING,
        N.DELETED,
        "Delete",
        icon="trash",
        style="danger",
        confirm="Delete network {name}?",
        message="Deleting network {name}.",
        host_task=tasknames.AGENT_DELETE_NETWORK,
        role=NETWORK,
        while_busy=True,
        endpoint="",
    ),
)


class NetworkLifecycle(lifecycle.Lifecycle):
    """Networks: their network host defines, updates and removes the libvirt network."""

    kind = "network"
    model = Network
    state_field = "status"
    busy_field = "busy"
    deleted = N.DELETED
    deleting = N.DELETING
    delete_failed = N.ERROR
    host_role = NETWORK
    policy_prefix = "networking:network"

    def refuse_after_state(self, ctx: Context, obj, transition: Transition) -> None:
        if transition.name != "delete":
            return
        ports = Port.objects.live().filter(network_id=obj.pk).count()
        if ports:
            raise Conflict(f"Network {obj.name} has {ports} port(s): delete them first.", code="in_use")
        fips = FloatingIP.objects.live().filter(network_id=obj.pk).count()
        if fips:
            raise Conflict(
                f"Network {obj.name} holds {fips} floating IP(s): release them first.", code="in_use"
            )

    def host_work(self, operation_id, resource_id, transition: Transition, params: dict) -> HostWork | None:
        network = Network.objects.select_related("host").filter(pk=resource_id).first()
        if network is None:
            ledger.fail(operation_id, "the network no longer exists")
            return None
        problem = _down(network.host)
        if problem:
            if transition.name == "delete" and network.host is None:  # never placed: nothing to remove
                self.settle_delete(
                    operation_id, resource_id, {"ok": True, "message": "deleted (never placed)"}
                )
            else:
                _settle_failed(
                    self, operation_id, resource_id, transition.name, f"cannot reach it: {problem}"
                )
            return None
        spec = network_spec(network, operation_id)
        return HostWork(
            host=network.host.name, task=transition.host_task, kwargs={"spec": spec.as_dict()}, role=NETWORK
        )

    def succeeded(self, obj, transition: Transition, result: dict) -> list[str]:
        answer = _answer(result)
        obj.applied, obj.simulated = list(answer.applied), answer.simulated
        return ["applied", "simulated"]

    def failed(self, obj, transition: Transition, result: dict, error: str) -> list[str]:
        if obj.status == N.BUILD:
            obj.status = N.ERROR
        return []

    def deleted_fields(self, obj, result: dict) -> list[str]:
        # The VLAN and the bridge name go back to the range; the row stays for history.
        obj.vlan, obj.bridge, obj.applied = None, None, []
        return ["vlan", "bridge", "applied"]

    def timed_out_state(self, obj, operation) -> str | None:
        if obj.status == N.BUILD or obj.busy == N.DELETING:
            return N.ERROR
        return None


# --- ports ----------------------------------------------------------------------------------------

PORT_TRANSITIONS = (
    Transition(
        "create",
        frozenset(),
        "",
        P.ACTIVE,
        "Create",
        host_task=tasknames.AGENT_ENSURE_NETWORK,  # its network, now with this port's DHCP entry
        role=NETWORK,
        endpoint="",
    ),
    Transition(
        "update_filter",
        frozenset({P.DOWN, P.ACTIVE, P.ERROR}),
        "updating",
        P.ACTIVE,
        "Apply rules",
        icon="shield-check",
        policy="networking:port:update",
        host_task=tasknames.AGENT_APPLY_PORT_FILTER,
        role=COMPUTE,
        while_busy=True,  # the filter is replaced whole with what is true when it is sent
        endpoint="apply-rules",
        doc="Apply the port's security group rules on its compute host again: 202.",
    ),
    Transition(
        "delete",
        frozenset({P.DOWN, P.ACTIVE, P.ERROR}),
        P.DELETING,
        P.DELETED,
        "Delete",
        icon="trash",
        style="danger",
        confirm="Delete port {name}?",
        message="Deleting port {name}.",
        host_task=tasknames.AGENT_ENSURE_NETWORK,  # its network, without this port's DHCP entry
        role=NETWORK,
        while_busy=True,
        endpoint="",
    ),
)


class PortLifecycle(lifecycle.Lifecycle):
    """Ports: their network's host pins the MAC to the fixed IP (DHCP); the compute host they are
    bound to applies their security group rules."""

    kind = "port"
    model = Port
    state_field = "status"
    busy_field = "busy"
    deleted = P.DELETED
    deleting = P.DELETING
    delete_failed = P.ERROR
    host_role = NETWORK
    policy_prefix = "networking:port"

    def label(self, obj) -> str:
        return obj.name or str(obj.pk)

    def host_work(self, operation_id, resource_id, transition: Transition, params: dict) -> HostWork | None:
        port = Port.objects.select_related("network__host").filter(pk=resource_id).first()
        if port is None:
            ledger.fail(operation_id, "the port no longer exists")
            return None
        name = transition.name
        if transition.role == COMPUTE:
            if not port.host:
                self.settle(operation_id, resource_id, name, {"ok": True, "message": "on no host yet"})
                return None
            filt = port_filters([port])[port.pk]
            return HostWork(
                host=port.host,
                task=transition.host_task,
                kwargs={"port_filter": filt.as_dict()},
                role=COMPUTE,
            )
        network = port.network
        problem = _down(network.host)
        if problem:
            if name == "delete" and network.host is None:
                self.settle_delete(operation_id, resource_id, {"ok": True, "message": "deleted (no host)"})
            else:
                _settle_failed(
                    self, operation_id, resource_id, name, f"its network cannot be reached: {problem}"
                )
            return None
        spec = network_spec(network, operation_id)
        return HostWork(
            host=network.host.name, task=transition.host_task, kwargs={"spec": spec.as_dict()}, role=NETWORK
        )

    def failed(self, obj, transition: Transition, result: dict, error: str) -> list[str]:
        if transition.name == "create":
            obj.status = P.ERROR
        return []

    def deleted_fields(self, obj, result: dict) -> list[str]:
        # A failed delete keeps the address (its DHCP entry may still be on the host); this one went.
        IPAllocation.objects.filter(port_id=obj.pk).delete()  # back to the pools
        obj.security_groups.clear()
        obj.mac = None
        return ["mac"]

    def timed_out_state(self, obj, operation) -> str | None:
        if obj.busy == P.DELETING or obj.status == P.DOWN and obj.busy == "":
            return P.ERROR
        return None


# --- floating IPs -----------------------------------------------------------------------------------

FLOATING_TRANSITIONS = (
    Transition(
        "associate",
        frozenset({F.DOWN}),
        F.ASSOCIATING,
        F.ACTIVE,
        "Associate",
        icon="link",
        message="Associating floating IP {name}.",
        host_task=tasknames.AGENT_SET_FLOATING_IP,
        role=NETWORK,
        endpoint="",  # PATCH floating-ips/{id}/ {"port": id}
    ),
    Transition(
        "disassociate",
        frozenset({F.ACTIVE, F.ERROR}),
        F.DISASSOCIATING,
        F.DOWN,
        "Disassociate",
        icon="x-circle",
        style="warning",
        message="Disassociating floating IP {name}.",
        host_task=tasknames.AGENT_SET_FLOATING_IP,
        role=NETWORK,
        endpoint="",  # PATCH floating-ips/{id}/ {"port": null}
    ),
)


class FloatingIPLifecycle(lifecycle.Lifecycle):
    """Floating IPs: the external network's host adds or removes the NAT rules."""

    kind = "floating_ip"
    model = FloatingIP
    state_field = "status"
    busy_field = "busy"
    deleted = F.DELETED
    policy_prefix = "networking:floating_ip"

    def label(self, obj) -> str:
        return obj.address or str(obj.pk)

    def host_work(self, operation_id, resource_id, transition: Transition, params: dict) -> HostWork | None:
        fip = (
            FloatingIP.objects.select_related("network__host", "port__network").filter(pk=resource_id).first()
        )
        if fip is None:
            ledger.fail(operation_id, "the floating IP no longer exists")
            return None
        name = transition.name
        problem = _down(fip.network.host)
        internal = params.get("internal_bridge") or (fip.port.network.bridge if fip.port else "")
        if not problem and not fip.fixed_ip:
            problem = "it has no fixed IP to point at"
        if problem:
            self.settle(operation_id, resource_id, name, {"ok": False, "error": f"cannot {name}: {problem}"})
            return None
        request = FloatingIpRequest(
            floating_ip=fip.address or "",
            fixed_ip=fip.fixed_ip,
            external_bridge=fip.network.bridge or "",
            internal_bridge=internal or "",
            associate=name == "associate",
            operation_id=str(operation_id),
        )
        return HostWork(
            host=fip.network.host.name,
            task=transition.host_task,
            kwargs={"request": request.as_dict()},
            role=NETWORK,
        )

    def succeeded(self, obj, transition: Transition, result: dict) -> list[str]:
        if transition.name == "disassociate":
            obj.port, obj.fixed_ip = None, ""
        return ["port", "fixed_ip"]

    def failed(self, obj, transition: Transition, result: dict, error: str) -> list[str]:
        if transition.name == "associate":  # the host says it applied nothing: not associated
            obj.status, obj.port, obj.fixed_ip = F.DOWN, None, ""
        else:
            obj.status = F.ERROR  # its rules may remain: disassociate again
        return ["port", "fixed_ip"]

    def timed_out_state(self, obj, operation) -> str | None:
        return F.ERROR  # unknown whether the NAT is there: disassociating again cleans it


NETWORK_LIFECYCLE = lifecycle.register(NetworkLifecycle(NETWORK_TRANSITIONS))
PORT_LIFECYCLE = lifecycle.register(PortLifecycle(PORT_TRANSITIONS))
FLOATING_IP_LIFECYCLE = lifecycle.register(FloatingIPLifecycle(FLOATING_TRANSITIONS))


__all__ = [
    "FLOATING_IP_LIFECYCLE",
    "NETWORK_LIFECYCLE",
    "PORT_LIFECYCLE",
    "FloatingIPLifecycle",
    "NetworkLifecycle",
    "PortLifecycle",
    "network_spec",
    "nic_specs",
    "port_filters",
]
