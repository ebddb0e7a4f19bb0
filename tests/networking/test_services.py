"""networking.services against the database: networks on a network host with their own VLAN,
subnet validation (every refusal a 400 naming the reason), ports and their addresses, the host
messages built from the models, security groups and rules, floating IPs, and what compute calls."""

from __future__ import annotations

import uuid

import pytest

from identity import quotas
from identity.errors import Conflict, InvalidInput, NotFound, PolicyDenied
from networking import services
from networking.models import IPAllocation, Network, Port, SecurityGroup, SecurityGroupRule
from workers import tasknames
from workers.messages import FloatingIpRequest, NetworkSpec, NicSpec, PortFilter
from workers.models import Operation

from .conftest import OK, active_network, active_port, external_network, make_network_host, settle, settle_fip

pytestmark = pytest.mark.django_db


def member(cloud):
    return cloud.ctx(cloud.member)


# --- networks ---------------------------------------------------------------------------------------


def test_a_network_gets_a_vlan_a_bridge_and_its_host(cloud, nethost, settings):
    settings.ZENITH_NETWORK_VLAN_RANGE = "200-210"
    network, created = services.create_network(member(cloud), name="blue")
    assert created and network.status == "BUILD"
    assert 200 <= network.vlan <= 210 and network.bridge == f"znb{network.vlan}"
    assert network.host == nethost
    op = Operation.objects.get(pk=network.operation_id)
    assert op.kind == "network.create" and op.payload["transition"] == "create"
    work = services.NETWORK_LIFECYCLE.host_work(
        op.pk, network.pk, services.NETWORK_LIFECYCLE.transitions["create"], {}
    )
    assert (work.host, work.role, work.task) == ("net-1", "network", tasknames.AGENT_ENSURE_NETWORK)
    spec = NetworkSpec.from_dict(work.kwargs["spec"])
    assert spec.vlan == network.vlan and spec.bridge == network.bridge and spec.name == network.libvirt_name
    network = settle(services.NETWORK_LIFECYCLE, network, "create")
    assert network.status == "ACTIVE" and network.simulated and network.applied == ["network zenith-net"]


def test_no_network_host_is_a_clear_conflict(cloud, db):
    with pytest.raises(Conflict, match="no host has the network role"):
        services.create_network(member(cloud), name="blue")
    host = make_network_host()
    host.enabled = False
    host.save()
    with pytest.raises(Conflict, match="none of the 1 network host"):
        services.create_network(member(cloud), name="blue")


def test_vlans_are_never_shared_and_come_back_on_delete(cloud, nethost, settings):
    settings.ZENITH_NETWORK_VLAN_RANGE = "300-301"
    quotas.set_limits(cloud.project, {"networks": 10})
    a, _ = services.create_network(member(cloud), name="a")
    b, _ = services.create_network(member(cloud), name="b")
    assert {a.vlan, b.vlan} == {300, 301}
    with pytest.raises(Conflict, match="Every VLAN id of the range 300-301 is taken"):
        services.create_network(member(cloud), name="c")
    freed = a.vlan
    a = settle(services.NETWORK_LIFECYCLE, a, "create")
    services.delete_network(member(cloud), a)
    a = settle(services.NETWORK_LIFECYCLE, a, "delete")
    assert a.status == "DELETED" and a.vlan is None and a.bridge is None
    c, _ = services.create_network(member(cloud), name="c")
    assert c.vlan == freed


def test_shared_and_external_networks_are_for_admins(cloud, nethost):
    with pytest.raises(PolicyDenied):
        services.create_network(member(cloud), name="x", external=True)
    with pytest.raises(PolicyDenied):
        services.create_network(member(cloud), name="x", shared=True)


def test_idempotency_key_replays_a_network_create(cloud, nethost):
    a, created = services.create_network(member(cloud), name="a", idempotency_key="k1")
    b, again = services.create_network(member(cloud), name="a", idempotency_key="k1")
    assert created and not again and a.pk == b.pk
    with pytest.raises(Conflict, match="different request"):
        services.create_network(member(cloud), name="other", idempotency_key="k1")


def test_the_default_network_is_made_once_with_its_subnet(cloud, nethost, settings):
    settings.ZENITH_DEFAULT_NETWORK_CIDR = "10.0.0.0/24"
    a = services.ensure_default_network(member(cloud))
    b = services.ensure_default_network(member(cloud))
    assert a.pk == b.pk and a.is_default
    (subnet,) = a.subnets.all()
    assert subnet.cidr == "10.0.0.0/24" and subnet.gateway == "10.0.0.1"
    assert subnet.allocation_pools == [["10.0.0.2", "10.0.0.254"]]
    assert Operation.objects.filter(kind__startswith="network.").count() == 1  # the create carries it


