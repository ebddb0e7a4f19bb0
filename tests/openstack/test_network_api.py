"""Network v2.0 (Neutron) with Django's test client: version discovery, extensions, networks,
subnets, ports, floating IPs, security groups and rules, quotas in Neutron's shapes; Neutron's error
shape, no 500s, no trailing-slash redirects, cross-project 404s, fixed query counts for the lists."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from networking import services
from networking.models import FloatingIP, Network, Port, SecurityGroupRule, Subnet
from tests.networking.conftest import make_network_host, settle

from .test_views import auth_body, post

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]

NEUTRON = "/network/v2.0"


@pytest.fixture
def nethost(db):
    return make_network_host()


def put(client, path, body, **headers):
    return client.put(path, json.dumps(body), content_type="application/json", headers=headers)


def created(client, headers, collection, key, **fields) -> dict:
    response = post(client, f"{NEUTRON}/{collection}", {key: fields}, **headers)
    assert response.status_code == 201, response.content
    return response.json()[key]


def network_with_subnet(client, headers, name="net-1", cidr="10.0.0.0/24") -> tuple[dict, dict]:
    net = created(client, headers, "networks", "network", name=name, admin_state_up=True)
    sub = created(
        client, headers, "subnets", "subnet", network_id=net["id"], cidr=cidr, ip_version=4, name=name
    )
    return net, sub


def external(client, admin, cidr="203.0.113.0/28") -> dict:
    net = created(client, admin, "networks", "network", name="public", **{"router:external": True})
    created(client, admin, "subnets", "subnet", network_id=net["id"], cidr=cidr, ip_version=4)
    return net


def test_version_discovery_extensions_and_the_catalog(client, cloud, member):
    for path in ("/network", "/network/"):
        response = client.get(path)
        assert response.status_code == 200 and response["x-openstack-request-id"]
        (doc,) = response.json()["versions"]
        assert (doc["id"], doc["status"]) == ("v2.0", "CURRENT")
        assert doc["links"][0]["href"] == "http://testserver/network/v2.0/"
    for path in (NEUTRON, f"{NEUTRON}/"):
        names = {r["collection"] for r in client.get(path).json()["resources"]}
        assert {"networks", "subnets", "ports", "floatingips", "security-groups"} <= names
    aliases = {e["alias"] for e in client.get(f"{NEUTRON}/extensions", headers=member).json()["extensions"]}
    assert {"external-net", "security-group", "quotas"} <= aliases
    assert client.get(f"{NEUTRON}/extensions/external-net", headers=member).status_code == 200
    assert client.get(f"{NEUTRON}/extensions/dvr", headers=member).status_code == 404
    body = post(client, "/identity/v3/auth/tokens", auth_body(cloud.member.username, cloud.project.name))
    urls = {e["type"]: e["endpoints"][0]["url"] for e in body.json()["token"]["catalog"]}
    assert urls["network"] == "http://testserver/network"


def test_errors_are_neutrons_shape(client, cloud, member):
    response = client.get(f"{NEUTRON}/networks")
    assert response.status_code == 401 and response.json()["NeutronError"]["type"] == "NotAuthorized"
    response = client.get(f"{NEUTRON}/networks/net-1", headers=member)
    assert response.status_code == 404
    assert set(response.json()["NeutronError"]) == {"type", "message", "detail"}
    assert response["x-openstack-request-id"]
    response = post(client, f"{NEUTRON}/networks", {"network": {"name": "n", "flavour": 1}}, **member)
    assert response.status_code == 400 and response.json()["NeutronError"]["type"] == "BadRequest"
    response = client.post(f"{NEUTRON}/networks", "{nope", content_type="application/json", headers=member)
    assert response.status_code == 400
    assert client.get(f"{NEUTRON}/networks/", headers=member).status_code == 404  # no redirect
    assert client.get(f"{NEUTRON}/nothing/here", headers=member).status_code == 404
    response = client.patch(f"{NEUTRON}/networks", headers=member)
    assert response.status_code == 405 and response.json()["NeutronError"]["type"] == "HTTPMethodNotAllowed"
    # No network host: a 409 saying why, not a 500.
    response = post(client, f"{NEUTRON}/networks", {"network": {"name": "n"}}, **member)
    assert response.status_code == 409 and "network role" in response.json()["NeutronError"]["message"]


def test_networks_and_subnets_in_neutrons_shape(client, cloud, member, admin, other, nethost):
    net, sub = network_with_subnet(client, member)
    assert (net["status"], net["admin_state_up"], net["shared"], net["router:external"]) == (
        "BUILD",
        True,
        False,
        False,
    )
    assert net["project_id"] == net["tenant_id"] == str(cloud.project.pk) and net["subnets"] == []
    assert "provider:segmentation_id" not in net
    assert sub["allocation_pools"] == [{"start": "10.0.0.2", "end": "10.0.0.254"}]
    assert (sub["gateway_ip"], sub["enable_dhcp"], sub["host_routes"], sub["dns_nameservers"]) == (
        "10.0.0.1",
        True,
        [],
        [],
    )
    shown = client.get(f"{NEUTRON}/networks/{net['id']}", headers=member).json()["network"]
    assert shown["subnets"] == [sub["id"]]
    as_admin = client.get(f"{NEUTRON}/networks/{net['id']}", headers=admin).json()["network"]
    assert as_admin["provider:segmentation_id"] == Network.objects.get(pk=net["id"]).vlan

    # A subnet with every field.
    body = {
        "network_id": net["id"],
        "cidr": "10.1.0.0/24",
        "ip_version": "4",
        "gateway_ip": None,
        "allocation_pools": [{"start": "10.1.0.10", "end": "10.1.0.20"}],
        "dns_nameservers": ["192.0.2.53"],
        "enable_dhcp": False,
        "host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.1.0.1"}],
    }
    full = created(client, member, "subnets", "subnet", **body)
    assert (full["gateway_ip"], full["enable_dhcp"], full["dns_nameservers"]) == (None, False, ["192.0.2.53"])
    assert full["allocation_pools"] == [{"start": "10.1.0.10", "end": "10.1.0.20"}]
    assert full["host_routes"] == [{"destination": "192.168.0.0/16", "nexthop": "10.1.0.1"}]
    listed = client.get(f"{NEUTRON}/subnets?network_id={net['id']}&cidr=10.1.0.0/24", headers=member)
    assert [s["id"] for s in listed.json()["subnets"]] == [full["id"]]
    response = post(client, f"{NEUTRON}/subnets", {"subnet": {**body, "cidr": "10.1.0.0/25"}}, **member)
    assert response.status_code == 400 and "overlaps" in response.json()["NeutronError"]["message"]
    bad = {"network_id": net["id"], "cidr": "10.9.0.0/24", "gateway_ip": "10.8.0.1"}
    assert post(client, f"{NEUTRON}/subnets", {"subnet": bad}, **member).status_code == 400
    assert client.delete(f"{NEUTRON}/subnets/{full['id']}", headers=member).status_code == 204
    assert not Subnet.objects.filter(pk=full["id"]).exists()

    # Filters, rename, and the admin-only flags.
    assert [
        n["id"] for n in client.get(f"{NEUTRON}/networks?name=net-1", headers=member).json()["networks"]
    ] == [net["id"]]
    assert client.get(f"{NEUTRON}/networks?router:external=True", headers=member).json()["networks"] == []
    assert client.get(f"{NEUTRON}/networks?shared=maybe", headers=member).status_code == 400
    for path in ("networks?id=nope", "subnets?network_id=nope", "ports?device_id=1", "floatingips?port_id=x"):
        response = client.get(f"{NEUTRON}/{path}", headers=member)
        assert response.status_code == 200 and list(response.json().values()) == [[]], path
    response = put(client, f"{NEUTRON}/networks/{net['id']}", {"network": {"name": "net-a"}}, **member)
    assert response.status_code == 200 and response.json()["network"]["name"] == "net-a"
    response = post(
        client, f"{NEUTRON}/networks", {"network": {"name": "x", "router:external": True}}, **member
    )
    assert response.status_code == 403 and response.json()["NeutronError"]["type"] == "PolicyNotAuthorized"
    public = external(client, admin)
    listed = client.get(f"{NEUTRON}/networks?router:external=True", headers=member).json()["networks"]
    assert [n["id"] for n in listed] == [public["id"]]

    # Another project sees neither the network nor its subnet, and cannot add to it.
    assert client.get(f"{NEUTRON}/networks/{net['id']}", headers=other).status_code == 404
    assert client.get(f"{NEUTRON}/subnets/{sub['id']}", headers=other).status_code == 404
    assert client.delete(f"{NEUTRON}/networks/{net['id']}", headers=other).status_code == 404
    assert [n["id"] for n in client.get(f"{NEUTRON}/networks", headers=other).json()["networks"]] == [
        public["id"]
    ]
    response = post(
        client, f"{NEUTRON}/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.5.0.0/24"}}, **other
    )
    assert response.status_code == 404

    assert client.delete(f"{NEUTRON}/networks/{net['id']}", headers=member).status_code == 204
    assert Network.objects.get(pk=net["id"]).busy == Network.DELETING


def test_ports_floating_ips_and_security_groups(client, cloud, member, admin, other, nethost):
    net, sub = network_with_subnet(client, member)
    settle(services.NETWORK_LIFECYCLE, Network.objects.get(pk=net["id"]), "create")
    public = external(client, admin)
    settle(services.NETWORK_LIFECYCLE, Network.objects.get(pk=public["id"]), "create")

    # Security groups: default appears on first list; rules in Neutron's names.
    groups = client.get(f"{NEUTRON}/security-groups", headers=member).json()["security_groups"]
    assert [g["name"] for g in groups] == ["default"] and len(groups[0]["security_group_rules"]) == 4
    group = created(client, member, "security-groups", "security_group", name="web", description="http")
    assert group["security_group_rules"] == [] and group["project_id"] == str(cloud.project.pk)
    rule = created(
        client,
        member,
        "security-group-rules",
        "security_group_rule",
        security_group_id=group["id"],
        direction="ingress",
        ethertype="IPv4",
        protocol="6",
        port_range_min=80,
        port_range_max=80,
        remote_ip_prefix="0.0.0.0/0",
    )
    assert (rule["protocol"], rule["port_range_min"], rule["remote_ip_prefix"]) == ("tcp", 80, "0.0.0.0/0")
    by_group = created(
        client,
        member,
        "security-group-rules",
        "security_group_rule",
        security_group_id=group["id"],
        direction="egress",
        remote_group_id=groups[0]["id"],
    )
    assert (by_group["protocol"], by_group["remote_group_id"]) == (None, groups[0]["id"])
    again = {
        "security_group_id": group["id"],
        "direction": "ingress",
        "protocol": "tcp",
        "port_range_min": 80,
        "port_range_max": 80,
        "remote_ip_prefix": "0.0.0.0/0",
    }
    response = post(client, f"{NEUTRON}/security-group-rules", {"security_group_rule": again}, **member)
    assert response.status_code == 409 and response.json()["NeutronError"]["type"] == "Conflict"
    response = post(
        client,
        f"{NEUTRON}/security-group-rules",
        {"security_group_rule": {**again, "port_range_min": 90}},
        **member,
    )
    assert response.status_code == 400
    shown = client.get(f"{NEUTRON}/security-groups/{group['id']}", headers=member).json()["security_group"]
    assert {r["id"] for r in shown["security_group_rules"]} == {rule["id"], by_group["id"]}
    listed = client.get(
        f"{NEUTRON}/security-group-rules?security_group_id={group['id']}&direction=egress", headers=member
    )
    assert [r["id"] for r in listed.json()["security_group_rules"]] == [by_group["id"]]
    assert client.get(f"{NEUTRON}/security-groups/{group['id']}", headers=other).status_code == 404
    assert client.get(f"{NEUTRON}/security-group-rules/{rule['id']}", headers=other).status_code == 404
    assert client.delete(f"{NEUTRON}/security-group-rules/{rule['id']}", headers=member).status_code == 204
    assert not SecurityGroupRule.objects.filter(pk=rule["id"]).exists()

    # Ports: a requested fixed IP, a device id, groups.
    device = "9f1e4b3e-0d4c-4a43-9d0b-2d1f5a3b8c71"
    port = created(
        client,
        member,
        "ports",
        "port",
        network_id=net["id"],
        name="p1",
        fixed_ips=[{"subnet_id": sub["id"], "ip_address": "10.0.0.50"}],
        device_id=device,
        security_groups=[group["id"]],
    )
    assert port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.0.0.50"}]
    assert (port["status"], port["device_id"], port["security_groups"]) == ("DOWN", device, [group["id"]])
    assert port["mac_address"].startswith("fa:16:3e:")
    assert [
        p["id"] for p in client.get(f"{NEUTRON}/ports?device_id={device}", headers=member).json()["ports"]
    ] == [port["id"]]
    response = post(
        client,
        f"{NEUTRON}/ports",
        {"port": {"network_id": net["id"], "mac_address": "fa:16:3e:00:00:01"}},
        **member,
    )
    assert response.status_code == 400
    taken = {"network_id": net["id"], "fixed_ips": [{"ip_address": "10.0.0.50"}]}
    assert post(client, f"{NEUTRON}/ports", {"port": taken}, **member).status_code == 409
    assert client.get(f"{NEUTRON}/ports/{port['id']}", headers=other).status_code == 404
    settle(services.PORT_LIFECYCLE, Port.objects.get(pk=port["id"]), "create")
    assert client.get(f"{NEUTRON}/ports/{port['id']}", headers=member).json()["port"]["status"] == "ACTIVE"

    # Floating IPs: from the external network, associated and disassociated by PUT.
    fip = created(client, member, "floatingips", "floatingip", floating_network_id=public["id"])
    assert (fip["status"], fip["port_id"], fip["floating_network_id"]) == ("DOWN", None, public["id"])
    assert fip["floating_ip_address"].startswith("203.0.113.")
    response = post(
        client, f"{NEUTRON}/floatingips", {"floatingip": {"floating_network_id": net["id"]}}, **member
    )
    assert response.status_code == 400 and "not external" in response.json()["NeutronError"]["message"]
    response = put(
        client, f"{NEUTRON}/floatingips/{fip['id']}", {"floatingip": {"port_id": port["id"]}}, **member
    )
    assert response.status_code == 200, response.content
    assert (response.json()["floatingip"]["port_id"], response.json()["floatingip"]["fixed_ip_address"]) == (
        port["id"],
        "10.0.0.50",
    )
    settle(services.FLOATING_IP_LIFECYCLE, FloatingIP.objects.get(pk=fip["id"]), "associate")
    shown = client.get(f"{NEUTRON}/floatingips/{fip['id']}", headers=member).json()["floatingip"]
    assert shown["status"] == "ACTIVE"
    assert client.delete(f"{NEUTRON}/floatingips/{fip['id']}", headers=member).status_code == 409
    assert client.get(f"{NEUTRON}/floatingips/{fip['id']}", headers=other).status_code == 404
    assert client.get(f"{NEUTRON}/floatingips", headers=other).json()["floatingips"] == []
    response = put(client, f"{NEUTRON}/floatingips/{fip['id']}", {"floatingip": {"port_id": None}}, **member)
    assert response.status_code == 200
    settle(services.FLOATING_IP_LIFECYCLE, FloatingIP.objects.get(pk=fip["id"]), "disassociate")
    assert client.delete(f"{NEUTRON}/floatingips/{fip['id']}", headers=member).status_code == 204
    assert FloatingIP.objects.get(pk=fip["id"]).status == FloatingIP.DELETED

    assert (
        client.delete(f"{NEUTRON}/security-groups/{group['id']}", headers=member).status_code == 409
    )  # in use
    assert client.delete(f"{NEUTRON}/ports/{port['id']}", headers=member).status_code == 204
    assert Port.objects.get(pk=port["id"]).busy == Port.DELETING


def test_quotas(client, cloud, member, admin, nethost):
    pid = str(cloud.project.pk)
    network_with_subnet(client, member)
    quota = client.get(f"{NEUTRON}/quotas/{pid}", headers=member).json()["quota"]
    assert (quota["network"], quota["port"], quota["floatingip"], quota["subnet"], quota["router"]) == (
        10,
        50,
        10,
        -1,
        0,
    )
    details = client.get(f"{NEUTRON}/quotas/{pid}/details.json", headers=member).json()["quota"]
    assert details["network"] == {"limit": 10, "used": 1, "reserved": 0}
    assert client.get(f"{NEUTRON}/quotas/{pid}/default", headers=member).json()["quota"]["network"] == 10
    other = str(cloud.other_project.pk)
    assert client.get(f"{NEUTRON}/quotas/{other}", headers=member).status_code == 403
    assert put(client, f"{NEUTRON}/quotas/{pid}", {"quota": {"network": 5}}, **member).status_code == 403
    response = put(client, f"{NEUTRON}/quotas/{pid}", {"quota": {"network": 5}}, **admin)
    assert response.status_code == 200 and response.json()["quota"]["network"] == 5
    assert put(client, f"{NEUTRON}/quotas/{pid}", {"quota": {"router": 3}}, **admin).status_code == 400
    assert put(client, f"{NEUTRON}/quotas/{pid}", {"quota": {"nope": 3}}, **admin).status_code == 400
    assert client.delete(f"{NEUTRON}/quotas/{pid}", headers=admin).status_code == 204
    assert client.get(f"{NEUTRON}/quotas/{pid}", headers=member).json()["quota"]["network"] == 10


def test_the_lists_have_fixed_query_counts(client, cloud, member, admin, nethost):
    def count(path, headers=member):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(NEUTRON + path, headers=headers)
        assert response.status_code == 200
        return len(queries)

    paths = ("/networks", "/subnets", "/ports", "/floatingips", "/security-groups", "/security-group-rules")
    public = external(client, admin)

    def more(n):
        net, _ = network_with_subnet(client, member, name=f"n{n}", cidr=f"10.{n}.0.0/24")
        created(client, member, "ports", "port", network_id=net["id"])
        created(client, member, "floatingips", "floatingip", floating_network_id=public["id"])
        group = created(client, member, "security-groups", "security_group", name=f"g{n}")
        created(
            client,
            member,
            "security-group-rules",
            "security_group_rule",
            security_group_id=group["id"],
            direction="ingress",
        )

    more(1)
    before = {p: count(p) for p in paths}
    before_admin = count("/networks", admin)
    for n in (2, 3, 4):
        more(n)
    assert {p: count(p) for p in paths} == before
    assert count("/networks", admin) == before_admin


def test_bad_input_is_a_clear_4xx_never_a_500(client, cloud, member, nethost):
    net, sub = network_with_subnet(client, member)
    group = created(client, member, "security-groups", "security_group", name="g")
    bodies = {
        "networks": [{"network": {"name": 5}}, {"network": {"name": "n", "shared": "yes"}}, {"network": []}],
        "subnets": [
            {"subnet": {"network_id": net["id"], "cidr": "10.7.0.0/33"}},
            {
                "subnet": {
                    "network_id": net["id"],
                    "cidr": "10.7.0.0/24",
                    "allocation_pools": [{"start": "x"}],
                }
            },
            {"subnet": {"network_id": net["id"], "cidr": "10.7.0.0/24", "ip_version": 6}},
            {"subnet": {"network_id": "nope", "cidr": "10.7.0.0/24"}},
            {"subnet": {"cidr": "10.7.0.0/24"}},
        ],
        "ports": [
            {"port": {"network_id": net["id"], "fixed_ips": [{}, {}]}},
            {"port": {"network_id": net["id"], "fixed_ips": [{"ip_address": "10.9.9.9"}]}},
            {"port": {"network_id": net["id"], "device_id": "not-a-uuid"}},
            {"port": {"network_id": net["id"], "security_groups": "g"}},
            {"port": {"network_id": net["id"], "admin_state_up": False}},
        ],
        "floatingips": [
            {"floatingip": {"floating_network_id": net["id"], "floating_ip_address": 7}},
            {"floatingip": {}},
        ],
        "security-groups": [{"security_group": {"name": ""}}, {"security_group": {"name": "default"}}],
        "security-group-rules": [
            {"security_group_rule": {"security_group_id": group["id"], "direction": "sideways"}},
            {
                "security_group_rule": {
                    "security_group_id": group["id"],
                    "direction": "ingress",
                    "protocol": "gre",
                }
            },
            {
                "security_group_rule": {
                    "security_group_id": group["id"],
                    "direction": "ingress",
                    "port_range_min": "a",
                }
            },
            {"security_group_rule": {"security_group_id": "nope", "direction": "ingress"}},
        ],
    }
    for collection, cases in bodies.items():
        for body in cases:
            response = post(client, f"{NEUTRON}/{collection}", body, **member)
            assert response.status_code in (400, 404, 409), (collection, body, response.content)
            assert response.json()["NeutronError"]["message"], (collection, body)
    assert Port.objects.count() == 0 and Subnet.objects.count() == 1
