"""Networks on a real libvirtd, every packet and rule inside a network namespace this test creates.

A libvirtd of its own runs in namespace ``zenith-nt-<random>`` (``ip netns add``, lo up) with private
copies of libvirt's directories (a mount namespace: ``/run/libvirt``, ``/var/lib/libvirt``,
``/etc/libvirt``... bound to a temporary directory), so that its bridges, taps, dnsmasq and iptables
rules live in that namespace, the machine's own libvirtd (``workers/agent/realhost.sh``) and
network are untouched, and its socket is reached from here by path. Checked for real: a project
network's bridge has its gateway address and dnsmasq serves exactly its DHCP hosts (updated in
place); a port's nwfilter is defined and replaced whole; a floating IP's address and NAT rules are
added in the namespace by the agent's task and removed again; a guest spawned with a NIC sees it,
its tap sits on the network's bridge with the port's filter rules, and a second NIC is plugged into
and unplugged from the running guest; two guests get their pinned addresses by DHCP and one pings
the other while the other's filter allows ICMP, not after the filter is replaced without it, and
again once it is back. The only packets are those guests' and dnsmasq's, on the namespace's bridge.

Skipped where it cannot run: not root, or no libvirtd / ip / unshare; the guest tests also need
the test guest (tests/guest/build.sh, ``ZENITH_GUEST_DIR``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest

from tests.workers.test_agent_network import net_spec
from workers.agent import network, runtime
from workers.agent.drivers.libvirt import LibvirtDriver
from workers.agent.drivers.libvirt import networks as nx
from workers.messages import (
    DhcpHost,
    FilterRule,
    FloatingIpRequest,
    NetworkResult,
    NetworkSpec,
    NicSpec,
    PortFilter,
    SubnetSpec,
)

from .conftest import ROOT, Guest, Guests, wait_for

pytestmark = pytest.mark.realhost

PRIVATE_DIRS = {  # the daemon's directories, bound to <tmp>/<key> in its mount namespace
    "run": "/run/libvirt",
    "lib": "/var/lib/libvirt",
    "cache": "/var/cache/libvirt",
    "etc": "/etc/libvirt",
    "log": "/var/log/libvirt",
}
READY = 30.0
ECHO = """
import os, socket, struct, sys, time
address, timeout = sys.argv[1], float(sys.argv[2])
ident = os.getpid() & 0xFFFF
def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"zenith"
packet = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
    s.sendto(packet, (address, 0))
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            data, (source, _) = s.recvfrom(2048)
        except TimeoutError:
            break
        icmp = data[(data[0] & 0x0F) * 4 :]
        if source == address and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
            sys.exit(0)
