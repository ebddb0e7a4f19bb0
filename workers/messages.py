"""Typed messages between the conductor and the host agents: plain dataclasses, no Django.

Both sides import this module (the agent imports no model, the conductor no agent code), so a field
is named once. A message crosses the broker as JSON: ``as_dict()`` on the way out, ``from_dict()``
on the way in; ``from_dict`` refuses unknown and missing keys, so a renamed field fails loudly on
the first message instead of being read as a default.

Storage is the first user: the conductor sends a ``VolumeRequest`` (and friends) to ``storage.<host>``
and the agent answers with a ``VolumeResult``; attach and detach go to ``compute.<host>`` with the
``VolumeConnection`` the storage host handed over, so the compute side never needs to know the
backend (a file in a ``dir`` pool, a logical volume, an rbd image).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

M = TypeVar("M", bound="Message")


class MessageError(ValueError):
    """A message that does not match its dataclass (unknown, missing or mistyped keys)."""


@dataclass(frozen=True)
class Message:
    """Base of every typed message: strict to and from the JSON dict Celery carries."""

    # Fields whose value is itself a Message (or a list of them): name -> class.
    nested: ClassVar[dict[str, type[Message]]] = {}

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Message):
                value = value.as_dict()
            elif isinstance(value, (list, tuple)):
                value = [v.as_dict() if isinstance(v, Message) else v for v in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls: type[M], data: dict[str, Any] | M) -> M:
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise MessageError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise MessageError(f"{cls.__name__}: unknown keys {', '.join(unknown)}")
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - set(data))
        if missing:
            raise MessageError(f"{cls.__name__}: missing keys {', '.join(missing)}")
        values = dict(data)
        for name, sub in cls.nested.items():
            value = values.get(name)
            if isinstance(value, dict):
                values[name] = sub.from_dict(value)
            elif isinstance(value, list):
                values[name] = tuple(sub.from_dict(v) for v in value)
        for f in dataclasses.fields(cls):
            if isinstance(values.get(f.name), list):  # JSON has no tuples; frozen fields want them
                values[f.name] = _tuples(values[f.name])
        return cls(**values)


def _tuples(value):
    """JSON lists as tuples, nested ones too (``(("10.0.0.2", "10.0.0.9"),)``); messages stay."""
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


# --- storage: what a storage host stores and how a compute host reaches it ------------------------


@dataclass(frozen=True)
class VolumeConnection(Message):
    """How a compute host attaches a volume, whatever the backend (libvirt's disk source)."""

    type: str  # "file" (dir pool), "block" (logical pool), "network" (rbd)
    path: str  # the file or block device; for "network": "<ceph pool>/<image>"
    format: str = "raw"  # "qcow2" or "raw": the disk driver's type
    protocol: str = ""  # "rbd" when type is "network"
    hosts: tuple[str, ...] = ()  # rbd monitors, "host:port"
    secret_uuid: str = ""  # the libvirt secret of a cephx user, when the backend needs one


@dataclass(frozen=True)
class VolumeSource(Message):
    """What a new volume starts from."""

    kind: str = "blank"  # "blank", "image", "snapshot" or "volume"
    # kind "image": the signed image spec the agent already fetches for a spawn (url, checksum,
    # disk_format, size, ...), as ``compute`` builds it.
    image: dict[str, Any] | None = None
    # kind "snapshot" / "volume": the source's name in the same backend (its libvirt volume).
    name: str = ""


@dataclass(frozen=True)
class VolumeRequest(Message):
    """Conductor -> ``storage.<host>``: create (or, for the other tasks, name) one volume."""

    nested: ClassVar[dict[str, type[Message]]] = {"source": VolumeSource}

    backend: str  # the backend's name as the host reports it (a libvirt pool of its own)
    name: str  # the libvirt volume's name: "volume-<uuid>" or "snapshot-<uuid>"
    size_gb: int = 0
    source: VolumeSource = field(default_factory=VolumeSource)
    operation_id: str = ""  # for progress reports (bytes copied)
    # upload_volume only: where the agent PUTs the volume's bytes (a signed URL of the portal; the
    # body is the volume as stored, in the format its connection names).
    upload_url: str = ""


@dataclass(frozen=True)
class VolumeResult(Message):
    """``storage.<host>`` -> conductor: the answer to a ``VolumeRequest`` (``{"ok": ...}`` shape of
    every host answer, so ``transition_done`` settles it like any other)."""

    nested: ClassVar[dict[str, type[Message]]] = {"connection": VolumeConnection}

    ok: bool
    error: str = ""
    message: str = ""
    size_bytes: int = 0
    allocation_bytes: int = 0
    connection: VolumeConnection | None = None
    existed: bool = True  # a delete: whether there was anything to delete
    # upload_volume: sha256 (hex) of the bytes sent, and their number is ``size_bytes``.
    checksum: str = ""
    # extend_volume of a file volume a running guest holds (QEMU has its write lock): not grown here,
    # ``size_bytes`` is still the old size; the compute host's resize_volume (block resize) grows it.
    in_use: bool = False


@dataclass(frozen=True)
class VolumeAttachment(Message):
    """Conductor -> ``compute.<host>``: attach (or detach, or resize) a volume on a domain."""

    nested: ClassVar[dict[str, type[Message]]] = {"connection": VolumeConnection}

    domain: str  # "zenith-<instance uuid>"
    connection: VolumeConnection
    target_dev: str = ""  # "vdb"...; chosen by the conductor, "" to let the host pick the next free
    readonly: bool = False
    size_bytes: int = 0  # resize: the new size the guest sees


@dataclass(frozen=True)
class AttachmentResult(Message):
    """``compute.<host>`` -> conductor."""

    ok: bool
    error: str = ""
    message: str = ""
    target_dev: str = ""
    live: bool = False  # the running guest saw it (False on a simulated host: definition only)


@dataclass(frozen=True)
class StorageBackendReport(Message):
    """One backend in the ``storage`` section of a host's heartbeat."""

    name: str
    type: str  # libvirt pool type: "dir", "logical", "rbd"
    pool: str  # the libvirt pool's name
    capacity_bytes: int
    available_bytes: int
    # Compute hosts that can attach its volumes: ["*"] for shared storage (rbd, a dir pool on a
    # shared mount), else just the host itself.
    reaches: tuple[str, ...] = ()
    simulated: bool = False


@dataclass(frozen=True)
class StorageReport(Message):
    """The ``storage`` section of a heartbeat."""

    nested: ClassVar[dict[str, type[Message]]] = {"backends": StorageBackendReport}

    backends: tuple[StorageBackendReport, ...] = ()


# --- networking: what a network host applies and what a compute host plugs -----------------------
#
# The conductor sends a ``NetworkSpec`` to ``network.<host>`` (ensure or delete the project
# network's libvirt network: its bridge, VLAN tag and the DHCP host entries that pin each port's MAC
# to its fixed IP), a ``FloatingIpRequest`` to the same queue (NAT rules), and ``NicSpec`` /
# ``PortFilter`` to ``compute.<host>`` (plug a NIC into a domain, apply a port's security group rules
# as a libvirt nwfilter). Remote-group rules reach the host already expanded into the members'
# addresses: hosts never see a group. Every answer is a ``NetworkResult``.


@dataclass(frozen=True)
class SubnetSpec(Message):
    """One subnet of a network, as dnsmasq (libvirt's <ip>/<dhcp>) needs it."""

    cidr: str  # "10.0.0.0/24" or "fd00::/64"
    ip_version: int = 4
    gateway: str = ""  # the bridge's address on the host; "" for none
    dhcp: bool = True
    # [start, end] pairs, inclusive, each inside cidr
    allocation_pools: tuple[tuple[str, str], ...] = ()
    dns_servers: tuple[str, ...] = ()
    host_routes: tuple[tuple[str, str], ...] = ()  # (destination cidr, nexthop)


@dataclass(frozen=True)
class DhcpHost(Message):
    """A port's DHCP reservation: this MAC always gets this address (and name)."""

    mac: str
    ip: str
    hostname: str = ""


@dataclass(frozen=True)
class NetworkSpec(Message):
    """Conductor -> ``network.<host>``: ensure (idempotently define, start and bring up to date) or
    delete one network. ``ensure`` replaces the DHCP host entries with exactly ``dhcp_hosts``."""

    nested: ClassVar[dict[str, type[Message]]] = {"subnets": SubnetSpec, "dhcp_hosts": DhcpHost}

    network_id: str  # the Zenith network's UUID
    name: str  # the libvirt network's name: "zenith-net-<first 8 of the uuid>"
    bridge: str  # "znb<vlan>" or "znb-<first 8>"; at most 15 characters (IFNAMSIZ)
    vlan: int | None = None  # 802.1q tag where the kernel has it; None for a flat network
    external: bool = False  # floating IPs are NATed from this network's bridge
    mtu: int = 1500
    subnets: tuple[SubnetSpec, ...] = ()
    dhcp_hosts: tuple[DhcpHost, ...] = ()
    operation_id: str = ""


@dataclass(frozen=True)
class FilterRule(Message):
    """One security group rule, remote groups already expanded to CIDRs."""

    direction: str  # "ingress" or "egress"
    ethertype: str = "IPv4"  # or "IPv6"
    protocol: str = "any"  # "tcp", "udp", "icmp" or "any"
    port_min: int | None = None  # tcp/udp; for icmp: the type
    port_max: int | None = None  # tcp/udp; for icmp: the code
    remote_cidr: str = ""  # "" means any address


@dataclass(frozen=True)
class PortFilter(Message):
    """Conductor -> ``compute.<host>``: the nwfilter of one port (replaced whole each time). Traffic a
    rule does not allow is dropped; established connections' answers always pass."""

    nested: ClassVar[dict[str, type[Message]]] = {"rules": FilterRule}

    port_id: str
    name: str  # the nwfilter's name: "zenith-port-<first 8 of the port uuid>"
    mac: str
    ips: tuple[str, ...] = ()  # the port's fixed IPs (anti-spoofing)
    rules: tuple[FilterRule, ...] = ()


@dataclass(frozen=True)
class NicSpec(Message):
    """A NIC of a domain: in the spawn message (one per port) and to plug/unplug on a running one."""

    nested: ClassVar[dict[str, type[Message]]] = {"filter": PortFilter}

    port_id: str
    mac: str
    network: str  # the libvirt network's name (NetworkSpec.name)
    bridge: str
    model: str = "virtio"
    filter: PortFilter | None = None
    domain: str = ""  # plug/unplug: "zenith-<instance uuid>"


@dataclass(frozen=True)
class FloatingIpRequest(Message):
    """Conductor -> ``network.<host>`` of the external network: NAT ``floating_ip`` to ``fixed_ip``
    (associate) or remove those rules (disassociate; removing absent rules is ok)."""

    floating_ip: str
    fixed_ip: str
    external_bridge: str  # where the floating address lives
    internal_bridge: str  # the port's network's bridge
    associate: bool = True
    operation_id: str = ""


@dataclass(frozen=True)
class NetworkResult(Message):
    """Any network host's answer (``{"ok": ...}`` like every host answer)."""

    ok: bool
    error: str = ""
    message: str = ""
    # True where the host records what it would apply instead of applying it (libvirt's test driver
    # has no nwfilter, no dnsmasq, no NAT): the admin view says so; nothing is called applied.
    simulated: bool = False
    # What the host now has, for the admin view: e.g. ["network zenith-net-1a2b3c4d (bridge znb101,
    # 10.0.0.0/24, 3 DHCP hosts)", "iptables -t nat -A ..."].
    applied: tuple[str, ...] = ()
    existed: bool = True  # delete: whether there was anything to remove
    target_dev: str = ""  # plug: the tap device


@dataclass(frozen=True)
class NetworkReport(Message):
    """The ``network`` section of a network or compute host's heartbeat, for the admin view: what the
    host has now. Optional: a conductor with no network receiver ignores it."""

    simulated: bool = False  # libvirt's test driver: the lists below are recorded, not applied
    networks: tuple[str, ...] = ()  # one line per Zenith libvirt network (bridge, addresses, hosts)
    filters: tuple[str, ...] = ()  # the ports' nwfilters' names
    floating_ips: tuple[str, ...] = ()  # floating addresses NATed here (recorded where simulated)
    vlan_tagging: bool = False  # whether this host tags project networks' bridges (802.1q)
