"""Networks of a host: libvirt networks, nwfilters, NIC interfaces, and floating IPs' NAT rules.

The XML functions are pure (a ``workers.messages`` message in, XML text out); ``NetworksMixin`` is
the driver's side: ensure (define or update, start, autostart) and delete a libvirt network, define
and undefine an nwfilter, plug and unplug a NIC of a domain.

- A project network is an isolated libvirt network (no ``<forward>``), an external one NATs
  (``<forward mode='nat'/>``); its bridge has each subnet's gateway as address (``<ip>``), and where a
  subnet has DHCP, dnsmasq serves its allocation pools (``<range>``) with one ``<host>`` per port
  pinning its MAC to its fixed IP.
- ``<vlan><tag>`` is written only where the host has 802.1q (``vlan_supported``); this machine's
  kernel has none (no ``/proc/net/vlan``), so a project network's VLAN id is then recorded as not
  tagged, never claimed.
- A port's nwfilter: libvirt's ``clean-traffic`` with the port's MAC and IPs (no MAC, IP or ARP
  spoofing), DHCP to and from the port, answers of established connections, one rule per security
  group rule, and everything else dropped.
- A floating IP: its address on the external bridge, DNAT to the fixed IP (PREROUTING and OUTPUT)
  and SNAT back (POSTROUTING), as ``iptables`` argument lists (``floating_ip_rules``).
"""

from __future__ import annotations

import ipaddress
import os
import xml.etree.ElementTree as ET

import libvirt

from workers.agent.drivers.base import DriverError, NotSupported
from workers.agent.drivers.base import NicSpec as DriverNic
from workers.agent.drivers.libvirt import xml as dx
from workers.agent.drivers.libvirt.connection import _errors, _is_missing
from workers.messages import DhcpHost, FilterRule, FloatingIpRequest, NetworkSpec, NicSpec, PortFilter

_LIVE_CONFIG = libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
IFNAMSIZ = 15  # a Linux interface name has at most 15 characters


def vlan_supported(proc: str = "/proc/net/vlan") -> bool:
    """Whether this kernel has 802.1q VLANs: the 8021q module makes ``/proc/net/vlan``."""
    return os.path.isdir(proc)


def _sub(parent: ET.Element, tag: str, **attrs) -> ET.Element:
    return ET.SubElement(parent, tag, {k: str(v) for k, v in attrs.items() if v is not None and v != ""})


def _text(el: ET.Element) -> str:
    return ET.tostring(el, encoding="unicode")


def _host_version(ip: str) -> int:
    return ipaddress.ip_address(ip).version


def _dhcp_host(parent: ET.Element, host: DhcpHost) -> ET.Element | None:
    """IPv4: ``<host mac ip name>``. IPv6 dnsmasq matches a client by DUID or name, not MAC: a host
    with a name gets ``<host name ip>``, one without none (the address is then SLAAC's or a pool's)."""
    if _host_version(host.ip) == 4:
        return _sub(parent, "host", mac=host.mac.lower(), name=host.hostname, ip=host.ip)
    if host.hostname:
        return _sub(parent, "host", name=host.hostname, ip=host.ip)
    return None


def dhcp_served(spec: NetworkSpec) -> list:
    """The subnets whose DHCP dnsmasq serves: those with DHCP on and a gateway, the first of each IP
    version only (libvirt serves DHCP on one IPv4 and one IPv6 address of a network)."""
    served, versions = [], set()
    for subnet in spec.subnets:
        version = ipaddress.ip_network(subnet.cidr).version
        if subnet.dhcp and subnet.gateway and version not in versions:
            served.append(subnet)
            versions.add(version)
    return served


def dhcp_unserved(spec: NetworkSpec) -> list[str]:
    """The CIDRs of subnets with DHCP on that dnsmasq cannot serve (see ``dhcp_served``)."""
    served = {s.cidr for s in dhcp_served(spec)}
    return [s.cidr for s in spec.subnets if s.dhcp and s.cidr not in served]


