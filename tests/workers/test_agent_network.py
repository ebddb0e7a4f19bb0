"""The networking side of the host agent, in this process against libvirt's test driver (a simulated
host): the XML a real host is given (networks, nwfilters, NICs, NAT rules), ensure's idempotency, and
the tasks' typed answers, which say what was simulated and record exactly what would be applied."""

from __future__ import annotations

import dataclasses
import uuid
import xml.etree.ElementTree as ET

import libvirt
import pytest

from workers import tasknames
from workers.agent import heartbeat, network, runtime, tasks
from workers.agent.drivers.base import DiskSpec, DomainSpec
from workers.agent.drivers.libvirt import networks as nx
from workers.messages import (
    DhcpHost,
    FilterRule,
    FloatingIpRequest,
    MessageError,
    NetworkReport,
    NetworkResult,
    NetworkSpec,
    NicSpec,
    PortFilter,
    SubnetSpec,
)


@pytest.fixture
def agent(monkeypatch, tmp_path):
    """This process as agent ``net-host`` (roles compute and network) on test:///default."""
    monkeypatch.setenv(runtime.HOST_ENV, "net-host")
    monkeypatch.setenv(runtime.URI_ENV, "test:///default")
    monkeypatch.setenv(runtime.VAR_ENV, str(tmp_path))
    monkeypatch.setenv(runtime.ROLES_ENV, "compute,network")
    monkeypatch.setattr(runtime, "_driver", None)
    yield runtime.driver()
    runtime.driver().close()
    monkeypatch.setattr(runtime, "_driver", None)


def net_spec(**changes) -> NetworkSpec:
    """A project network with a fresh name (test:///default's state is shared by the process)."""
    short = uuid.uuid4().hex[:8]
    spec = NetworkSpec(
        network_id=str(uuid.uuid4()),
        name=f"zenith-net-{short}",
        bridge=f"znb-{short}",
        vlan=101,
        subnets=(
            SubnetSpec(
                cidr="10.20.0.0/24",
                gateway="10.20.0.1",
                allocation_pools=(("10.20.0.10", "10.20.0.99"), ("10.20.0.150", "10.20.0.160")),
                dns_servers=("10.20.0.1",),
            ),
        ),
        dhcp_hosts=(
            DhcpHost(mac="52:54:00:AA:00:01", ip="10.20.0.11", hostname="vm-one"),
            DhcpHost(mac="52:54:00:aa:00:02", ip="10.20.0.12"),
        ),
    )
    return dataclasses.replace(spec, **changes)


def port_filter(**changes) -> PortFilter:
    port = str(uuid.uuid4())
    pf = PortFilter(
        port_id=port,
        name=f"zenith-port-{port[:8]}",
        mac="52:54:00:aa:00:01",
        ips=("10.20.0.11", "fd00::11"),
        rules=(
            FilterRule(direction="ingress", protocol="tcp", port_min=22, port_max=22),
            FilterRule(direction="ingress", protocol="tcp", port_min=80, remote_cidr="10.30.0.7/24"),
            FilterRule(direction="ingress", protocol="icmp", port_min=8, port_max=0),
            FilterRule(direction="egress"),
            FilterRule(direction="egress", ethertype="IPv6", protocol="udp", port_min=53, port_max=53),
        ),
    )
    return dataclasses.replace(pf, **changes)


def domain(drv) -> str:
    iid = str(uuid.uuid4())
    drv.spawn(
        DomainSpec(name=f"zenith-{iid}", uuid=iid, vcpus=1, memory_mb=64, disks=[DiskSpec(path="/r.qcow2")])
    )
    return f"zenith-{iid}"


def attrs(el: ET.Element | None) -> dict:
    assert el is not None
    return dict(el.attrib)


# -- the XML -------------------------------------------------------------------------------------