sys.exit(1)
"""


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "not root: cannot create a network namespace"
    for tool in ("libvirtd", "ip", "unshare", "iptables", "dnsmasq"):
        if shutil.which(tool) is None:
            return f"no {tool} on this machine"
    if not Path("/etc/libvirt/nwfilter/clean-traffic.xml").exists():
        return "no libvirt nwfilter definitions (package libvirt-daemon-config-nwfilter)"
    return None


@dataclasses.dataclass
class Namespace:
    name: str
    uri: str
    state: Path
    pid: int

    def echo(self, address: str, timeout: float = 1.0) -> bool:
        """Whether ``address`` answers one ICMP echo sent from inside the namespace (this machine
        has no ping: ``ECHO`` run by this interpreter there)."""
        argv = ["ip", "netns", "exec", self.name, sys.executable, "-c", ECHO, address, str(timeout)]
        return subprocess.run(argv, capture_output=True, timeout=timeout + 10).returncode == 0

    def run(self, *argv: str) -> str:
        done = subprocess.run(
            ["ip", "netns", "exec", self.name, *argv], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, f"{argv}: {done.stderr}"
        return done.stdout


def _stop(ns: str, pid: int | None) -> None:
    """Stop the namespace's libvirtd, then whatever it left running in the namespace (dnsmasq,
    QEMU: all started by this test), and delete the namespace."""
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    listed = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    for left in listed.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(left), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture(scope="module")
def netns(tmp_path_factory):
    reason = _missing()
    if reason:
        if os.environ.get("ZENITH_REQUIRE_REALHOST") == "1":
            pytest.fail(f"real host required but unavailable: {reason}")
        pytest.skip(reason)
    name = f"zenith-nt-{uuid.uuid4().hex[:6]}"
    state = tmp_path_factory.mktemp("netns")
    for key in PRIVATE_DIRS:
        if key != "etc":
            (state / key).mkdir()
    (state / "log" / "qemu").mkdir()
    shutil.copytree("/etc/libvirt", state / "etc", symlinks=True)
    # QEMU as root with its output to files (no virtlogd), as realhost.sh configures it.
    (state / "etc" / "qemu.conf").write_text('user = "root"\ngroup = "root"\nstdio_handler = "file"\n')
    conf = state / "libvirtd.conf"
    conf.write_text(f'log_outputs = "3:file:{state}/libvirtd.log"\n')
    pidfile = state / "libvirtd.pid"
    binds = " && ".join(f"mount --bind {state / key} {path}" for key, path in PRIVATE_DIRS.items())
    pid = None
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(
            ["ip", "netns", "exec", name, "unshare", "-m", "--propagation", "private", "sh", "-c",
             f"{binds} && exec libvirtd -d -f {conf} -p {pidfile}"],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        uri = f"qemu:///system?socket={state / 'run' / 'libvirt-sock'}"
        deadline = time.monotonic() + READY
        while True:
            try:
                libvirt.open(uri).close()
                break
            except libvirt.libvirtError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the namespace's libvirtd did not answer within {READY:.0f} s")
                time.sleep(0.1)
        pid = int(pidfile.read_text())
        yield Namespace(name=name, uri=uri, state=state, pid=pid)
    finally:
        _stop(name, pid if pid is not None else (int(pidfile.read_text()) if pidfile.exists() else None))


@pytest.fixture(scope="module")
def drv(netns):
    d = LibvirtDriver(netns.uri, domain_type="auto", pool_path=str(netns.state / "pool"))
    d.ensure_pool()
    yield d
    d.close()


@pytest.fixture
def agent(netns, drv, monkeypatch):
    """The agent's tasks on the namespace's libvirtd: its commands run in the namespace."""
    monkeypatch.setenv(runtime.HOST_ENV, "netns-host")
    monkeypatch.setenv(runtime.URI_ENV, netns.uri)
    monkeypatch.setenv(runtime.VAR_ENV, str(netns.state / "agent"))
    monkeypatch.setenv(runtime.POOL_ENV, str(netns.state / "pool"))
    monkeypatch.setenv(network.NETNS_ENV, netns.name)
    monkeypatch.setattr(runtime, "_driver", None)
    yield runtime.driver()
    runtime.driver().close()
    monkeypatch.setattr(runtime, "_driver", None)


def project_network(**changes) -> NetworkSpec:
    subnet = SubnetSpec(
        cidr="10.60.0.0/24", gateway="10.60.0.1", allocation_pools=(("10.60.0.10", "10.60.0.99"),)
    )
    hosts = (DhcpHost(mac="52:54:00:cc:00:01", ip="10.60.0.11", hostname="one"),)
    return net_spec(**{"subnets": (subnet,), "dhcp_hosts": hosts, **changes})


def hostsfile(netns: Namespace, spec: NetworkSpec) -> list[str]:
    path = netns.state / "lib" / "dnsmasq" / f"{spec.name}.hostsfile"
    return sorted(path.read_text().split()) if path.exists() else []


def test_a_project_network_is_a_bridge_with_dnsmasq_serving_exactly_its_hosts(netns, agent):
    spec = project_network()
    first = NetworkResult.from_dict(network.ensure_network(spec.as_dict()))
    assert (
        first.ok
        and not first.simulated
        and "VLAN 101 not tagged (this host's kernel has no 802.1q)" in first.message
    )
    addresses = netns.run("ip", "-o", "addr", "show", "dev", spec.bridge)
    assert "inet 10.60.0.1/24" in addresses
    assert hostsfile(netns, spec) == ["52:54:00:cc:00:01,10.60.0.11,one"]
    dnsmasq = netns.run("pgrep", "-f", f"dnsmasq/{spec.name}.conf").split()
    assert dnsmasq, "dnsmasq serves the network"
    assert NetworkResult.from_dict(network.ensure_network(spec.as_dict())).message.startswith(
        f"{spec.name}: unchanged"
    )
    moved = dataclasses.replace(
        spec, dhcp_hosts=(DhcpHost(mac="52:54:00:cc:00:02", ip="10.60.0.12", hostname="two"),)
    )
    updated = NetworkResult.from_dict(network.ensure_network(moved.as_dict()))
    assert (
        "dhcp host removed 10.60.0.11" in updated.message and "dhcp host added 10.60.0.12" in updated.message
    )
    assert hostsfile(netns, spec) == ["52:54:00:cc:00:02,10.60.0.12,two"]
    assert netns.run("pgrep", "-f", f"dnsmasq/{spec.name}.conf").split() == dnsmasq  # updated in place
    assert "inet 10.60.0.1/24" in netns.run("ip", "-o", "addr", "show", "dev", spec.bridge)
    # The machine's own namespace has no such bridge.
    assert subprocess.run(["ip", "link", "show", spec.bridge], capture_output=True).returncode != 0
    gone = NetworkResult.from_dict(network.delete_network(spec.as_dict()))
    assert gone.ok and gone.existed
    assert (
        subprocess.run(
            ["ip", "netns", "exec", netns.name, "ip", "link", "show", spec.bridge], capture_output=True
        ).returncode
        != 0
    )


def port_filter(mac: str, ip: str) -> PortFilter:
    port = str(uuid.uuid4())
    return PortFilter(
        port_id=port,
        name=f"zenith-port-{port[:8]}",
        mac=mac,
        ips=(ip,),
        rules=(
            FilterRule(direction="ingress", protocol="tcp", port_min=22, port_max=22),
            FilterRule(direction="ingress", protocol="icmp", port_min=8, remote_cidr="10.60.0.0/24"),
            FilterRule(direction="egress"),
        ),
    )


def test_a_port_filter_is_defined_and_replaced_whole(netns, agent):
    pf = port_filter("52:54:00:cc:00:03", "10.60.0.13")
    done = NetworkResult.from_dict(network.apply_port_filter(pf.as_dict()))
    assert done.ok and not done.simulated and done.applied[0] == nx.nwfilter_xml(pf)
    defined = ET.fromstring(agent.conn.nwfilterLookupByName(pf.name).XMLDesc(0))
    assert len(defined.findall("rule")) == 4 + 3 + 2  # stateful x2, DHCP x2, 3 rules, drops x2
    narrower = dataclasses.replace(pf, rules=pf.rules[:1])
    assert NetworkResult.from_dict(network.apply_port_filter(narrower.as_dict())).ok
    defined = ET.fromstring(agent.conn.nwfilterLookupByName(pf.name).XMLDesc(0))
    assert len(defined.findall("rule[@priority='500']")) == 1
    assert pf.name in network.report_section()["filters"]
    assert agent.undefine_nwfilter(pf.name) and not agent.undefine_nwfilter(pf.name)


def test_a_floating_ip_is_nated_in_the_namespace_and_removed(netns, agent):
    external = project_network(
        external=True,
        vlan=None,
        subnets=(SubnetSpec(cidr="172.24.6.0/24", gateway="172.24.6.1", dhcp=False),),
        dhcp_hosts=(),
    )
    internal = project_network()
    for spec in (external, internal):
        assert network.ensure_network(spec.as_dict())["ok"]
    req = FloatingIpRequest(
        floating_ip="172.24.6.20",
        fixed_ip="10.60.0.11",
        external_bridge=external.bridge,
        internal_bridge=internal.bridge,
    )
    on = NetworkResult.from_dict(network.set_floating_ip(req.as_dict()))
    assert on.ok and not on.simulated and not on.existed, on
    rules = [line for line in netns.run("iptables-save").splitlines() if "zenith-fip-172.24.6.20" in line]
    assert len(rules) == 5 and any("-j DNAT --to-destination 10.60.0.11" in r for r in rules)
    assert "inet 172.24.6.20/32" in netns.run("ip", "-o", "addr", "show", "dev", external.bridge)
    assert network.set_floating_ip(req.as_dict())["existed"]  # again: nothing added twice
    assert (
        len([line for line in netns.run("iptables-save").splitlines() if "zenith-fip-172.24.6.20" in line])
        == 5
    )
    assert network.report_section()["floating_ips"] == ["172.24.6.20"]
    host_rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert "zenith-fip-172.24.6.20" not in host_rules  # the machine's own firewall is untouched
    off = NetworkResult.from_dict(
        network.set_floating_ip(dataclasses.replace(req, associate=False).as_dict())
    )
    assert off.ok and off.existed
    assert "zenith-fip" not in netns.run("iptables-save")
    assert "172.24.6.20" not in netns.run("ip", "-o", "addr", "show", "dev", external.bridge)
    # A failure half-way (iptables refuses an interface name this long) leaves nothing behind.
    bad = dataclasses.replace(req, internal_bridge="a-bridge-name-too-long")
    failed = NetworkResult.from_dict(network.set_floating_ip(bad.as_dict()))
    assert not failed.ok and "iptables" in failed.error
    assert "zenith-fip" not in netns.run("iptables-save")
    assert "172.24.6.20" not in netns.run("ip", "-o", "addr", "show", "dev", external.bridge)
    for spec in (external, internal):
        assert network.delete_network(spec.as_dict())["existed"]


@pytest.fixture(scope="module")
def guest() -> Guest:
    """The test guest (built if it is not, or is of an older version), or a skip saying why not."""
    built = subprocess.run([str(ROOT / "tests/guest/build.sh")], capture_output=True, text=True, timeout=600)
    if built.returncode != 0:
        pytest.skip(f"no test guest: {built.stderr.strip().splitlines()[-1:]}")
    out = Path(built.stdout.strip().splitlines()[-1])
    return Guest(
        kernel=str(out / "vmlinuz"),
        ramdisk=str(out / "initrd.img"),
        root_disk=str(out / "root.qcow2"),
        cmdline=(out / "cmdline").read_text().strip(),
    )


def console(path: str) -> str:
    return Path(path).read_text(errors="replace") if Path(path).exists() else ""


class Boots(Guests):
    """Test guests on the namespace's libvirtd, booted with the NICs given (each port's filter
    applied first); removed after the test."""

    def __call__(self, nics: list[NicSpec], extra_cmdline: str = "") -> tuple[str, str]:
        for nic in nics:
            if nic.filter is not None:
                assert network.apply_port_filter(nic.filter.as_dict())["ok"]
        spec = dataclasses.replace(self.spec(extra_cmdline), nics=[nx.driver_nic(nic) for nic in nics])
        self.driver.spawn(spec)
        return spec.name, spec.console_log


@pytest.fixture
def boot(agent, guest):
    boots = Boots(agent, guest)
    yield boots
    boots.cleanup()


def test_a_guest_gets_its_nics_with_their_filters_and_a_live_plug_and_unplug(netns, agent, boot):
    spec = project_network()
    assert network.ensure_network(spec.as_dict())["ok"]
    pf = port_filter("52:54:00:cc:00:11", "10.60.0.11")
    first = NicSpec(port_id=pf.port_id, mac=pf.mac, network=spec.name, bridge=spec.bridge, filter=pf)
    try:
        domain, log = boot([first])
        wait_for(lambda: "ZENITH GUEST READY" in console(log), 90, "the guest's boot")
        wait_for(lambda: f"{pf.mac}" in console(log), 20, "the guest to see its first NIC")
        tap = nx.tap_name(pf.port_id)
        assert f"master {spec.bridge}" in netns.run("ip", "-o", "link", "show", "dev", tap)
        assert tap in netns.run("iptables-save")  # the port's nwfilter applied on its tap
        assert subprocess.run(["ip", "link", "show", tap], capture_output=True).returncode != 0

        second = NicSpec(
            port_id=str(uuid.uuid4()),
            mac="52:54:00:cc:00:12",
            network=spec.name,
            bridge=spec.bridge,
            domain=domain,
        )
        plugged = NetworkResult.from_dict(network.plug_nic(second.as_dict()))
        assert plugged.ok and not plugged.simulated and "live and in the definition" in plugged.message, (
            plugged
        )
        assert plugged.target_dev == nx.tap_name(second.port_id)
        wait_for(lambda: "52:54:00:cc:00:12" in console(log), 20, "the guest to see the plugged NIC")
        assert NetworkResult.from_dict(network.plug_nic(second.as_dict())).existed
        dom = agent.conn.lookupByName(domain)
        assert "52:54:00:cc:00:12" in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        unplugged = NetworkResult.from_dict(network.unplug_nic(second.as_dict()))
        assert unplugged.ok and unplugged.existed
        assert "52:54:00:cc:00:12" not in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        wait_for(
            lambda: "52:54:00:cc:00:12" not in dom.XMLDesc(0), 20, "the guest to release the unplugged NIC"
        )
    finally:
        boot.cleanup()
        network.delete_network(spec.as_dict())


def test_two_guests_get_their_addresses_by_dhcp_and_reach_each_other_as_their_filters_say(netns, agent, boot):
    """Guest A pings B, both on one project network with their Zenith addresses pinned by MAC;
    B's filter allows ICMP from the subnet, then (replaced whole) no longer, then again. Every
    packet stays on the namespace's bridge."""
    a_mac, b_mac = "52:54:00:cc:00:21", "52:54:00:cc:00:22"
    spec = project_network(
        dhcp_hosts=(
            DhcpHost(mac=a_mac, ip="10.60.0.21", hostname="guest-a"),
            DhcpHost(mac=b_mac, ip="10.60.0.22", hostname="guest-b"),
        )
    )
    assert network.ensure_network(spec.as_dict())["ok"]
    pf_a, pf_b = port_filter(a_mac, "10.60.0.21"), port_filter(b_mac, "10.60.0.22")
    closed = dataclasses.replace(pf_b, rules=tuple(r for r in pf_b.rules if r.protocol != "icmp"))
    nic_a = NicSpec(port_id=pf_a.port_id, mac=a_mac, network=spec.name, bridge=spec.bridge, filter=pf_a)
    nic_b = NicSpec(port_id=pf_b.port_id, mac=b_mac, network=spec.name, bridge=spec.bridge, filter=pf_b)
    try:
        _, log_b = boot([nic_b], "zenith.dhcp")
        _, log_a = boot([nic_a], "zenith.dhcp zenith.ping=10.60.0.22")
        wait_for(lambda: "ZENITH DHCP eth0 10.60.0.22" in console(log_b), 90, "guest B's address by DHCP")
        wait_for(lambda: "ZENITH DHCP eth0 10.60.0.21" in console(log_a), 90, "guest A's address by DHCP")
        up, down = "ZENITH PING 10.60.0.22 up", "ZENITH PING 10.60.0.22 down"

        def pings() -> list[str]:  # A's reports, from its first success on (it starts "down")
            lines = [line.strip() for line in console(log_a).splitlines() if "ZENITH PING" in line]
            return lines[lines.index(up) :] if up in lines else []

        wait_for(pings, 30, "A reaching B")
        assert NetworkResult.from_dict(network.apply_port_filter(closed.as_dict())).ok
        wait_for(lambda: pings()[-1:] == [down], 30, "B's filter to stop A's pings")
        assert NetworkResult.from_dict(network.apply_port_filter(pf_b.as_dict())).ok
        wait_for(lambda: pings() == [up, down, up], 30, "A reaching B again")
        time.sleep(3)
        assert pings() == [up, down, up]  # and it stays so
    finally:
        boot.cleanup()
        network.delete_network(spec.as_dict())