def network_xml(spec: NetworkSpec, uuid: str = "", vlan: bool = False) -> str:
    """The libvirt network of ``spec``; ``uuid`` that of the existing definition (a redefinition
    must keep it); ``vlan`` whether to tag the bridge (the host has 802.1q)."""
    if not spec.bridge or len(spec.bridge) > IFNAMSIZ:
        raise ValueError(f"bridge name {spec.bridge!r} must have 1 to {IFNAMSIZ} characters")
    net = ET.Element("network")
    ET.SubElement(net, "name").text = spec.name
    if uuid:
        ET.SubElement(net, "uuid").text = uuid
    if spec.external:
        _sub(net, "forward", mode="nat")
    _sub(net, "bridge", name=spec.bridge, stp="on", delay="0")
    _sub(net, "mtu", size=spec.mtu)
    if vlan and spec.vlan is not None:
        _sub(_sub(net, "vlan"), "tag", id=spec.vlan)
    served = {s.cidr for s in dhcp_served(spec)}
    for subnet in spec.subnets:
        cidr = ipaddress.ip_network(subnet.cidr)
        if not subnet.gateway:  # no bridge address: dnsmasq cannot serve it, the bridge carries it as is
            continue
        gateway = ipaddress.ip_address(subnet.gateway)
        if gateway not in cidr:
            raise ValueError(f"gateway {gateway} is outside {cidr}")
        family = "ipv6" if cidr.version == 6 else None
        ip = _sub(net, "ip", family=family, address=gateway, prefix=cidr.prefixlen)
        if subnet.cidr not in served:
            continue
        dhcp = _sub(ip, "dhcp")
        for start, end in subnet.allocation_pools:
            _sub(dhcp, "range", start=start, end=end)
        for host in spec.dhcp_hosts:
            if ipaddress.ip_address(host.ip) in cidr:
                _dhcp_host(dhcp, host)
    return _text(net)


def _canonical(xml: str) -> tuple:
    """What of a network's XML ``ensure`` keeps up to date, dnsmasq's hosts apart: (bridge, forward,
    mtu, vlan, each <ip> with its ranges) and the set of (<ip> index, host XML attributes)."""
    root = ET.fromstring(xml)
    bridge = root.find("bridge")
    forward = root.find("forward")
    mtu = root.find("mtu")
    tags = tuple(t.get("id") for t in root.findall("vlan/tag"))
    ips, hosts = [], set()
    for index, ip in enumerate(root.findall("ip")):
        ranges = tuple((r.get("start"), r.get("end")) for r in ip.findall("dhcp/range"))
        has_dhcp = ip.find("dhcp") is not None
        ips.append((ip.get("family") or "ipv4", ip.get("address"), ip.get("prefix"), has_dhcp, ranges))
        for host in ip.findall("dhcp/host"):
            hosts.add((index, tuple(sorted(host.attrib.items()))))
    structure = (
        bridge.get("name") if bridge is not None else None,
        forward.get("mode") if forward is not None else None,
        mtu.get("size") if mtu is not None else None,
        tags,
        tuple(ips),
    )
    return structure, hosts


def network_summary(xml: str, active: bool) -> str:
    """One line for the admin view: ``network zenith-net-1a2b3c4d (bridge znb101, 10.0.0.1/24, 3
    DHCP hosts, active)``."""
    root = ET.fromstring(xml)
    bridge = root.find("bridge")
    addresses = [f"{ip.get('address')}/{ip.get('prefix')}" for ip in root.findall("ip")]
    hosts = len(root.findall("ip/dhcp/host"))
    forward = root.find("forward")
    parts = [f"bridge {bridge.get('name') if bridge is not None else '?'}"]
    if forward is not None:
        parts.append(f"forward {forward.get('mode')}")
    parts += addresses
    parts.append(f"{hosts} DHCP host{'s' if hosts != 1 else ''}")
    parts.append("active" if active else "inactive")
    return f"network {root.findtext('name')} ({', '.join(parts)})"


# -- nwfilter ----------------------------------------------------------------------------------