def test_a_network_with_ports_is_not_deleted(cloud, nethost):
    network = active_network(member(cloud))
    active_port(member(cloud), network)
    with pytest.raises(Conflict, match="has 1 port"):
        services.delete_network(member(cloud), network)


def test_a_network_on_a_down_host_fails_its_create_with_the_reason(cloud, nethost):
    network, _ = services.create_network(member(cloud), name="n")
    nethost.last_heartbeat = None
    nethost.save()
    lc = services.NETWORK_LIFECYCLE
    assert lc.host_work(network.operation_id, network.pk, lc.transitions["create"], {}) is None
    network = Network.objects.get(pk=network.pk)
    assert network.status == "ERROR" and "net-1 is down" in network.fault["message"]


# --- subnets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"cidr": "10.0.0.0/33"}, "not a valid network"),
        ({"cidr": "banana"}, "not a valid network"),
        ({"cidr": "10.0.0.5/24"}, "host bits set"),
        ({"cidr": "10.0.0.0/24", "ip_version": 6}, "not IPv6"),
        ({"cidr": "10.0.0.0/24", "gateway": "10.0.1.1"}, "gateway 10.0.1.1 is not a usable address"),
        ({"cidr": "10.0.0.0/24", "gateway": "10.0.0.255"}, "not a usable address"),
        ({"cidr": "10.0.0.0/24", "allocation_pools": [["10.0.0.10", "10.0.1.5"]]}, "outside the subnet"),
        ({"cidr": "10.0.0.0/24", "allocation_pools": [["10.0.0.20", "10.0.0.10"]]}, "ends before it starts"),
        (
            {
                "cidr": "10.0.0.0/24",
                "allocation_pools": [["10.0.0.10", "10.0.0.20"], ["10.0.0.15", "10.0.0.30"]],
            },
            "overlap",
        ),
        ({"cidr": "10.0.0.0/24", "allocation_pools": [["10.0.0.1", "10.0.0.9"]]}, "holds the gateway"),
        ({"cidr": "10.0.0.0/24", "dns_servers": ["8.8.8.x"]}, "not an IP address"),
        ({"cidr": "10.0.0.0/24", "host_routes": [["192.168.0.0/16", "10.9.0.1"]]}, "nexthop"),
        ({"cidr": "10.0.0.0/32"}, "too small"),
    ],
)
def test_bad_subnets_are_refused_with_the_reason(cloud, nethost, fields, reason):
    network, _ = services.create_network(member(cloud), name="n")
    with pytest.raises(InvalidInput, match=reason):
        services.create_subnet(member(cloud), network=network, **fields)


def test_overlapping_cidrs_are_refused_within_a_network_and_a_project(cloud, nethost):
    quotas.set_limits(cloud.project, {"networks": 10})
    network = active_network(member(cloud), cidr="10.1.0.0/24")
    with pytest.raises(InvalidInput, match="overlaps subnet 10.1.0.0/24 of network net"):
        services.create_subnet(member(cloud), network=network, cidr="10.1.0.128/25")
    other, _ = services.create_network(member(cloud), name="other")
    with pytest.raises(InvalidInput, match="of the project's network net"):
        services.create_subnet(member(cloud), network=other, cidr="10.1.0.0/16")
    # Another project may use the same range on its own network.
    theirs, _ = services.create_network(cloud.ctx(cloud.other_member), name="theirs")
    services.create_subnet(cloud.ctx(cloud.other_member), network=theirs, cidr="10.1.0.0/24")


def test_a_subnet_tells_the_network_host_and_ipv6_works(cloud, nethost):
    network = active_network(member(cloud))
    subnet = services.create_subnet(
        member(cloud), network=network, cidr="fd00:1::/64", dns_servers=["fd00::53"]
    )
    assert subnet.ip_version == 6 and subnet.gateway == "fd00:1::1"
    network = Network.objects.get(pk=network.pk)
    assert (
        network.busy == "updating" and Operation.objects.get(pk=network.operation_id).kind == "network.update"
    )
    spec = services.network_spec(network)
    assert [s.cidr for s in spec.subnets] == ["10.10.0.0/24", "fd00:1::/64"]


def test_another_projects_network_takes_no_subnet(cloud, nethost):
    network = active_network(member(cloud))
    with pytest.raises(InvalidInput, match="is available to this project"):
        services.create_subnet(cloud.ctx(cloud.other_member), network=str(network.pk), cidr="10.50.0.0/24")


# --- ports ------------------------------------------------------------------------------------------