def test_a_floating_ip_reaches_its_guest_from_the_namespace_until_disassociated(netns, agent, boot):
    """The namespace itself plays the outside world: an echo to the floating address is DNATed to
    the guest (paused, nothing answers: it is the guest that answers, not the floating address on
    the external bridge), and nothing answers once the floating IP is disassociated. (The guest's
    nwfilter does not see these packets: libvirt's iptables rules match traffic bridged between
    ports, and this comes from the host itself.)"""
    mac = "52:54:00:cc:00:31"
    internal = project_network(dhcp_hosts=(DhcpHost(mac=mac, ip="10.60.0.31", hostname="guest-f"),))
    external = project_network(
        external=True,
        vlan=None,
        subnets=(SubnetSpec(cidr="172.24.7.0/24", gateway="172.24.7.1", dhcp=False),),
        dhcp_hosts=(),
    )
    pf = port_filter(mac, "10.60.0.31")
    req = FloatingIpRequest(
        floating_ip="172.24.7.20",
        fixed_ip="10.60.0.31",
        external_bridge=external.bridge,
        internal_bridge=internal.bridge,
    )

    def answers() -> bool:
        return netns.echo(req.floating_ip)

    for spec in (internal, external):
        assert network.ensure_network(spec.as_dict())["ok"]
    try:
        nic = NicSpec(port_id=pf.port_id, mac=mac, network=internal.name, bridge=internal.bridge, filter=pf)
        domain, log = boot([nic], "zenith.dhcp")
        wait_for(lambda: "ZENITH DHCP eth0 10.60.0.31" in console(log), 90, "the guest's address by DHCP")
        assert not answers()
        assert network.set_floating_ip(req.as_dict())["ok"]
        wait_for(answers, 20, "the floating IP to answer")
        agent.pause(domain)
        assert not answers()  # the guest answered, not the namespace
        agent.unpause(domain)
        wait_for(answers, 20, "the floating IP to answer again")
        assert network.set_floating_ip(dataclasses.replace(req, associate=False).as_dict())["existed"]
        wait_for(lambda: not answers(), 20, "the floating IP to stop answering")
        time.sleep(2)
        assert not answers()
    finally:
        boot.cleanup()
        network.set_floating_ip(dataclasses.replace(req, associate=False).as_dict())
        for spec in (internal, external):
            network.delete_network(spec.as_dict())