_PROTOCOLS = {  # (protocol, ethertype) -> nwfilter protocol element
    ("tcp", "IPv4"): "tcp",
    ("udp", "IPv4"): "udp",
    ("icmp", "IPv4"): "icmp",
    ("any", "IPv4"): "all",
    ("tcp", "IPv6"): "tcp-ipv6",
    ("udp", "IPv6"): "udp-ipv6",
    ("icmp", "IPv6"): "icmpv6",
    ("any", "IPv6"): "all-ipv6",
}
PRIORITY_STATEFUL = 100
PRIORITY_DHCP = 200
PRIORITY_RULE = 500
PRIORITY_DROP = 1000


def _rule_match(rule: FilterRule) -> tuple[str, dict]:
    key = (rule.protocol, rule.ethertype)
    if key not in _PROTOCOLS:
        raise ValueError(f"no nwfilter protocol for {rule.protocol!r} over {rule.ethertype!r}")
    attrs: dict = {"state": "NEW"}
    if rule.remote_cidr:
        net = ipaddress.ip_network(rule.remote_cidr, strict=False)
        if (net.version == 6) != (rule.ethertype == "IPv6"):
            raise ValueError(f"remote {rule.remote_cidr} is not an {rule.ethertype} network")
        # ingress: the remote is the packet's source; egress: its destination
        side = "src" if rule.direction == "ingress" else "dst"
        attrs[f"{side}ipaddr"] = net.network_address
        attrs[f"{side}ipmask"] = net.prefixlen
    if rule.protocol in ("tcp", "udp"):
        if rule.port_min is not None:
            attrs["dstportstart"] = rule.port_min
            attrs["dstportend"] = rule.port_max if rule.port_max is not None else rule.port_min
    elif rule.protocol == "icmp":
        attrs["type"] = rule.port_min
        attrs["code"] = rule.port_max
    return _PROTOCOLS[key], attrs


def nwfilter_xml(port: PortFilter, uuid: str = "") -> str:
    """The nwfilter of one port (see the module docstring). Rule directions are nwfilter's:
    ``in`` is traffic to the guest (ingress), ``out`` from it (egress)."""
    root = ET.Element("filter", name=port.name, chain="root")
    if uuid:
        ET.SubElement(root, "uuid").text = uuid
    clean = _sub(root, "filterref", filter="clean-traffic")
    _sub(clean, "parameter", name="MAC", value=port.mac.lower())
    for ip in port.ips:
        if _host_version(ip) == 4:  # clean-traffic's IP is IPv4 (no-ip-spoofing, no-arp-spoofing)
            _sub(clean, "parameter", name="IP", value=ip)
    for proto in ("all", "all-ipv6"):
        stateful = _sub(root, "rule", action="accept", direction="inout", priority=PRIORITY_STATEFUL)
        _sub(stateful, proto, state="ESTABLISHED,RELATED")
    dhcp_out = _sub(root, "rule", action="accept", direction="out", priority=PRIORITY_DHCP)
    _sub(dhcp_out, "udp", srcportstart=68, dstportstart=67)
    dhcp_in = _sub(root, "rule", action="accept", direction="in", priority=PRIORITY_DHCP)
    _sub(dhcp_in, "udp", srcportstart=67, dstportstart=68)
    for rule in port.rules:
        if rule.direction not in ("ingress", "egress"):
            raise ValueError(f"rule direction must be ingress or egress, not {rule.direction!r}")
        proto, attrs = _rule_match(rule)
        el = _sub(
            root,
            "rule",
            action="accept",
            direction="in" if rule.direction == "ingress" else "out",
            priority=PRIORITY_RULE,
        )
        _sub(el, proto, **attrs)
    for proto in ("all", "all-ipv6"):
        _sub(_sub(root, "rule", action="drop", direction="inout", priority=PRIORITY_DROP), proto)
    return _text(root)


# -- NICs --------------------------------------------------------------------------------------


def tap_name(port_id: str) -> str:
    """The tap device of a port's NIC: ``znt`` and the first 8 hex digits of its id (11 characters)."""
    return "znt" + port_id.replace("-", "")[:8]


def driver_nic(nic: NicSpec) -> DriverNic:
    """The driver's NIC of a message's: on its libvirt network, a tap named after the port, and the
    port's nwfilter when it has one."""
    return DriverNic(
        mac=nic.mac,
        network=nic.network,
        model=nic.model or "virtio",
        target_dev=tap_name(nic.port_id),
        filter=nic.filter.name if nic.filter is not None else "",
    )