def test_project_network_xml_is_isolated_with_the_gateway_on_the_bridge_and_dhcp_hosts():
    spec = net_spec()
    root = ET.fromstring(nx.network_xml(spec))
    assert root.findtext("name") == spec.name and root.find("uuid") is None
    assert root.find("forward") is None  # isolated: no <forward> at all
    assert attrs(root.find("bridge"))["name"] == spec.bridge
    assert attrs(root.find("mtu")) == {"size": "1500"}
    assert root.find("vlan") is None  # no 802.1q asked for
    [ip] = root.findall("ip")
    assert attrs(ip) == {"address": "10.20.0.1", "prefix": "24"}
    ranges = [attrs(r) for r in ip.findall("dhcp/range")]
    assert ranges == [
        {"start": "10.20.0.10", "end": "10.20.0.99"},
        {"start": "10.20.0.150", "end": "10.20.0.160"},
    ]
    hosts = [attrs(h) for h in ip.findall("dhcp/host")]
    assert hosts == [
        {"mac": "52:54:00:aa:00:01", "name": "vm-one", "ip": "10.20.0.11"},
        {"mac": "52:54:00:aa:00:02", "ip": "10.20.0.12"},
    ]


def test_external_network_nats_and_tags_only_when_asked_and_ipv6_hosts_go_by_name():
    v4 = SubnetSpec(
        cidr="172.24.4.0/24", gateway="172.24.4.1", allocation_pools=(("172.24.4.10", "172.24.4.20"),)
    )
    v6 = SubnetSpec(
        cidr="fd00:1::/64",
        ip_version=6,
        gateway="fd00:1::1",
        allocation_pools=(("fd00:1::10", "fd00:1::20"),),
    )
    off = SubnetSpec(
        cidr="10.9.0.0/24", gateway="10.9.0.1", dhcp=False, allocation_pools=(("10.9.0.5", "10.9.0.6"),)
    )
    spec = net_spec(
        external=True,
        subnets=(v4, v6, off),
        dhcp_hosts=(
            DhcpHost(mac="52:54:00:aa:00:03", ip="fd00:1::13", hostname="six"),
            DhcpHost(mac="52:54:00:aa:00:04", ip="fd00:1::14"),  # no name: dnsmasq cannot pin it by MAC
            DhcpHost(mac="52:54:00:aa:00:05", ip="10.9.0.5"),  # that subnet has no DHCP
        ),
    )
    root = ET.fromstring(nx.network_xml(spec, uuid="00000000-0000-0000-0000-000000000001", vlan=True))
    assert root.findtext("uuid") == "00000000-0000-0000-0000-000000000001"
    assert attrs(root.find("forward")) == {"mode": "nat"}
    assert attrs(root.find("vlan/tag")) == {"id": "101"}
    ip4, ip6, plain = root.findall("ip")
    assert ip4.find("dhcp/host") is None
    assert attrs(ip6) == {"family": "ipv6", "address": "fd00:1::1", "prefix": "64"}
    assert [attrs(h) for h in ip6.findall("dhcp/host")] == [{"name": "six", "ip": "fd00:1::13"}]
    assert plain.find("dhcp") is None and attrs(plain)["address"] == "10.9.0.1"
    assert ET.fromstring(nx.network_xml(dataclasses.replace(spec, vlan=None), vlan=True)).find("vlan") is None


def test_bad_network_specs_are_refused():
    with pytest.raises(ValueError, match="15 characters"):
        nx.network_xml(net_spec(bridge="a-bridge-name-too-long"))
    bad = SubnetSpec(cidr="10.20.0.0/24", gateway="10.21.0.1")
    with pytest.raises(ValueError, match="outside"):
        nx.network_xml(net_spec(subnets=(bad,)))


def test_vlan_support_is_detected_from_the_kernel(tmp_path):
    assert nx.vlan_supported(str(tmp_path / "missing")) is False
    (tmp_path / "vlan").mkdir()
    assert nx.vlan_supported(str(tmp_path / "vlan")) is True
    assert nx.vlan_supported() is False  # this kernel: no 8021q (measured, issue 11)