def test_ports_get_distinct_addresses_and_unique_macs(cloud, nethost):
    network = active_network(member(cloud))
    a = active_port(member(cloud), network, name="a")
    b = active_port(member(cloud), network, name="b")
    assert a.status == "ACTIVE"
    assert [ip.address for ip in a.fixed_ips.all()] == ["10.10.0.2"]
    assert [ip.address for ip in b.fixed_ips.all()] == ["10.10.0.3"]
    assert a.mac != b.mac and a.mac.startswith("fa:16:3e:")
    spec = services.network_spec(network)
    assert {(h.mac, h.ip) for h in spec.dhcp_hosts} == {(a.mac, "10.10.0.2"), (b.mac, "10.10.0.3")}
    assert [g.name for g in a.security_groups.all()] == ["default"]


def test_a_requested_address_is_given_if_free(cloud, nethost):
    network = active_network(member(cloud))
    port = active_port(member(cloud), network, ip_address="10.10.0.77")
    assert port.fixed_ips.get().address == "10.10.0.77"
    with pytest.raises(Conflict, match="10.10.0.77 is already in use on subnet 10.10.0.0/24"):
        services.create_port(member(cloud), network=network, ip_address="10.10.0.77")
    with pytest.raises(InvalidInput, match="not a usable address"):
        services.create_port(member(cloud), network=network, ip_address="10.11.0.5")
    with pytest.raises(InvalidInput, match="is the gateway"):
        services.create_port(member(cloud), network=network, ip_address="10.10.0.1")


def test_an_exhausted_pool_is_a_conflict_naming_the_subnet(cloud, nethost):
    network = active_network(member(cloud), allocation_pools=[["10.10.0.10", "10.10.0.11"]], name="tiny")
    services.create_port(member(cloud), network=network)
    services.create_port(member(cloud), network=network)
    with pytest.raises(Conflict, match="No free address is left on subnet 10.10.0.0/24") as err:
        services.create_port(member(cloud), network=network)
    assert err.value.code == "ip_exhausted"
    assert Port.objects.filter(network=network).count() == 2  # the refused one left nothing behind


def test_a_deleted_port_gives_its_address_back(cloud, nethost):
    network = active_network(member(cloud))
    port = active_port(member(cloud), network)
    services.delete_port(member(cloud), port)
    port = Port.objects.get(pk=port.pk)
    assert port.busy == "deleting"
    assert services.network_spec(network).dhcp_hosts == ()  # the ensure drops its entry
    assert IPAllocation.objects.filter(port=port).count() == 1  # held until the host answered
    port = settle(services.PORT_LIFECYCLE, port, "delete")
    assert port.status == "DELETED" and port.mac is None
    assert not IPAllocation.objects.filter(subnet__network=network).exists()
    again = active_port(member(cloud), network)
    assert again.fixed_ips.get().address == "10.10.0.2"


def test_a_failed_port_delete_keeps_the_address(cloud, nethost):
    network = active_network(member(cloud))
    port = active_port(member(cloud), network)
    services.delete_port(member(cloud), port)
    port = settle(services.PORT_LIFECYCLE, port, "delete", {"ok": False, "error": "dnsmasq is gone"})
    assert port.status == "ERROR" and port.fault["message"] == "dnsmasq is gone"
    assert IPAllocation.objects.filter(port=port).count() == 1


def test_no_port_on_another_projects_private_network(cloud, nethost):
    network = active_network(member(cloud))
    with pytest.raises(InvalidInput, match="is available to this project"):
        services.create_port(cloud.ctx(cloud.other_member), network=str(network.pk))


def test_a_shared_network_takes_other_projects_ports(cloud, nethost):
    admin = cloud.ctx(cloud.admin)
    network, _ = services.create_network(admin, name="shared", shared=True)
    services.create_subnet(admin, network=network, cidr="172.16.0.0/24", sync=False)
    port, _ = services.create_port(cloud.ctx(cloud.other_member), network=str(network.pk))
    assert port.project == cloud.other_project and port.fixed_ips.get().address == "172.16.0.2"


def test_port_quota(cloud, nethost):
    quotas.set_limits(cloud.project, {"ports": 1})
    network = active_network(member(cloud))
    services.create_port(member(cloud), network=network)
    with pytest.raises(Exception, match="ports"):
        services.create_port(member(cloud), network=network)
    usage = quotas.usage(cloud.project)
    assert usage["ports"] == 1 and usage["networks"] == 1 and usage["security_groups"] == 1


# --- security groups --------------------------------------------------------------------------------


