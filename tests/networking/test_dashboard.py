"""The networking dashboard: networks (table with polling rows, create with a first subnet, detail
with used/free addresses and ports, delete), floating IPs (allocate, associate with a port chosen
from a list, disassociate, release), security groups with the rule editor, the admins' panels;
refusals on the field they name (never a 500); 403 for roles, 404 for other projects; fixed query
counts at 1 and 20 rows."""

from __future__ import annotations

import re
import uuid

import pytest

from identity import quotas
from networking import services
from networking.models import FloatingIP, Network, SecurityGroup, SecurityGroupRule
from tests.identity.test_query_counts import MANY, assert_fixed_queries, page_rows
from tests.storage import test_dashboard as storage_dashboard

from .conftest import active_network, active_port, external_network, settle, settle_fip

pytestmark = pytest.mark.django_db

browse = storage_dashboard.browse  # the fixture: a logged-in client per role
row_of = storage_dashboard.row_of

BASE = "/dashboard/networking/"
NETWORKS = BASE + "networks/"
CREATE = NETWORKS + "create/"
FIPS = BASE + "floating-ips/"
GROUPS = BASE + "security-groups/"
ADMIN_NETWORKS = BASE + "admin/networks/"
ADMIN_EXTERNAL = BASE + "admin/external-networks/"
ADMIN_HOSTS = BASE + "admin/hosts/"
# session, user, current project, roles, COUNT, rows (operation, host), their subnets, switcher
LIST_QUERIES = 8
# session, user, current project, roles, the allocate form's external networks, COUNT, rows
# (network, port, operation), switcher
FIP_QUERIES = 8
# session, user, current project, roles, the default group's lookup, COUNT, rows with rule counts,
# switcher
GROUP_QUERIES = 8
# session, user, current project, roles, the VLAN range's use, COUNT, hosts, their networks, switcher
HOST_QUERIES = 9
# session, user, current project, roles, the network (operation, host, project) and its subnets'
# CIDRs, the ports (network, operation), their fixed IPs, those IPs' subnets, the ports' security
# groups, the subnets and their allocations (used and free), switcher
DETAIL_QUERIES = 13
# session, user, current project, roles, the group, the remote group choices, the rules (with their
# remote groups), switcher
GROUP_DETAIL_QUERIES = 8


@pytest.fixture
def member(cloud):
    return cloud.ctx(cloud.member)


def unlimited(cloud):
    quotas.set_limits(cloud.project, {"networks": -1, "ports": -1, "floating_ips": -1, "security_groups": -1})


# --- networks ----------------------------------------------------------------------------------------


class TestNetworksPage:
    def test_rows_show_cidrs_flags_status_ports_and_poll_only_while_building(
        self, cloud, nethost, member, browse
    ):
        ready = active_network(member, "ready", cidr="10.10.0.0/24")
        active_port(member, ready)
        services.create_network(member, name="building")
        html = browse("member").get(NETWORKS).content.decode()
        assert 'href="/dashboard/networking/networks/create/"' in html
        row = row_of(html, "ready")
        assert "10.10.0.0/24" in row and 'network-status">ACTIVE<' in row and "hx-get" not in row
        assert re.search(r"<td[^>]*>1</td>", row)  # one port used
        assert 'data-action="delete"' in row
        building = row_of(html, "building")
        assert 'hx-trigger="every 2s"' in building and "/row/" in building and "BUILD" in building

    def test_reader_sees_rows_without_buttons_and_cannot_create(self, cloud, nethost, member, browse):
        active_network(member, "ready")
        client = browse("reader")
        html = client.get(NETWORKS).content.decode()
        assert "ready" in html and 'data-action="delete"' not in html and "Create network</a>" not in html
        assert client.get(CREATE).status_code == 403
        assert client.post(CREATE, {"name": "x", "cidr": "10.9.0.0/24"}).status_code == 403
        network = Network.objects.get(name="ready")
        assert client.post(f"{NETWORKS}{network.pk}/delete/").status_code == 403

    def test_other_project_sees_none_and_gets_404(self, cloud, nethost, member, browse):
        network = active_network(member, "mine")
        client = browse("other")
        assert "mine" not in client.get(NETWORKS).content.decode()
        assert client.get(f"{NETWORKS}{network.pk}/").status_code == 404
        assert client.get(f"{NETWORKS}{network.pk}/row/").status_code == 404
        assert client.post(f"{NETWORKS}{network.pk}/delete/").status_code == 404
        assert Network.objects.get(pk=network.pk).busy == ""

    def test_row_partial_then_empty_once_deleted(self, cloud, nethost, member, browse):
        network = active_network(member, "gone-soon")
        client = browse("member")
        assert client.get(f"{NETWORKS}{network.pk}/row/").content.decode().startswith("<tr ")
        services.delete_network(member, network)
        settle(services.NETWORK_LIFECYCLE, network, "delete")
        assert client.get(f"{NETWORKS}{network.pk}/row/").content == b""

    def test_fixed_queries(self, cloud, nethost, member, browse, django_assert_num_queries):
        client = browse("member")
        active_network(member, "first", cidr="10.100.0.0/24")

        def grow():
            unlimited(cloud)
            for n in range(MANY):
                network = active_network(member, f"n-{n}", cidr=f"10.{n}.0.0/24")
                if n % 2:
                    active_port(member, network)

        assert_fixed_queries(
            django_assert_num_queries,
            lambda: client.get(NETWORKS),
            LIST_QUERIES,
            grow=grow,
            rows=page_rows(b'network-status">'),
        )