def test_nwfilter_xml_anti_spoofing_stateful_one_rule_each_and_drop_the_rest():
    pf = port_filter()
    root = ET.fromstring(nx.nwfilter_xml(pf))
    assert attrs(root) == {"name": pf.name, "chain": "root"}
    clean = root.find("filterref")
    assert attrs(clean) == {"filter": "clean-traffic"}
    params = [(p.get("name"), p.get("value")) for p in clean.findall("parameter")]
    assert params == [("MAC", "52:54:00:aa:00:01"), ("IP", "10.20.0.11")]  # clean-traffic's IP is IPv4
    rules = root.findall("rule")
    described = [
        (r.get("action"), r.get("direction"), int(r.get("priority")), r[0].tag, dict(r[0].attrib))
        for r in rules
    ]
    assert described == [
        ("accept", "inout", 100, "all", {"state": "ESTABLISHED,RELATED"}),
        ("accept", "inout", 100, "all-ipv6", {"state": "ESTABLISHED,RELATED"}),
        ("accept", "out", 200, "udp", {"srcportstart": "68", "dstportstart": "67"}),
        ("accept", "in", 200, "udp", {"srcportstart": "67", "dstportstart": "68"}),
        ("accept", "in", 500, "tcp", {"state": "NEW", "dstportstart": "22", "dstportend": "22"}),
        (
            "accept",
            "in",
            500,
            "tcp",
            {
                "state": "NEW",
                "srcipaddr": "10.30.0.0",
                "srcipmask": "24",
                "dstportstart": "80",
                "dstportend": "80",
            },
        ),
        ("accept", "in", 500, "icmp", {"state": "NEW", "type": "8", "code": "0"}),
        ("accept", "out", 500, "all", {"state": "NEW"}),
        ("accept", "out", 500, "udp-ipv6", {"state": "NEW", "dstportstart": "53", "dstportend": "53"}),
        ("drop", "inout", 1000, "all", {}),
        ("drop", "inout", 1000, "all-ipv6", {}),
    ]
    egress_to = FilterRule(direction="egress", protocol="udp", port_min=53, remote_cidr="10.0.0.53/32")
    [rule] = ET.fromstring(nx.nwfilter_xml(port_filter(rules=(egress_to,)))).findall("rule[@priority='500']")
    assert rule[0].get("dstipaddr") == "10.0.0.53" and rule[0].get("srcipaddr") is None


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (FilterRule(direction="sideways"), "direction"),
        (FilterRule(direction="ingress", protocol="gre"), "no nwfilter protocol"),
        (FilterRule(direction="ingress", remote_cidr="fd00::/64"), "not an IPv4 network"),
        (FilterRule(direction="ingress", remote_cidr="10.0.0.300/8"), "does not appear"),
    ],
)
def test_bad_filter_rules_are_refused(rule, message):
    with pytest.raises(ValueError, match=message):
        nx.nwfilter_xml(port_filter(rules=(rule,)))


def test_nic_xml_is_a_virtio_nic_on_its_network_with_its_filter():
    pf = port_filter()
    nic = NicSpec(
        port_id=pf.port_id, mac="52:54:00:AA:00:01", network="zenith-net-x", bridge="znb-x", filter=pf
    )
    iface = ET.fromstring(nx.interface_xml(nic))
    assert attrs(iface) == {"type": "network"}
    assert attrs(iface.find("mac")) == {"address": "52:54:00:aa:00:01"}
    assert attrs(iface.find("source")) == {"network": "zenith-net-x"}
    assert attrs(iface.find("target")) == {"dev": "znt" + pf.port_id.replace("-", "")[:8]}
    assert attrs(iface.find("model")) == {"type": "virtio"}
    assert attrs(iface.find("filterref")) == {"filter": pf.name}
    bare = ET.fromstring(nx.interface_xml(dataclasses.replace(nic, filter=None)))
    assert bare.find("filterref") is None


