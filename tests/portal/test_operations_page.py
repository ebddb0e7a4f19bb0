"""The operations page traces each operation to its resource (name and link), filters by kind, state
and resource (id or name), says what is wrong with a bad filter, and costs the same queries at any size."""

import re

import pytest
from django.test import Client

from compute.models import Instance
from tests.compute.conftest import make_flavor, make_host
from tests.compute.instance_helpers import launch
from tests.identity.helpers import make_operation
from workers.models import Operation

URL = "/dashboard/operations/"


@pytest.fixture
def member(cloud) -> Client:
    client = Client()
    client.force_login(cloud.member)
    return client


def rows(html: str) -> list[str]:
    body = html.split("<tbody", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr.*?</tr>", body, re.S)


def op_for(cloud, instance: Instance, kind: str, state: str = Operation.SUCCEEDED) -> Operation:
    return make_operation(
        cloud.project, cloud.member, kind=kind, state=state, resource_type="instance", resource_id=instance.pk
    )


def test_each_operation_names_and_links_its_instance(cloud, member):
    web = launch(cloud, name="web-1", flavor=make_flavor("ops.web"))
    html = member.get(URL).content.decode()
    (row,) = [r for r in rows(html) if "instance.create" in r]
    assert f'<a href="/dashboard/compute/instances/{web.pk}/" data-resource="{web.pk}">web-1</a>' in row


def test_a_host_is_named_to_admins_only(cloud, member):
    host = make_host("secret-host")
    make_operation(cloud.project, cloud.member, kind="host.ping", resource_type="host", resource_id=host.pk)
    assert "secret-host" not in member.get(URL).content.decode()
    admin = Client()
    admin.force_login(cloud.admin)
    assert "secret-host" in admin.get(URL, {"all": "1"}).content.decode()


def test_filters_by_kind_state_and_resource(cloud, member):
    web = launch(cloud, name="web-1", flavor=make_flavor("ops.web"))
    db = launch(cloud, name="db-1", flavor=make_flavor("ops.db"))
    op_for(cloud, web, "instance.reboot", Operation.FAILED)
    op_for(cloud, db, "instance.stop", Operation.RUNNING)
    make_operation(cloud.project, cloud.member, kind="host.ping")

    def shown(**query) -> list[str]:
        kinds = (
            re.search(r"<code[^>]*>([a-z_.]+)</code>", r)
            for r in rows(member.get(URL, query).content.decode())
        )
        return sorted(kind.group(1) for kind in kinds if kind)  # the empty table's row has none

    assert shown(kind="instance") == [
        "instance.create",
        "instance.create",
        "instance.reboot",
        "instance.stop",
    ]
    assert shown(kind="instance.reboot") == ["instance.reboot"]
    assert shown(state="running") == ["instance.stop"]
    assert shown(resource="db-1") == ["instance.create", "instance.stop"]
    assert shown(resource=str(web.pk)) == ["instance.create", "instance.reboot"]
    assert shown(kind="instance", state="failed", resource="web-1") == ["instance.reboot"]
    assert shown(resource="nothing-called-this") == []


@pytest.mark.parametrize(
    ("query", "message"), [({"kind": "Bad Kind!"}, "A kind is"), ({"state": "bogus"}, "bogus")]
)
def test_a_bad_filter_says_so_and_lists_nothing(cloud, member, query, message):
    launch(cloud, name="web-1", flavor=make_flavor("ops.web"))
    response = member.get(URL, query)
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html and "filter-error" in html
    assert "instance.create" not in html


def test_the_page_costs_the_same_queries_with_1_or_many_operations(cloud, member, django_assert_num_queries):
    flavor = make_flavor("ops.many")
    first = launch(cloud, name="vm-0", flavor=flavor)
    make_operation(
        cloud.project, cloud.member, kind="host.ping", resource_type="host", resource_id=make_host("h").pk
    )
    member.get(URL)
    with django_assert_num_queries(QUERIES) as small:
        member.get(URL)
    for n in range(1, 22):
        op_for(
            cloud, launch(cloud, name=f"vm-{n}", flavor=flavor) if n % 3 == 0 else first, "instance.reboot"
        )
    with django_assert_num_queries(len(small.captured_queries)):
        html = member.get(URL).content.decode()
    assert len(rows(html)) >= 25 and "vm-21" in html


QUERIES = 8  # session, user, the caller's roles and project, COUNT, page, instance names (one query)