class TestCreate:
    def test_creates_the_network_and_its_subnet(self, cloud, nethost, browse):
        data = {
            "name": "web",
            "cidr": "10.30.0.0/24",
            "gateway": "10.30.0.254",
            "dhcp": "on",
            "dns_servers": "10.30.0.2, 10.30.0.3",
            "idempotency_key": str(uuid.uuid4()),
        }
        client = browse("member")
        response = client.post(CREATE, data)
        assert response.status_code == 302 and response["Location"] == NETWORKS
        network = Network.objects.get(name="web")
        subnet = network.subnets.get()
        assert (subnet.cidr, subnet.gateway, subnet.dhcp) == ("10.30.0.0/24", "10.30.0.254", True)
        assert subnet.dns_servers == ["10.30.0.2", "10.30.0.3"]
        assert network.status == Network.BUILD and network.operation is not None
        client.post(CREATE, data)  # the same form posted again: one network
        assert Network.objects.filter(name="web").count() == 1

    @pytest.mark.parametrize(
        "fields, field, error",
        [
            ({"cidr": "10.0.0.0/33"}, "cidr", "is not a valid network"),
            ({"cidr": "10.0.0.1/24"}, "cidr", "has host bits set"),
            ({"cidr": "10.40.0.0/24", "gateway": "10.41.0.1"}, "gateway", "is not a usable address inside"),
            ({"cidr": "10.40.0.0/24", "dns_servers": "nonsense"}, "dns_servers", "is not an IP address"),
            ({"cidr": ""}, "cidr", "Give the subnet"),
        ],
    )
    def test_a_refusal_is_on_its_field_keeping_the_input(self, cloud, nethost, browse, fields, field, error):
        response = browse("member").post(CREATE, {"name": "keep-me", **fields})
        assert response.status_code == 400
        html = response.content.decode()
        assert 'value="keep-me"' in html
        feedback = re.search(
            rf'name="{field}" id="id_{field}".*?<div class="invalid-feedback d-block">([^<]*)', html, re.S
        )
        assert feedback and error in feedback.group(1), html
        assert not Network.objects.filter(name="keep-me").exists()  # no network without its subnet

    def test_over_quota_is_a_form_error(self, cloud, nethost, browse):
        quotas.set_limits(cloud.project, {"networks": 0})
        response = browse("member").post(CREATE, {"name": "one-too-many", "cidr": "10.50.0.0/24"})
        html = response.content.decode()
        assert response.status_code == 400 and "form-error" in html and "networks" in html

    def test_no_network_host_is_a_form_error(self, cloud, browse):
        response = browse("member").post(CREATE, {"name": "nowhere", "cidr": "10.50.0.0/24"})
        assert response.status_code == 400 and "No valid network host" in response.content.decode()