def test_floating_ip_rules_dnat_in_snat_out_and_forward_both_ways():
    req = FloatingIpRequest(
        floating_ip="172.24.4.10", fixed_ip="10.20.0.11", external_bridge="znb-ext", internal_bridge="znb-in"
    )
    lines = [nx.rule_text(rule) for rule in nx.floating_ip_rules(req)]
    tag = "-m comment --comment zenith-fip-172.24.4.10"
    assert lines == [
        f"iptables -t nat -A PREROUTING -d 172.24.4.10/32 -j DNAT --to-destination 10.20.0.11 {tag}",
        f"iptables -t nat -A OUTPUT -d 172.24.4.10/32 -j DNAT --to-destination 10.20.0.11 {tag}",
        f"iptables -t nat -A POSTROUTING -s 10.20.0.11/32 -j SNAT --to-source 172.24.4.10 {tag}",
        f"iptables -t filter -A FORWARD -d 10.20.0.11/32 -o znb-in -j ACCEPT {tag}",
        f"iptables -t filter -A FORWARD -s 10.20.0.11/32 -i znb-in -j ACCEPT {tag}",
    ]
    assert nx.floating_ip_address(req) == ["172.24.4.10/32", "dev", "znb-ext"]
    with pytest.raises(ValueError):
        nx.floating_ip_rules(dataclasses.replace(req, fixed_ip="10.20.0.1; reboot"))


# -- the driver on libvirt's test driver -----------------------------------------------------------


def test_ensure_defines_starts_and_autostarts_then_changes_nothing(agent):
    spec = net_spec()
    done = agent.ensure_network(spec)
    assert (done["created"], done["changed"], done["active"]) == (
        True,
        ["defined", "started", "autostart"],
        True,
    )
    assert done["vlan_tagged"] is False  # a simulated host tags nothing
    net = agent.conn.networkLookupByName(spec.name)
    assert net.isActive() and net.autostart()
    uuid_before, xml_before = net.UUIDString(), net.XMLDesc(0)
    again = agent.ensure_network(spec)
    assert (again["created"], again["changed"]) == (False, [])
    net = agent.conn.networkLookupByName(spec.name)
    assert (net.UUIDString(), net.XMLDesc(0)) == (uuid_before, xml_before)
    assert agent.delete_network(spec.name) is True
    assert agent.delete_network(spec.name) is False
    assert spec.name not in agent.conn.listNetworks() + agent.conn.listDefinedNetworks()


def test_ensure_replaces_the_dhcp_hosts_exactly_in_place(agent):
    spec = net_spec()
    agent.ensure_network(spec)
    uuid_before = agent.conn.networkLookupByName(spec.name).UUIDString()
    kept, _dropped = spec.dhcp_hosts
    added = DhcpHost(mac="52:54:00:aa:00:09", ip="10.20.0.19", hostname="vm-nine")
    updated = dataclasses.replace(spec, dhcp_hosts=(kept, added))
    done = agent.ensure_network(updated)
    assert done["changed"] == ["dhcp host removed 10.20.0.12", "dhcp host added 10.20.0.19"]
    net = agent.conn.networkLookupByName(spec.name)
    assert net.UUIDString() == uuid_before and net.isActive()
    hosts = {h.get("mac"): h.get("ip") for h in ET.fromstring(net.XMLDesc(0)).findall("ip/dhcp/host")}
    assert hosts == {"52:54:00:aa:00:01": "10.20.0.11", "52:54:00:aa:00:09": "10.20.0.19"}
    assert agent.ensure_network(updated)["changed"] == []
    assert agent.ensure_network(dataclasses.replace(spec, dhcp_hosts=()))["changed"] == [
        "dhcp host removed 10.20.0.11",
        "dhcp host removed 10.20.0.19",
    ]
    agent.delete_network(spec.name)