def test_the_default_group_allows_its_members_and_all_egress(cloud, nethost):
    group = services.ensure_default_security_group(member(cloud))
    assert services.ensure_default_security_group(member(cloud)) == group
    rules = {(r.direction, r.ethertype, r.remote_group_id) for r in group.rules.all()}
    assert rules == {
        ("ingress", "IPv4", group.pk),
        ("ingress", "IPv6", group.pk),
        ("egress", "IPv4", None),
        ("egress", "IPv6", None),
    }
    with pytest.raises(Conflict):
        services.delete_security_group(member(cloud), group)


def test_remote_groups_reach_the_host_as_member_addresses(cloud, nethost):
    network = active_network(member(cloud))
    a = active_port(member(cloud), network)
    b = active_port(member(cloud), network)
    group = SecurityGroup.objects.get(project=cloud.project, name="default")
    services.create_rule(
        member(cloud), group=group, direction="ingress", protocol="tcp", port_min=22, port_max=22
    )
    filt: PortFilter = services.port_filters([a])[a.pk]
    assert filt.ips == ("10.10.0.2",) and filt.mac == a.mac
    ingress = {(r.protocol, r.port_min, r.remote_cidr) for r in filt.rules if r.direction == "ingress"}
    assert ingress == {("any", None, "10.10.0.2/32"), ("any", None, "10.10.0.3/32"), ("tcp", 22, "")}
    assert b.pk != a.pk


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"direction": "sideways"}, "direction"),
        ({"direction": "ingress", "protocol": "gre"}, "protocol"),
        ({"direction": "ingress", "protocol": "tcp", "port_min": 0, "port_max": 22}, "1-65535"),
        ({"direction": "ingress", "protocol": "tcp", "port_min": 80, "port_max": 22}, "port_min <= port_max"),
        ({"direction": "ingress", "protocol": "udp", "port_min": 1, "port_max": 70000}, "1 to 65535"),
        ({"direction": "ingress", "protocol": "any", "port_min": 22, "port_max": 22}, "only for tcp and udp"),
        ({"direction": "ingress", "protocol": "icmp", "port_min": 300}, "0-255"),
        ({"direction": "ingress", "remote_cidr": "10.0.0.0/8", "ethertype": "IPv6"}, "not an IPv6"),
        ({"direction": "ingress", "remote_cidr": "10.0.0.1/8"}, "host bits"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(cloud, db, fields, reason):
    group = services.create_security_group(member(cloud), name="web")
    with pytest.raises(InvalidInput, match=reason):
        services.create_rule(member(cloud), group=group, **fields)


def test_no_rule_references_another_projects_group(cloud, db):
    mine = services.create_security_group(member(cloud), name="web")
    theirs = services.create_security_group(cloud.ctx(cloud.other_member), name="db")
    with pytest.raises(InvalidInput, match="is available to this project"):
        services.create_rule(member(cloud), group=mine, direction="ingress", remote_group=str(theirs.pk))
    with pytest.raises(InvalidInput, match="is available to this project"):
        services.create_rule(member(cloud), group=str(theirs.pk), direction="ingress")
    assert not SecurityGroupRule.objects.filter(group=mine).exists()


def test_a_rule_change_reaches_bound_ports(cloud, nethost):
    network = active_network(member(cloud))
    port = active_port(member(cloud), network)
    services.bind_ports(port.instance_id, "cmp-1")  # no instance: nothing bound
    Port.objects.filter(pk=port.pk).update(host="cmp-1")
    group = SecurityGroup.objects.get(project=cloud.project, name="default")
    rule = services.create_rule(member(cloud), group=group, direction="ingress", protocol="icmp")
    port = Port.objects.get(pk=port.pk)
    op = Operation.objects.get(pk=port.operation_id)
    assert op.kind == "port.update_filter"
    lc = services.PORT_LIFECYCLE
    work = lc.host_work(op.pk, port.pk, lc.transitions["update_filter"], {})
    assert (work.host, work.role, work.task) == ("cmp-1", "compute", tasknames.AGENT_APPLY_PORT_FILTER)
    assert any(r.protocol == "icmp" for r in PortFilter.from_dict(work.kwargs["port_filter"]).rules)
    services.delete_rule(member(cloud), rule)
    assert Operation.objects.filter(kind="port.update_filter").count() == 2


# --- floating IPs -----------------------------------------------------------------------------------


def test_floating_ip_allocate_associate_disassociate_release(cloud, nethost):
    public = external_network(cloud.ctx(cloud.admin))
    network = active_network(member(cloud))
    port = active_port(member(cloud), network)
    fip = services.allocate_floating_ip(member(cloud), network=str(public.pk))
    assert fip.address == "203.0.113.2" and fip.status == "DOWN"
    fip = services.associate(member(cloud), fip, str(port.pk))
    assert fip.busy == "associating" and fip.fixed_ip == "10.10.0.2"
    lc = services.FLOATING_IP_LIFECYCLE
    work = lc.host_work(fip.operation_id, fip.pk, lc.transitions["associate"], {})
    request = FloatingIpRequest.from_dict(work.kwargs["request"])
    assert (request.floating_ip, request.fixed_ip, request.associate) == ("203.0.113.2", "10.10.0.2", True)
    assert (request.external_bridge, request.internal_bridge) == (public.bridge, network.bridge)
    assert work.task == tasknames.AGENT_SET_FLOATING_IP and work.host == "net-1"
    fip = settle_fip(fip, "associate")
    assert fip.status == "ACTIVE" and fip.port_id == port.pk
    assert services.addresses_of([port.instance_id]) == {}  # no instance
    with pytest.raises(Conflict, match="disassociate it before releasing"):
        services.release_floating_ip(member(cloud), fip)
    fip = services.disassociate(member(cloud), fip)
    fip = settle_fip(fip, "disassociate")
    assert fip.status == "DOWN" and fip.port_id is None
    services.release_floating_ip(member(cloud), fip)
    assert not IPAllocation.objects.filter(subnet__network=public).exists()


def test_a_failed_association_leaves_it_down_with_the_reason(cloud, nethost):
    public = external_network(cloud.ctx(cloud.admin))
    port = active_port(member(cloud), active_network(member(cloud)))
    fip = services.allocate_floating_ip(member(cloud), network=str(public.pk))
    services.associate(member(cloud), fip, str(port.pk))
    fip = settle_fip(fip, "associate", {"ok": False, "error": "iptables said no"})
    assert fip.status == "DOWN" and fip.port_id is None and fip.fault["message"] == "iptables said no"


def test_no_association_with_another_projects_port_or_of_their_floating_ip(cloud, nethost):
    public = external_network(cloud.ctx(cloud.admin))
    mine = services.allocate_floating_ip(member(cloud), network=str(public.pk))
    their_port = active_port(cloud.ctx(cloud.other_member), active_network(cloud.ctx(cloud.other_member)))
    with pytest.raises(InvalidInput, match="is available to this project"):
        services.associate(member(cloud), mine, str(their_port.pk))
    from networking.models import FloatingIP

    with pytest.raises(NotFound):
        FloatingIP.objects.get_visible(cloud.ctx(cloud.other_member), pk=mine.pk)


def test_floating_ips_come_only_from_external_networks(cloud, nethost):
    network = active_network(member(cloud))
    with pytest.raises(InvalidInput, match="not external"):
        services.allocate_floating_ip(member(cloud), network=network)


# --- what compute calls -----------------------------------------------------------------------------


def test_allocate_ports_gives_a_spawn_its_nics_on_the_default_network(cloud, nethost):
    instance = uuid.uuid4()
    (nic,) = services.allocate_ports(member(cloud), instance)
    assert isinstance(nic, NicSpec)
    port = Port.objects.get(pk=nic.port_id)
    assert port.instance_id == instance and port.device_owner == "compute:nova"
    assert nic.network == port.network.libvirt_name and nic.bridge == port.network.bridge
    assert nic.domain == f"zenith-{instance}" and nic.filter.ips == ("10.0.0.2",)
    assert port.network.is_default
    assert services.instance_nics(instance) == [nic]
    services.bind_ports(instance, "cmp-1")
    assert Port.objects.get(pk=port.pk).host == "cmp-1"
    assert services.addresses_of([instance]) == {
        str(instance): {"default": [{"addr": "10.0.0.2", "version": 4, "mac": port.mac, "type": "fixed"}]}
    }
    (released,) = services.release_ports(instance)
    assert released.busy == "deleting"
    settle(services.PORT_LIFECYCLE, port, "delete", OK)
    assert services.instance_ports(instance) == []


def test_allocate_ports_is_all_or_nothing(cloud, nethost):
    quotas.set_limits(cloud.project, {"networks": 10})
    roomy = active_network(member(cloud), name="roomy", cidr="10.20.0.0/24")
    full = active_network(
        member(cloud), name="full", cidr="10.21.0.0/24", allocation_pools=[["10.21.0.5", "10.21.0.5"]]
    )
    services.create_port(member(cloud), network=full)
    with pytest.raises(Conflict, match="10.21.0.0/24"):
        services.allocate_ports(member(cloud), uuid.uuid4(), [str(roomy.pk), str(full.pk)], ["default"])
    assert not Port.objects.filter(network=roomy).exists()