class TestDetail:
    def test_subnets_with_used_and_free_and_ports(self, cloud, nethost, member, browse):
        network = active_network(member, "web", cidr="10.60.0.0/29")  # 5 pool addresses (.2-.6)
        port = active_port(member, network, name="eth0", instance_id=str(uuid.uuid4()))
        html = browse("member").get(f"{NETWORKS}{network.pk}/").content.decode()
        subnet = re.search(r'<tr data-cidr="10.60.0.0/29">.*?</tr>', html, re.S).group(0)
        assert 'subnet-used">1<' in subnet and 'subnet-free">4<' in subnet
        ports = re.search(r'id="network-ports".*?</table>', html, re.S).group(0)
        assert "10.60.0.2" in ports and port.mac in ports and "eth0" in ports and "default" in ports
        assert f'href="/dashboard/compute/instances/{port.instance_id}/"' in ports
        assert 'id="network-host"' not in html  # the host is the admins'

    def test_delete_refused_with_the_reason_then_done(self, cloud, nethost, member, browse):
        network = active_network(member, "web")
        port = active_port(member, network)
        client = browse("member")
        response = client.post(f"{NETWORKS}{network.pk}/delete/", {"back": "detail"}, follow=True)
        assert "has 1 port(s): delete them first" in response.content.decode()
        services.delete_port(member, port)
        settle(services.PORT_LIFECYCLE, port, "delete")
        response = client.post(f"{NETWORKS}{network.pk}/delete/", follow=True)
        assert "Deleting network web." in response.content.decode()
        assert Network.objects.get(pk=network.pk).busy == Network.DELETING

    def test_fixed_queries(self, cloud, nethost, member, browse, django_assert_num_queries):
        network = active_network(member, "web")
        active_port(member, network)
        client = browse("member")

        def grow():
            unlimited(cloud)
            for _ in range(MANY):
                active_port(member, network, instance_id=str(uuid.uuid4()))

        assert_fixed_queries(
            django_assert_num_queries,
            lambda: client.get(f"{NETWORKS}{network.pk}/"),
            DETAIL_QUERIES,
            grow=grow,
            rows=page_rows(b"<tr data-port="),
        )

    def test_admin_sees_host_and_vlan(self, cloud, nethost, member, browse):
        network = active_network(member, "web")
        html = browse("admin").get(f"{NETWORKS}{network.pk}/").content.decode()
        assert 'id="network-host"' in html and "net-1" in html and str(network.vlan) in html


# --- floating IPs ----------------------------------------------------------------------------------