def test_ensure_redefines_a_changed_network_keeping_its_uuid(agent):
    spec = net_spec()
    agent.ensure_network(spec)
    uuid_before = agent.conn.networkLookupByName(spec.name).UUIDString()
    bigger = SubnetSpec(
        cidr="10.20.0.0/23", gateway="10.20.0.1", allocation_pools=(("10.20.1.1", "10.20.1.9"),)
    )
    changed = dataclasses.replace(spec, mtu=1400, subnets=(bigger,))
    assert agent.ensure_network(changed)["changed"] == ["stopped", "redefined", "started"]
    net = agent.conn.networkLookupByName(spec.name)
    root = ET.fromstring(net.XMLDesc(0))
    assert net.UUIDString() == uuid_before and net.isActive()
    assert attrs(root.find("mtu")) == {"size": "1400"} and attrs(root.find("ip"))["prefix"] == "23"
    assert agent.ensure_network(changed)["changed"] == []
    # A network stopped behind the agent's back is started again.
    net.destroy()
    assert agent.ensure_network(changed)["changed"] == ["started"]
    agent.delete_network(spec.name)


def test_plug_and_unplug_a_nic_on_a_simulated_host_rewrite_the_definition(agent):
    dom = domain(agent)
    pf = port_filter()
    nic = NicSpec(
        port_id=pf.port_id, mac=pf.mac, network="zenith-net-x", bridge="znb-x", filter=pf, domain=dom
    )
    plugged = agent.plug_interface(dom, nic)
    assert plugged == {"plugged": True, "live": False, "target_dev": nx.tap_name(pf.port_id)}
    definition = agent.conn.lookupByName(dom).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    [iface] = ET.fromstring(definition).findall("devices/interface")
    assert attrs(iface.find("filterref")) == {"filter": pf.name}
    assert agent.plug_interface(dom, nic)["plugged"] is False  # idempotent
    assert agent.unplug_interface(dom, pf.mac.upper())["unplugged"] is True
    assert ET.fromstring(agent.conn.lookupByName(dom).XMLDesc(0)).find("devices/interface") is None
    assert agent.unplug_interface(dom, pf.mac)["unplugged"] is False
    agent.destroy_and_undefine(dom)


def test_the_test_driver_has_no_nwfilter_and_says_so(agent):
    from workers.agent.drivers.base import NotSupported

    assert agent.nwfilter_supported() is False and agent.list_nwfilters() == []
    with pytest.raises(NotSupported):
        agent.define_nwfilter(port_filter())


# -- the tasks -------------------------------------------------------------------------------------


def answer(payload: dict) -> NetworkResult:
    return NetworkResult.from_dict(payload)


def test_tasks_are_registered_under_the_contract_names():
    from celery import current_app

    for name in (
        tasknames.AGENT_ENSURE_NETWORK,
        tasknames.AGENT_DELETE_NETWORK,
        tasknames.AGENT_SET_FLOATING_IP,
        tasknames.AGENT_PLUG_NIC,
        tasknames.AGENT_UNPLUG_NIC,
        tasknames.AGENT_APPLY_PORT_FILTER,
    ):
        assert name in current_app.tasks, name


def test_ensure_and_delete_network_tasks(agent):
    spec = net_spec()
    first = answer(network.ensure_network(spec.as_dict()))
    assert first.ok and first.simulated and first.existed is False
    assert first.applied == (
        f"network {spec.name} (bridge {spec.bridge}, 10.20.0.1/24, 2 DHCP hosts, active)",
    )
    assert "VLAN 101 not tagged (a simulated host tags nothing)" in first.message
    assert "no dnsmasq" in first.message
    second = answer(network.ensure_network(spec.as_dict()))
    assert second.ok and second.existed and second.message.startswith(f"{spec.name}: unchanged")
    gone = answer(network.delete_network(spec.as_dict()))
    assert gone.ok and gone.existed
    again = answer(network.delete_network(spec.as_dict()))
    assert again.ok and not again.existed and "was not there" in again.message


