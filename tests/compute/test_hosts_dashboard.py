"""The Hypervisors admin page: state badges, usage, disable (with a reason) and enable; 403 for others."""

import itertools
import re

import pytest

from compute import services
from tests.identity.test_query_counts import MANY, assert_fixed_queries, page_rows
from workers.models import Host

from .conftest import make_host

PAGE = "/dashboard/compute/admin/hosts/"
# session, user, current project, roles, the table's COUNT and rows, the project switcher's list
PAGE_QUERIES = 7


@pytest.fixture
def admin_browser(client, cloud):
    client.force_login(cloud.admin)
    return client


def test_admin_sees_hosts_state_usage_and_the_menu_entry(cloud, admin_browser):
    make_host("sim-1", vcpus_used=8, hypervisor_type="QEMU")
    make_host("sim-2", last_heartbeat=None, enabled=False, disabled_reason="bad DIMM")
    services.sync_power_states(
        "sim-1",
        [
            {"name": "zenith-a", "uuid": "a", "power_state": "running", "instance_id": None},
            {"name": "zenith-b", "uuid": "b", "power_state": "shutdown", "instance_id": None},
        ],
    )
    page = admin_browser.get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'href="/dashboard/compute/admin/hosts/"' in html and "Hypervisors" in html
    assert re.search(r'data-name="sim-1".*?badge text-bg-success">up<', html, re.S)
    assert re.search(r'data-name="sim-2".*?badge text-bg-danger">down<', html, re.S)
    assert "8 / 16 × 4" in html and 'aria-valuenow="12"' in html  # 8 of 64 vCPUs
    assert "bad DIMM" in html
    assert re.search(r'data-name="sim-1".*?QEMU.*?1 running<br>.*?of 2 defined', html, re.S)
    assert re.search(r'data-name="sim-2".*?not reported yet', html, re.S)
    assert html.count('data-host-action="disable"') == 1 and html.count('data-host-action="enable"') == 1


@pytest.mark.parametrize("who", ["member", "reader"])
def test_others_are_refused(cloud, client, who):
    host = make_host("sim-1")
    client.force_login(getattr(cloud, who))
    assert client.get(PAGE).status_code == 403
    assert client.post(f"{PAGE}{host.pk}/disable/", {"reason": "x"}).status_code == 403
    assert Host.objects.get(pk=host.pk).enabled
    assert 'href="/dashboard/compute/admin/hosts/"' not in client.get("/").content.decode()


def test_disable_and_enable(cloud, admin_browser):
    host = make_host("sim-1")
    response = admin_browser.post(f"{PAGE}{host.pk}/disable/", {"reason": "maintenance"}, follow=True)
    assert response.redirect_chain == [(PAGE, 302)]
    assert "Host sim-1 disabled." in response.content.decode()
    host.refresh_from_db()
    assert (host.enabled, host.disabled_reason) == (False, "maintenance")
    response = admin_browser.post(f"{PAGE}{host.pk}/enable/", follow=True)
    assert "Host sim-1 enabled." in response.content.decode()
    host.refresh_from_db()
    assert (host.enabled, host.disabled_reason) == (True, "")


def test_disable_without_a_reason_shows_why(cloud, admin_browser):
    host = make_host("sim-1")
    response = admin_browser.post(f"{PAGE}{host.pk}/disable/", {"reason": " "}, follow=True)
    assert "Say why the host is disabled" in response.content.decode()
    assert Host.objects.get(pk=host.pk).enabled


def test_get_is_not_allowed_and_unknown_host_is_404(cloud, admin_browser):
    host = make_host("sim-1")
    assert admin_browser.get(f"{PAGE}{host.pk}/disable/").status_code == 405
    assert admin_browser.post(f"{PAGE}00000000-0000-0000-0000-000000000000/enable/").status_code == 404


_names = itertools.count()


def test_admin_hosts_page_queries(cloud, admin_browser, django_assert_num_queries):
    make_host("first")

    def grow():
        for _ in range(MANY):
            make_host(f"grown-{next(_names)}")

    assert_fixed_queries(
        django_assert_num_queries,
        lambda: admin_browser.get(PAGE),
        PAGE_QUERIES,
        grow=grow,
        rows=page_rows(b'data-name="'),
    )


def test_a_storage_only_host_is_no_hypervisor(cloud, admin_browser):
    """A host carrying only the storage role has no compute node: it is not listed as a hypervisor
    (page and API), rather than breaking the page (found by tests/fuzz once storage hosts existed)."""
    make_host("sim-1")
    Host.objects.create(name="store-1", roles=["storage"])
    page = admin_browser.get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-name="sim-1"' in html and 'data-name="store-1"' not in html
    listed = admin_browser.get("/api/v1/compute/hosts/")
    assert listed.status_code == 200
    body = listed.json()
    assert [h["name"] for h in body.get("results", body)] == ["sim-1"]