def interface_xml(nic: NicSpec) -> str:
    """A NIC of type network: its MAC, the libvirt network, a tap named after the port, the model
    (virtio), and the port's nwfilter when it has one."""
    return _text(dx.interface(ET.Element("devices"), driver_nic(nic)))


def interfaces_of(xml: str) -> dict[str, str]:
    """MAC (lower case) -> the <interface> element as XML, of a domain's XML."""
    found = {}
    for iface in ET.fromstring(xml).findall("devices/interface"):
        mac = iface.find("mac")
        if mac is not None and mac.get("address"):
            found[mac.get("address").lower()] = _text(iface)
    return found


def target_dev_of(interface: str) -> str:
    target = ET.fromstring(interface).find("target")
    return target.get("dev", "") if target is not None else ""


def with_interface(domain: str, nic: NicSpec) -> str:
    """The domain definition ``domain`` with ``nic`` added (a definition-only plug)."""
    root = ET.fromstring(domain)
    devices = root.find("devices")
    if devices is None:
        devices = ET.SubElement(root, "devices")
    dx.interface(devices, driver_nic(nic))
    return _text(root)


def without_interface(domain: str, mac: str) -> str:
    """The domain definition ``domain`` without its NIC of MAC ``mac``."""
    root = ET.fromstring(domain)
    devices = root.find("devices")
    for iface in [] if devices is None else devices.findall("interface"):
        el = iface.find("mac")
        if el is not None and (el.get("address") or "").lower() == mac.lower():
            devices.remove(iface)
    return _text(root)


# -- floating IPs ------------------------------------------------------------------------------


def _comment(req: FloatingIpRequest) -> list[str]:
    return ["-m", "comment", "--comment", f"zenith-fip-{req.floating_ip}"]


def floating_ip_rules(req: FloatingIpRequest) -> list[list[str]]:
    """The ``iptables`` rules of a floating IP, as argument lists without the verb (``-A``/``-D``/
    ``-C`` goes after the table): DNAT of what arrives for the floating address (PREROUTING) or is
    sent to it from the host itself (OUTPUT) to the fixed IP, SNAT of what the fixed IP sends, and
    FORWARD accepts both ways between the two bridges (libvirt rejects forwarding into an isolated
    network otherwise)."""
    fip = str(ipaddress.IPv4Address(req.floating_ip))
    fixed = str(ipaddress.IPv4Address(req.fixed_ip))
    tag = _comment(req)
    return [
        ["-t", "nat", "PREROUTING", "-d", f"{fip}/32", "-j", "DNAT", "--to-destination", fixed, *tag],
        ["-t", "nat", "OUTPUT", "-d", f"{fip}/32", "-j", "DNAT", "--to-destination", fixed, *tag],
        ["-t", "nat", "POSTROUTING", "-s", f"{fixed}/32", "-j", "SNAT", "--to-source", fip, *tag],
        ["-t", "filter", "FORWARD", "-d", f"{fixed}/32", "-o", req.internal_bridge, "-j", "ACCEPT", *tag],
        ["-t", "filter", "FORWARD", "-s", f"{fixed}/32", "-i", req.internal_bridge, "-j", "ACCEPT", *tag],
    ]


def with_verb(rule: list[str], verb: str) -> list[str]:
    """``["-t", "nat", "PREROUTING", ...]`` as ``["-t", "nat", verb, "PREROUTING", ...]``; inserting
    (``-I``) puts the rule ahead of libvirt's own REJECTs."""
    return [*rule[:2], verb, *rule[2:]]


def floating_ip_address(req: FloatingIpRequest) -> list[str]:
    """``ip addr`` arguments (after ``add``/``del``) putting the floating address on the external
    bridge, so that the host answers ARP for it."""
    return [f"{ipaddress.IPv4Address(req.floating_ip)}/32", "dev", req.external_bridge]


def rule_text(rule: list[str], verb: str = "-A") -> str:
    return "iptables " + " ".join(with_verb(rule, verb))


# -- the driver's side -------------------------------------------------------------------------