def test_bad_messages_are_answers_not_exceptions(agent):
    assert "missing keys" in answer(network.ensure_network({"name": "x"})).error
    assert "unknown keys" in answer(network.set_floating_ip({"floating_ip": "1.2.3.4", "bogus": 1})).error
    bad_bridge = answer(network.ensure_network(net_spec(bridge="b" * 16).as_dict()))
    assert not bad_bridge.ok and "15 characters" in bad_bridge.error
    nic = NicSpec(port_id="p", mac="52:54:00:00:00:01", network="n", bridge="b", domain="zenith-missing")
    missing = answer(network.plug_nic(nic.as_dict()))
    assert not missing.ok and "no domain zenith-missing on host net-host" in missing.error
    assert (
        "names its domain" in answer(network.unplug_nic(dataclasses.replace(nic, domain="").as_dict())).error
    )
    with pytest.raises(MessageError):
        NicSpec.from_dict({"port_id": "p"})


def test_port_filter_on_a_simulated_host_is_recorded_not_applied(agent):
    pf = port_filter()
    result = answer(network.apply_port_filter(pf.as_dict()))
    assert result.ok and result.simulated and result.existed is False
    assert result.applied == (nx.nwfilter_xml(pf),)
    assert "recorded, not applied" in result.message
    assert network.recorded("filter") == {pf.name: [nx.nwfilter_xml(pf)]}
    narrower = dataclasses.replace(pf, rules=pf.rules[:1])
    replaced = answer(network.apply_port_filter(narrower.as_dict()))
    assert replaced.existed and network.recorded("filter") == {pf.name: [nx.nwfilter_xml(narrower)]}


def test_floating_ip_on_a_simulated_host_is_recorded_then_forgotten(agent):
    req = FloatingIpRequest(
        floating_ip="172.24.4.10", fixed_ip="10.20.0.11", external_bridge="znb-ext", internal_bridge="znb-in"
    )
    on = answer(network.set_floating_ip(req.as_dict()))
    assert on.ok and on.simulated and not on.existed
    assert on.applied[0] == "ip addr add 172.24.4.10/32 dev znb-ext"
    assert on.applied[1:] == tuple(nx.rule_text(r, "-I") for r in nx.floating_ip_rules(req))
    assert "recorded, not applied" in on.message
    assert list(network.recorded("floating")) == ["172.24.4.10"]
    assert answer(network.set_floating_ip(req.as_dict())).existed  # a redelivery
    off = answer(network.set_floating_ip(dataclasses.replace(req, associate=False).as_dict()))
    assert off.ok and off.simulated and off.existed and off.applied == ()
    assert network.recorded("floating") == {}
    again = answer(network.set_floating_ip(dataclasses.replace(req, associate=False).as_dict()))
    assert again.ok and not again.existed


def test_plug_and_unplug_nic_tasks(agent):
    dom = domain(agent)
    pf = port_filter()
    nic = NicSpec(
        port_id=pf.port_id, mac=pf.mac, network="zenith-net-x", bridge="znb-x", filter=pf, domain=dom
    )
    plugged = answer(network.plug_nic(nic.as_dict()))
    assert plugged.ok and plugged.simulated and not plugged.existed
    assert plugged.target_dev == nx.tap_name(pf.port_id)
    assert plugged.applied == (
        f"interface {pf.mac} network zenith-net-x tap {plugged.target_dev}",
        nx.nwfilter_xml(pf),
    )
    assert "in the definition only" in plugged.message and "no guest saw it" in plugged.message
    assert answer(network.plug_nic(nic.as_dict())).existed
    unplugged = answer(network.unplug_nic(nic.as_dict()))
    assert unplugged.ok and unplugged.existed and unplugged.target_dev == plugged.target_dev
    assert network.recorded("filter") == {}  # the port's filter went with its NIC
    assert not answer(network.unplug_nic(nic.as_dict())).existed
    agent.destroy_and_undefine(dom)


