"""The networking API: the whole flow (network, subnet, port, floating IP, security group rule),
202 with the operation's Location, 400/404/409 with messages, cross-project refusals on every
endpoint, Idempotency-Key, filters, fixed query counts and the OpenAPI schema."""

from __future__ import annotations

import pytest

from identity import quotas
from networking import services
from networking.models import Network, Port
from tests.identity.test_query_counts import MANY, api_rows, assert_fixed_queries

from .conftest import active_network, active_port, external_network

pytestmark = pytest.mark.django_db

API = "/api/v1/networking/"
LIST_QUERIES = {
    "networks": 5,
    "subnets": 5,
    "ports": 7,
    "floating-ips": 4,
    "security-groups": 6,
    "security-group-rules": 4,
}


def error_of(response) -> str:
    return response.json()["error"]["message"]


def test_the_whole_flow_through_the_api(cloud, clients, nethost):
    member = clients["member"]
    response = member.post(f"{API}networks/", {"name": "blue"}, format="json", HTTP_IDEMPOTENCY_KEY="n1")
    assert response.status_code == 202, response.content
    network = response.json()
    assert (
        network["status"] == "BUILD"
        and response["Location"] == f"/api/v1/operations/{network['operation']['id']}/"
    )
    assert network["host"] is None  # members do not see hosts
    again = member.post(f"{API}networks/", {"name": "blue"}, format="json", HTTP_IDEMPOTENCY_KEY="n1")
    assert again.status_code == 200 and again.json()["id"] == network["id"]
    response = member.post(
        f"{API}subnets/",
        {"network": network["id"], "cidr": "10.60.0.0/24", "dns_servers": ["10.60.0.1"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    subnet = response.json()
    assert subnet["gateway"] == "10.60.0.1" and subnet["free"] == 253 and subnet["used"] == 0
    response = member.post(f"{API}ports/", {"network": "blue", "name": "web"}, format="json")
    assert response.status_code == 202, response.content
    port = response.json()
    assert port["fixed_ips"] == [{"subnet": subnet["id"], "ip_address": "10.60.0.2"}]
    assert port["status"] == "DOWN" and len(port["security_groups"]) == 1
    assert member.get(f"{API}subnets/{subnet['id']}/").json()["used"] == 1
    listed = member.get(f"{API}ports/", {"ip_address": "10.60.0.2"}).json()
    assert [p["id"] for p in listed["results"]] == [port["id"]]
    groups = member.get(f"{API}security-groups/").json()["results"]
    assert [g["name"] for g in groups] == ["default"] and len(groups[0]["rules"]) == 4
    response = member.post(
        f"{API}security-group-rules/",
        {
            "security_group": "default",
            "direction": "ingress",
            "protocol": "tcp",
            "port_min": 22,
            "port_max": 22,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    public = external_network(cloud.ctx(cloud.admin))
    response = member.post(f"{API}floating-ips/", {"network": str(public.pk)}, format="json")
    assert response.status_code == 201, response.content
    fip = response.json()
    assert fip["floating_ip_address"] == "203.0.113.2" and fip["status"] == "DOWN"
    response = member.patch(f"{API}floating-ips/{fip['id']}/", {"port": port["id"]}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "associating" and response.json()["fixed_ip_address"] == "10.60.0.2"
    # the admin sees where the network lives
    shown = clients["admin"].get(f"{API}networks/{network['id']}/").json()
    assert shown["host"]["host"] == "net-1" and shown["host"]["bridge"].startswith("znb")


@pytest.mark.parametrize(
    "path, body, status, reason",
    [
        ("subnets/", {"network": "net", "cidr": "10.0.0.0/33"}, 400, "not a valid network"),
        ("subnets/", {"network": "net", "cidr": "10.99.0.0/24", "gateway": "10.98.0.1"}, 400, "not a usable"),
        ("subnets/", {"network": "net", "cidr": "10.10.0.0/25"}, 400, "overlaps"),
        ("subnets/", {"network": "net", "cidr": 5}, 400, "cidr"),
        ("ports/", {"network": "net", "ip_address": "10.10.0.1"}, 400, "gateway"),
        ("ports/", {"network": "nope"}, 400, "No network"),
        ("ports/", {"network": "net", "colour": "red"}, 400, "colour"),
        ("security-group-rules/", {"security_group": "default", "direction": "in"}, 400, "direction"),
        (
            "security-group-rules/",
            {"security_group": "default", "direction": "ingress", "protocol": "icmp", "port_min": 1000},
            400,
            "0-255",
        ),
        ("security-groups/", {"name": "default"}, 409, "default group"),
        ("floating-ips/", {"network": "net"}, 400, "not external"),
    ],
)
def test_bad_requests_say_why(cloud, clients, nethost, path, body, status, reason):
    active_network(cloud.ctx(cloud.member))
    response = clients["member"].post(f"{API}{path}", body, format="json")
    assert response.status_code == status, response.content
    assert reason in str(response.json())


def test_an_exhausted_pool_is_a_409_naming_the_subnet(cloud, clients, nethost):
    active_network(cloud.ctx(cloud.member), allocation_pools=[["10.10.0.9", "10.10.0.9"]])
    assert clients["member"].post(f"{API}ports/", {"network": "net"}, format="json").status_code == 202
    response = clients["member"].post(f"{API}ports/", {"network": "net"}, format="json")
    assert response.status_code == 409 and "10.10.0.0/24" in error_of(response)


def test_cross_project_refusals_on_every_endpoint(cloud, clients, nethost):
    mine = cloud.ctx(cloud.member)
    network = active_network(mine)
    port = active_port(mine, network)
    group = services.create_security_group(mine, name="web")
    rule = services.create_rule(
        mine, group=group, direction="ingress", protocol="udp", port_min=53, port_max=53
    )
    public = external_network(cloud.ctx(cloud.admin))
    fip = services.allocate_floating_ip(mine, network=public)
    subnet = network.subnets.get()
    other = clients["other"]
    # nothing of another project's is listed or shown
    for path, obj in (
        ("networks", network),
        ("subnets", subnet),
        ("ports", port),
        ("floating-ips", fip),
        ("security-groups", group),
        ("security-group-rules", rule),
    ):
        assert str(obj.pk) not in other.get(f"{API}{path}/").content.decode(), path
        assert other.get(f"{API}{path}/{obj.pk}/").status_code == 404, path
        assert other.delete(f"{API}{path}/{obj.pk}/").status_code == 404, path
    # no port on another project's private network, no subnet on it
    response = other.post(f"{API}ports/", {"network": str(network.pk)}, format="json")
    assert response.status_code == 400 and "is available to this project" in error_of(response)
    response = other.post(
        f"{API}subnets/", {"network": str(network.pk), "cidr": "10.70.0.0/24"}, format="json"
    )
    assert response.status_code == 400
    # no association of another project's floating IP, nor with another project's port
    assert other.patch(f"{API}floating-ips/{fip.pk}/", {"port": None}, format="json").status_code == 404
    their_network = active_network(cloud.ctx(cloud.other_member), name="theirs", cidr="10.80.0.0/24")
    their_port = active_port(cloud.ctx(cloud.other_member), their_network)
    response = clients["member"].patch(
        f"{API}floating-ips/{fip.pk}/", {"port": str(their_port.pk)}, format="json"
    )
    assert response.status_code == 400 and "No port" in error_of(response)
    # no rule referencing another project's group
    body = {"security_group": "default", "direction": "ingress", "remote_group": str(group.pk)}
    response = other.post(f"{API}security-group-rules/", body, format="json")
    assert response.status_code == 400 and "No security group" in error_of(response)
    assert Port.objects.filter(project=cloud.other_project).count() == 1


def test_readers_read_and_do_not_write(cloud, clients, nethost):
    active_network(cloud.ctx(cloud.member))
    reader = clients["reader"]
    assert reader.get(f"{API}networks/").status_code == 200
    assert reader.post(f"{API}networks/", {"name": "x"}, format="json").status_code == 403
    assert reader.post(f"{API}ports/", {"network": "net"}, format="json").status_code == 403
    assert clients["anonymous"].get(f"{API}networks/").status_code == 401


def test_a_network_with_ports_answers_409_on_delete(cloud, clients, nethost):
    network = active_network(cloud.ctx(cloud.member))
    active_port(cloud.ctx(cloud.member), network)
    response = clients["member"].delete(f"{API}networks/{network.pk}/")
    assert response.status_code == 409 and "port" in error_of(response)


def test_filters(cloud, clients, nethost):
    quotas.set_limits(cloud.project, {"networks": 10})
    active_network(cloud.ctx(cloud.member), name="a", cidr="10.1.0.0/24")
    active_network(cloud.ctx(cloud.member), name="b", cidr="10.2.0.0/24")
    names = [n["name"] for n in clients["member"].get(f"{API}networks/", {"name": "a"}).json()["results"]]
    assert names == ["a"]
    network = Network.objects.get(name="b")
    subnets = clients["member"].get(f"{API}subnets/", {"network": str(network.pk)}).json()["results"]
    assert [s["cidr"] for s in subnets] == ["10.2.0.0/24"]


def grow(cloud, n, prefix="n", first=100):
    ctx = cloud.ctx(cloud.member)
    quotas.set_limits(
        cloud.project, {"networks": 100, "ports": 100, "floating_ips": 100, "security_groups": 100}
    )
    public = Network.objects.get(external=True)
    for i in range(n):
        network = active_network(ctx, name=f"{prefix}{i}", cidr=f"10.{first + i}.0.0/24")
        port = active_port(ctx, network)
        services.allocate_floating_ip(ctx, network=public)
        group = services.create_security_group(ctx, name=f"g{prefix}{i}")
        services.create_rule(ctx, group=group, direction="ingress", protocol="tcp", port_min=80, port_max=80)
        services.update_port(ctx, port, security_groups=[str(group.pk), "default"])


@pytest.mark.parametrize("path", list(LIST_QUERIES))
def test_list_query_counts_are_fixed(cloud, clients, nethost, django_assert_num_queries, path):
    external_network(cloud.ctx(cloud.admin), cidr="198.51.100.0/24")
    grow(cloud, 1)
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: clients["member"].get(f"{API}{path}/"),
        LIST_QUERIES[path],
        grow=lambda: grow(cloud, MANY, prefix="m", first=150),
        rows=api_rows,
    )


def test_schema_has_the_networking_endpoints(clients):
    schema = clients["member"].get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    for path in (
        "/api/v1/networking/networks/",
        "/api/v1/networking/networks/{id}/sync/",
        "/api/v1/networking/subnets/",
        "/api/v1/networking/ports/{id}/",
        "/api/v1/networking/floating-ips/{id}/",
        "/api/v1/networking/security-groups/",
        "/api/v1/networking/security-group-rules/",
    ):
        assert path in schema, path


def test_port_update_delete_and_idempotent_create(cloud, clients, nethost):
    network = active_network(cloud.ctx(cloud.member))
    member = clients["member"]
    first = member.post(f"{API}ports/", {"network": "net"}, format="json", HTTP_IDEMPOTENCY_KEY="p1")
    again = member.post(f"{API}ports/", {"network": "net"}, format="json", HTTP_IDEMPOTENCY_KEY="p1")
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"] and Port.objects.filter(network=network).count() == 1
    port = first.json()["id"]
    web = services.create_security_group(cloud.ctx(cloud.member), name="web")
    response = member.patch(
        f"{API}ports/{port}/", {"security_groups": ["web"], "name": "eth0"}, format="json"
    )
    assert response.status_code == 200 and response.json()["security_groups"] == [str(web.pk)]
    assert response.json()["name"] == "eth0"
    response = clients["member"].delete(f"{API}security-groups/{web.pk}/")
    assert response.status_code == 409 and "used by 1 port" in error_of(response)
    subnet = network.subnets.get()
    response = member.delete(f"{API}subnets/{subnet.pk}/")
    assert response.status_code == 409 and "1 address(es) in use" in error_of(response)
    response = member.delete(f"{API}ports/{port}/")
    assert response.status_code == 202 and response.json()["status"] == "deleting"
    response = member.delete(f"{API}ports/{port}/")
    assert response.status_code == 409 and "being deleted" in error_of(response)


def test_network_sync_and_floating_ip_disassociation(cloud, clients, nethost):
    from .conftest import settle_fip

    network = active_network(cloud.ctx(cloud.member))
    response = clients["member"].post(f"{API}networks/{network.pk}/sync/")
    assert response.status_code == 202 and response.json()["status"] == "updating"
    port = active_port(cloud.ctx(cloud.member), network)
    public = external_network(cloud.ctx(cloud.admin))
    fip = services.allocate_floating_ip(cloud.ctx(cloud.member), network=public)
    services.associate(cloud.ctx(cloud.member), fip, str(port.pk))
    settle_fip(fip, "associate")
    response = clients["member"].patch(f"{API}floating-ips/{fip.pk}/", {"port": None}, format="json")
    assert response.status_code == 202 and response.json()["status"] == "disassociating"
    settle_fip(fip, "disassociate")
    assert clients["member"].delete(f"{API}floating-ips/{fip.pk}/").status_code == 204
    assert clients["member"].get(f"{API}floating-ips/{fip.pk}/").status_code == 404


def test_detail_query_counts(cloud, clients, nethost, django_assert_num_queries):
    network = active_network(cloud.ctx(cloud.member))
    port = active_port(cloud.ctx(cloud.member), network)
    for path, obj, expected in (("networks", network, 4), ("ports", port, 6)):
        clients["member"].get(f"{API}{path}/{obj.pk}/")
        with django_assert_num_queries(expected):
            assert clients["member"].get(f"{API}{path}/{obj.pk}/").status_code == 200