def _config_xml(net: libvirt.virNetwork) -> str:
    """A network's persistent definition; libvirt's test driver has only the one (it refuses the
    INACTIVE flag), which is then also its definition."""
    try:
        return net.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
            raise
        return net.XMLDesc(0)


class NetworksMixin:
    """Networks, nwfilters and NICs over the driver's connection."""

    def network_vlan_supported(self) -> bool:
        """802.1q tagging is there: not on libvirt's test driver (nothing is tagged), and on a local
        hypervisor when this kernel has it. A remote one's kernel is not this one: no tag either."""
        return self.resolved_domain_type() != "test" and not self._is_remote() and vlan_supported()

    def _network(self, name: str) -> libvirt.virNetwork | None:
        try:
            return self.conn.networkLookupByName(name)
        except libvirt.libvirtError as exc:
            if _is_missing(exc, libvirt.VIR_ERR_NO_NETWORK):
                return None
            raise

    def ensure_network(self, spec: NetworkSpec) -> dict:
        """Define ``spec``'s network, or bring its definition up to date, then start it and mark it
        autostart. A definition that differs only in DHCP hosts is updated in place (live and
        config: dnsmasq reloads, no guest loses its link); any other difference stops it if it runs,
        redefines it and starts it again. The same spec twice changes nothing the second time.
        Returns ``{"created", "changed": [what changed], "active", "xml", "vlan_tagged"}``."""
        vlan = self.network_vlan_supported()
        with _errors():
            net = self._network(spec.name)
            uuid = net.UUIDString() if net is not None else ""
            wanted = network_xml(spec, uuid=uuid, vlan=vlan)
            changed: list[str] = []
            created = net is None
            if net is None:
                net = self.conn.networkDefineXML(wanted)
                changed.append("defined")
            else:
                current = _config_xml(net)
                have, have_hosts = _canonical(current)
                want, want_hosts = _canonical(wanted)
                if have != want:
                    if net.isActive():  # stopped first: the new definition is then the one started
                        net.destroy()
                        changed.append("stopped")
                    net = self.conn.networkDefineXML(wanted)
                    changed.append("redefined")
                elif have_hosts != want_hosts:
                    changed += self._update_dhcp_hosts(net, have_hosts, want_hosts)
            if not net.isActive():
                net.create()
                changed.append("started")
            if not net.autostart():
                net.setAutostart(1)
                changed.append("autostart")
            return {
                "created": created,
                "changed": changed,
                "active": bool(net.isActive()),
                "xml": net.XMLDesc(0),
                "vlan_tagged": vlan and spec.vlan is not None,
            }

    def _update_dhcp_hosts(self, net: libvirt.virNetwork, have: set, want: set) -> list[str]:
        flags = _LIVE_CONFIG if net.isActive() else libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
        section = libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST
        changes = []
        for index, attrs in sorted(have - want):
            xml = _text(ET.Element("host", dict(attrs)))
            net.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, section, index, xml, flags)
            changes.append(f"dhcp host removed {dict(attrs).get('ip')}")
        for index, attrs in sorted(want - have):
            xml = _text(ET.Element("host", dict(attrs)))
            net.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, section, index, xml, flags)
            changes.append(f"dhcp host added {dict(attrs).get('ip')}")
        return changes

    def delete_network(self, name: str) -> bool:
        """Stop and undefine network ``name``; False when there was none (idempotent)."""
        with _errors():
            net = self._network(name)
            if net is None:
                return False
            if net.isActive():
                net.destroy()
            try:
                net.undefine()
            except libvirt.libvirtError as exc:  # a transient network is gone once destroyed
                if not _is_missing(exc, libvirt.VIR_ERR_NO_NETWORK):
                    raise
            return True

    def list_networks(self, prefix: str = "zenith-net-") -> list[str]:
        """One summary line (``network_summary``) per libvirt network named ``prefix...``."""
        with _errors():
            nets = [n for n in self.conn.listAllNetworks(0) if n.name().startswith(prefix)]
            return [network_summary(n.XMLDesc(0), bool(n.isActive())) for n in nets]

    # -- nwfilters ---------------------------------------------------------------------------

    def nwfilter_supported(self) -> bool:
        """Whether the connection has nwfilters (libvirt's test driver has none)."""
        try:
            self.conn.listNWFilters()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                return False
            raise DriverError(exc.get_error_message() or str(exc), exc.get_error_code()) from exc
        return True

    def list_nwfilters(self, prefix: str = "zenith-port-") -> list[str]:
        """The names of the nwfilters named ``prefix...``; none where there are no nwfilters."""
        if not self.nwfilter_supported():
            return []
        with _errors():
            return sorted(n for n in self.conn.listNWFilters() if n.startswith(prefix))

    def define_nwfilter(self, port: PortFilter) -> str:
        """Define (or replace whole) the nwfilter of ``port``; libvirt re-applies it to every NIC
        that references it. Returns the XML defined. NotSupported where there are no nwfilters."""
        if not self.nwfilter_supported():
            raise NotSupported(f"{self.uri} has no nwfilter")
        with _errors():
            uuid = ""
            try:
                uuid = self.conn.nwfilterLookupByName(port.name).UUIDString()
            except libvirt.libvirtError as exc:
                if not _is_missing(exc, libvirt.VIR_ERR_NO_NWFILTER):
                    raise
            xml = nwfilter_xml(port, uuid=uuid)
            self.conn.nwfilterDefineXML(xml)
            return xml

    def undefine_nwfilter(self, name: str) -> bool:
        """Undefine nwfilter ``name``; False when there was none. Raises while a NIC still uses it."""
        if not self.nwfilter_supported():
            raise NotSupported(f"{self.uri} has no nwfilter")
        with _errors():
            try:
                nwf = self.conn.nwfilterLookupByName(name)
            except libvirt.libvirtError as exc:
                if _is_missing(exc, libvirt.VIR_ERR_NO_NWFILTER):
                    return False
                raise
            nwf.undefine()
            return True

    # -- NICs of domains -----------------------------------------------------------------------

    def plug_interface(self, name: str, nic: NicSpec) -> dict:
        """Plug ``nic`` into domain ``name``: live and into the definition on a running guest, the
        definition only on a shut-off domain or a simulated host (libvirt's test driver has no
        device hot-plug). Idempotent: a NIC of that MAC already there is reported as it is.
        ``{"plugged": bool, "live": bool, "target_dev": "znt..."}``."""
        with _errors():
            dom = self._lookup(name)
            simulated = self.resolved_domain_type() == "test"
            live = bool(dom.isActive()) and not simulated
            mac = nic.mac.lower()
            config = interfaces_of(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            running = interfaces_of(dom.XMLDesc(0)) if live else {}
            if mac in config and (not live or mac in running):
                found = running.get(mac) or config[mac]
                return {"plugged": False, "live": live, "target_dev": target_dev_of(found)}
            if simulated:
                inactive = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                self.conn.defineXML(with_interface(inactive, nic))
                return {"plugged": True, "live": False, "target_dev": tap_name(nic.port_id)}
            flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG if mac not in config else 0
            if live and mac not in running:
                flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
            dom.attachDeviceFlags(interface_xml(nic), flags)
            after = interfaces_of(dom.XMLDesc(0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE))
            return {"plugged": True, "live": live, "target_dev": target_dev_of(after.get(mac, ""))}

    def unplug_interface(self, name: str, mac: str) -> dict:
        """Unplug the NIC of ``mac`` from domain ``name`` (live and config; config only when not
        running or simulated). Idempotent: ``{"unplugged": False}`` when it was not there."""
        with _errors():
            dom = self._lookup(name)
            simulated = self.resolved_domain_type() == "test"
            mac = mac.lower()
            live = interfaces_of(dom.XMLDesc(0)).get(mac) if dom.isActive() and not simulated else None
            config = interfaces_of(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).get(mac)
            if live is None and config is None:
                return {"unplugged": False, "live": False, "target_dev": ""}
            target = target_dev_of(live or config)
            if simulated:
                inactive = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                self.conn.defineXML(without_interface(inactive, mac))
                return {"unplugged": True, "live": False, "target_dev": target}
            if config is not None:
                dom.detachDeviceFlags(config, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
            if live is not None:
                dom.detachDeviceFlags(live, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            return {"unplugged": True, "live": live is not None, "target_dev": target}