class TestFloatingIPs:
    def test_allocate_associate_disassociate_release(self, cloud, nethost, member, browse):
        public = external_network(cloud.ctx(cloud.admin))
        instance_id = uuid.uuid4()
        port = active_port(member, active_network(member, "web"), name="eth0", instance_id=str(instance_id))
        client = browse("member")
        page = client.get(FIPS).content.decode()
        assert f'<option value="{public.pk}"' in page and "No floating IPs yet." in page
        response = client.post(FIPS, {"network": str(public.pk)})
        assert response.status_code == 302
        fip = FloatingIP.objects.get(project=cloud.project)
        row = row_of(client.get(FIPS).content.decode(), fip.address)
        assert 'floating-ip-status">DOWN<' in row and "text-bg-secondary" in row
        assert 'data-action="associate"' in row and 'data-action="release"' in row

        form = client.get(f"{FIPS}{fip.pk}/associate/").content.decode()
        assert f"instance {str(instance_id)[:8]} · eth0 · 10.10.0.2 (web)" in form
        response = client.post(f"{FIPS}{fip.pk}/associate/", {"port": str(port.pk)})
        assert response.status_code == 302
        fip = FloatingIP.objects.get(pk=fip.pk)
        assert (fip.port_id, fip.busy) == (port.pk, FloatingIP.ASSOCIATING)
        assert 'hx-trigger="every 2s"' in row_of(client.get(FIPS).content.decode(), fip.address)
        fip = settle_fip(fip, "associate")
        row = row_of(client.get(FIPS).content.decode(), fip.address)
        assert "10.10.0.2" in row and 'data-action="disassociate"' in row and "release" not in row
        assert f"/dashboard/compute/instances/{instance_id}/" in row

        response = client.post(f"{FIPS}{fip.pk}/release/", follow=True)
        assert "disassociate it before releasing it" in response.content.decode()
        client.post(f"{FIPS}{fip.pk}/disassociate/")
        settle_fip(fip, "disassociate")
        response = client.post(f"{FIPS}{fip.pk}/release/", follow=True)
        assert f"Released {fip.address}." in response.content.decode()
        assert FloatingIP.objects.get(pk=fip.pk).status == FloatingIP.DELETED

    def test_associate_form_errors(self, cloud, nethost, member, browse):
        public = external_network(cloud.ctx(cloud.admin))
        fip = services.allocate_floating_ip(member, network=public)
        client = browse("member")
        response = client.post(f"{FIPS}{fip.pk}/associate/", {"port": ""})
        assert response.status_code == 400 and "Choose the port" in response.content.decode()
        response = client.post(f"{FIPS}{fip.pk}/associate/", {"port": str(uuid.uuid4())})
        assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
        # Another project's port is not on the list, and not accepted.
        other = cloud.ctx(cloud.other_member)
        theirs = active_port(other, active_network(other, "theirs", cidr="10.99.0.0/24"))
        assert str(theirs.pk) not in client.get(f"{FIPS}{fip.pk}/associate/").content.decode()

    def test_allocate_without_a_choice_is_a_form_error(self, cloud, nethost, browse):
        response = browse("member").post(FIPS, {"network": ""})
        assert response.status_code == 400 and "Choose an external network." in response.content.decode()

    def test_roles_and_other_projects(self, cloud, nethost, member, browse):
        public = external_network(cloud.ctx(cloud.admin))
        fip = services.allocate_floating_ip(member, network=public)
        reader = browse("reader")
        assert fip.address in reader.get(FIPS).content.decode()
        assert reader.post(FIPS, {"network": str(public.pk)}).status_code == 403
        assert reader.get(f"{FIPS}{fip.pk}/associate/").status_code == 403
        assert reader.post(f"{FIPS}{fip.pk}/release/").status_code == 403
        other = browse("other")
        assert fip.address not in other.get(FIPS).content.decode()
        assert other.get(f"{FIPS}{fip.pk}/associate/").status_code == 404
        assert other.post(f"{FIPS}{fip.pk}/release/").status_code == 404
        assert other.get(f"{FIPS}{fip.pk}/row/").status_code == 404
        assert FloatingIP.objects.get(pk=fip.pk).status == FloatingIP.DOWN

    def test_fixed_queries(self, cloud, nethost, member, browse, django_assert_num_queries):
        public = external_network(cloud.ctx(cloud.admin), cidr="203.0.113.0/24")
        network = active_network(member, "web")
        client = browse("member")
        services.allocate_floating_ip(member, network=public)

        def grow():
            unlimited(cloud)
            for n in range(MANY):
                fip = services.allocate_floating_ip(member, network=public)
                if n % 2:
                    services.associate(member, fip, active_port(member, network))

        assert_fixed_queries(
            django_assert_num_queries,
            lambda: client.get(FIPS),
            FIP_QUERIES,
            grow=grow,
            rows=page_rows(b'floating-ip-status">'),
        )


# --- security groups ---------------------------------------------------------------------------------