def test_spawn_with_nics_puts_them_in_the_domain_and_without_none(agent, sent):
    from workers.messages import VolumeConnection

    root = VolumeConnection(type="file", path="/var/lib/zenith/volumes/v.qcow2", format="qcow2")
    image = {"name": "x", "url": "http://127.0.0.1:9/never", "size": 0, "disk_format": "qcow2"}

    def spawn(**extra) -> str:
        iid = str(uuid.uuid4())
        vm = {"id": iid, "name": "vm", "domain": f"zenith-{iid}", "vcpus": 1, "memory_mb": 64, "disk_gb": 1}
        result = tasks.spawn_instance("op", {**vm, **extra}, image, root_volume=root.as_dict())
        assert result["ok"], result
        return agent.conn.lookupByName(vm["domain"]).XMLDesc(0)

    assert ET.fromstring(spawn()).find("devices/interface") is None
    pf = port_filter()
    one = NicSpec(port_id=pf.port_id, mac=pf.mac, network="zenith-net-a", bridge="znb-a", filter=pf)
    two = NicSpec(port_id=str(uuid.uuid4()), mac="52:54:00:aa:00:02", network="zenith-net-b", bridge="znb-b")
    ifaces = ET.fromstring(spawn(nics=[one.as_dict(), two.as_dict()])).findall("devices/interface")
    assert [(i.find("mac").get("address"), i.find("source").get("network")) for i in ifaces] == [
        (pf.mac, "zenith-net-a"),
        ("52:54:00:aa:00:02", "zenith-net-b"),
    ]
    assert ifaces[0].find("filterref").get("filter") == pf.name and ifaces[1].find("filterref") is None
    assert list(network.recorded("filter")) == [pf.name]  # its filter recorded before the domain
    iid = str(uuid.uuid4())
    vm = {"id": iid, "name": "vm", "domain": f"zenith-{iid}", "vcpus": 1, "memory_mb": 64, "disk_gb": 1}
    bad = tasks.spawn_instance("op", {**vm, "nics": [{"mac": "x"}]}, image, root_volume=root.as_dict())
    assert not bad["ok"] and "missing keys" in bad["error"]


def test_heartbeat_network_section(agent, monkeypatch):
    spec = net_spec()
    network.ensure_network(spec.as_dict())
    network.apply_port_filter(port_filter(name="zenith-port-hb").as_dict())
    heartbeats = []
    monkeypatch.setattr(
        heartbeat.current_app, "send_task", lambda n, kwargs=None, **o: heartbeats.append(kwargs)
    )
    heartbeat.report("net-host", "test:///default")
    info = heartbeats[0]["info"]
    assert info["roles"] == ["compute", "network"]
    report = NetworkReport.from_dict(info["network"])
    assert report.simulated and report.vlan_tagging is False
    assert (
        f"network {spec.name} (bridge {spec.bridge}, 10.20.0.1/24, 2 DHCP hosts, active)" in report.networks
    )
    assert report.filters == ("zenith-port-hb",) and report.floating_ips == ()
    monkeypatch.setenv(runtime.ROLES_ENV, "compute")
    heartbeat.report("net-host", "test:///default")
    assert "network" not in heartbeats[1]["info"]
    network.delete_network(spec.as_dict())


def test_dhcp_is_served_on_one_subnet_per_ip_version_and_the_rest_is_said(agent):
    first = SubnetSpec(
        cidr="10.20.0.0/24", gateway="10.20.0.1", allocation_pools=(("10.20.0.10", "10.20.0.20"),)
    )
    second = SubnetSpec(
        cidr="10.21.0.0/24", gateway="10.21.0.1", allocation_pools=(("10.21.0.10", "10.21.0.20"),)
    )
    no_gateway = SubnetSpec(cidr="10.22.0.0/24", allocation_pools=(("10.22.0.10", "10.22.0.20"),))
    spec = net_spec(subnets=(first, second, no_gateway), vlan=None)
    assert nx.dhcp_unserved(spec) == ["10.21.0.0/24", "10.22.0.0/24"]
    ip_first, ip_second = ET.fromstring(nx.network_xml(spec)).findall("ip")
    assert ip_first.find("dhcp") is not None and ip_second.find("dhcp") is None
    result = answer(network.ensure_network(spec.as_dict()))
    assert result.ok and "no DHCP on 10.21.0.0/24, 10.22.0.0/24" in result.message
    network.delete_network(spec.as_dict())