class TestSecurityGroups:
    def test_list_has_default_then_create_and_add_and_delete_rules(self, cloud, nethost, browse):
        client = browse("member")
        html = client.get(GROUPS).content.decode()
        assert 'data-name="default"' in html and "disabled title=" in row_of(html, "default")
        response = client.post(GROUPS, {"name": "web", "description": "http"})
        group = SecurityGroup.objects.get(project=cloud.project, name="web")
        assert response.status_code == 302 and response["Location"] == f"{GROUPS}{group.pk}/"
        detail = client.get(f"{GROUPS}{group.pk}/").content.decode()
        assert "No rules" in detail and 'id="rule-form"' in detail
        default = SecurityGroup.objects.get(project=cloud.project, name="default")
        assert f'<option value="{default.pk}"' in detail  # a remote group of the project
        rule = {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_min": "22"}
        response = client.post(
            f"{GROUPS}{group.pk}/rules/", {**rule, "port_max": "22", "remote_cidr": "0.0.0.0/0"}
        )
        assert response.status_code == 302
        client.post(
            f"{GROUPS}{group.pk}/rules/",
            {**rule, "port_min": "80", "port_max": "80", "remote_group": str(default.pk)},
        )
        detail = client.get(f"{GROUPS}{group.pk}/").content.decode()
        assert "<code>0.0.0.0/0</code>" in detail and "group default" in detail
        first = SecurityGroupRule.objects.get(group=group, port_min=22)
        response = client.post(f"{GROUPS}{group.pk}/rules/{first.pk}/delete/")
        assert response.status_code == 302 and not SecurityGroupRule.objects.filter(pk=first.pk).exists()
        assert client.post(f"{GROUPS}{group.pk}/delete/").status_code == 302
        assert not SecurityGroup.objects.filter(pk=group.pk).exists()

    @pytest.mark.parametrize(
        "fields, field, error",
        [
            ({"protocol": "tcp", "port_min": "30", "port_max": "20"}, "port_max", "port_min &lt;= port_max"),
            ({"protocol": "any", "port_min": "22"}, "port_min", "only for tcp and udp"),
            ({"protocol": "tcp", "remote_cidr": "10.0.0.0/99"}, "remote_cidr", "is not a valid network"),
            (
                {"protocol": "tcp", "ethertype": "IPv6", "remote_cidr": "10.0.0.0/8"},
                "remote_cidr",
                "not an IPv6",
            ),
            ({"protocol": "tcp", "port_min": "70000"}, "port_min", "less than or equal to 65535"),
        ],
    )
    def test_rule_errors_are_on_their_field(self, cloud, nethost, member, browse, fields, field, error):
        group = services.create_security_group(member, name="web")
        response = browse("member").post(
            f"{GROUPS}{group.pk}/rules/", {"direction": "ingress", "ethertype": "IPv4", **fields}
        )
        assert response.status_code == 400
        html = response.content.decode()
        feedback = re.search(
            rf'name="{field}" id="id_{field}".*?<div class="invalid-feedback d-block">([^<]*)', html, re.S
        )
        assert feedback and error in feedback.group(1), html
        assert not group.rules.exists()

    def test_detail_fixed_queries(self, cloud, member, browse, django_assert_num_queries):
        group = services.create_security_group(member, name="web")
        services.create_rule(member, group=group, direction="ingress", protocol="icmp")
        client = browse("member")

        def grow():
            quotas.set_limits(cloud.project, {"security_group_rules": -1, "security_groups": -1})
            for n in range(MANY):
                remote = services.create_security_group(member, name=f"peer-{n}")
                services.create_rule(
                    member, group=group, direction="ingress", protocol="tcp", remote_group=str(remote.pk)
                )

        assert_fixed_queries(
            django_assert_num_queries,
            lambda: client.get(f"{GROUPS}{group.pk}/"),
            GROUP_DETAIL_QUERIES,
            grow=grow,
            rows=page_rows(b"<tr data-rule="),
        )

    def test_group_name_errors(self, cloud, nethost, member, browse):
        services.create_security_group(member, name="web")
        client = browse("member")
        for name, error in (
            ("web", "named &#x27;web&#x27; already"),
            ("default", "default group already"),
            ("", "Give the group a name"),
        ):
            response = client.post(GROUPS, {"name": name})
            assert response.status_code == 400 and error in response.content.decode(), name

    def test_roles_and_other_projects(self, cloud, nethost, member, browse):
        group = services.create_security_group(member, name="web")
        rule = services.create_rule(member, group=group, direction="ingress", protocol="icmp")
        reader = browse("reader")
        html = reader.get(f"{GROUPS}{group.pk}/").content.decode()
        assert "icmp" in html and 'id="rule-form"' not in html and "Delete this rule" not in html
        assert reader.post(GROUPS, {"name": "x"}).status_code == 403
        assert reader.post(f"{GROUPS}{group.pk}/rules/", {"direction": "ingress"}).status_code == 403
        assert reader.post(f"{GROUPS}{group.pk}/rules/{rule.pk}/delete/").status_code == 403
        assert reader.post(f"{GROUPS}{group.pk}/delete/").status_code == 403
        other = browse("other")
        assert other.get(f"{GROUPS}{group.pk}/").status_code == 404
        assert other.post(f"{GROUPS}{group.pk}/rules/{rule.pk}/delete/").status_code == 404
        assert other.post(f"{GROUPS}{group.pk}/delete/").status_code == 404
        assert "web" not in other.get(GROUPS).content.decode()
        assert SecurityGroupRule.objects.filter(pk=rule.pk).exists()

    def test_fixed_queries(self, cloud, member, browse, django_assert_num_queries):
        client = browse("member")

        def grow():
            unlimited(cloud)
            for n in range(MANY):
                group = services.create_security_group(member, name=f"g-{n}")
                services.create_rule(member, group=group, direction="ingress", protocol="tcp", port_min=n + 1)

        assert_fixed_queries(
            django_assert_num_queries,
            lambda: client.get(GROUPS),
            GROUP_QUERIES,
            grow=grow,
            rows=page_rows(b"<tr data-name="),
        )


# --- admin ---------------------------------------------------------------------------------------


class TestAdmin:
    def test_all_networks_with_project_host_and_vlan(self, cloud, nethost, member, browse):
        network = active_network(member, "web")
        other = cloud.ctx(cloud.other_member)
        active_network(other, "theirs", cidr="10.99.0.0/24")
        html = browse("admin").get(ADMIN_NETWORKS).content.decode()
        row = row_of(html, "web")
        assert "alpha" in row and "net-1" in row and str(network.vlan) in row and f"znb{network.vlan}" in row
        assert "beta" in row_of(html, "theirs")

    def test_external_network_create_with_errors(self, cloud, nethost, browse):
        client = browse("admin")
        response = client.post(ADMIN_EXTERNAL, {"name": "public", "cidr": "203.0.113.0/33"})
        assert response.status_code == 400 and 'value="public"' in response.content.decode()
        assert "is not a valid network" in response.content.decode()
        response = client.post(ADMIN_EXTERNAL, {"name": "public", "cidr": "203.0.113.0/28"})
        assert response.status_code == 302
        network = Network.objects.get(name="public")
        assert network.external and network.subnets.get().cidr == "203.0.113.0/28"
        assert "public" in client.get(ADMIN_EXTERNAL).content.decode()

    def test_hosts_show_vlan_usage_and_what_was_applied(self, cloud, nethost, member, browse, settings):
        settings.ZENITH_NETWORK_VLAN_RANGE = "100-109"
        active_network(member, "web")  # its host answered conftest.OK: simulated, applied
        html = browse("admin").get(ADMIN_HOSTS).content.decode()
        assert "1 of 10 VLAN ids in use" in html and 'aria-valuenow="10"' in html
        host = row_of(html, "net-1")
        assert "web" in host and "network zenith-net" in host and "simulated" in host and ">up<" in host

    @pytest.mark.parametrize("who", ["member", "reader", "other"])
    @pytest.mark.parametrize("url", [ADMIN_NETWORKS, ADMIN_EXTERNAL, ADMIN_HOSTS])
    def test_admins_only(self, cloud, browse, who, url):
        assert browse(who).get(url).status_code == 403

    def test_member_cannot_create_external(self, cloud, nethost, browse):
        assert (
            browse("member").post(ADMIN_EXTERNAL, {"name": "x", "cidr": "203.0.113.0/28"}).status_code == 403
        )
        assert not Network.objects.filter(name="x").exists()

    def test_hosts_fixed_queries(self, cloud, nethost, member, browse, django_assert_num_queries):
        from .conftest import make_network_host

        client = browse("admin")

        def grow():
            unlimited(cloud)
            for n in range(MANY):
                make_network_host(f"net-{n + 2}")
                active_network(member, f"n-{n}", cidr=f"10.{n}.0.0/24")

        assert_fixed_queries(
            django_assert_num_queries,
            lambda: client.get(ADMIN_HOSTS),
            HOST_QUERIES,
            grow=grow,
            rows=page_rows(b'<tr data-name="net-'),
        )

    def test_navigation_entries(self, cloud, browse):
        html = browse("member").get(NETWORKS).content.decode()
        for path in ("networks/", "floating-ips/", "security-groups/"):
            assert f'href="{BASE}{path}"' in html
        assert f'href="{ADMIN_HOSTS}"' not in html
        assert f'href="{ADMIN_HOSTS}"' in browse("admin").get(NETWORKS).content.decode()
