"""Networks and security groups from the dashboard, in Chromium: create a network with its first
subnet (a malformed CIDR first: the error shows on the CIDR field, the name typed kept), watch its row
poll until the network host's answer makes it ACTIVE, open its page (the subnet's used and free
addresses); then create a security group and add a tcp/22 rule (a reversed port range first: the
error on its field), and delete it.

The network agent's side (``workers.agent.network``) has not landed yet, so no agent process answers
here: the test records the network host's answer through the conductor's own settle call, as
tests/networking do, and the page must show it without a reload."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from networking import services
from networking.models import Network, SecurityGroupRule
from tests.networking.conftest import make_network_host, settle

from .conftest import ARTIFACTS
from .test_instances import confirm_next_dialog

pytestmark = pytest.mark.browser


@pytest.fixture
def nethost(cloud):
    return make_network_host("net-1")


def test_create_network_with_subnet_and_security_group_rule(nethost, login, cloud, readme_screenshot):
    page = login("alice")
    page.locator("aside").get_by_role("link", name="Networks", exact=True).click()
    expect(page.get_by_role("heading", name="Networks", exact=True)).to_be_visible()
    expect(page.get_by_text("No networks yet.")).to_be_visible()
    page.get_by_role("link", name="Create network").click()

    page.get_by_label("Name").fill("web")
    page.get_by_label("Subnet CIDR").fill("10.20.0.0/33")
    page.get_by_label("DNS servers").fill("10.20.0.2")
    expect(page.get_by_label("DHCP")).to_be_checked()
    page.get_by_role("button", name="Create network").click()
    cidr_error = page.locator("#id_cidr ~ .invalid-feedback")
    expect(cidr_error).to_contain_text("is not a valid network")
    expect(page.get_by_label("Name")).to_have_value("web")
    expect(page.get_by_label("DNS servers")).to_have_value("10.20.0.2")
    assert not Network.objects.filter(name="web").exists()
    page.get_by_label("Subnet CIDR").fill("10.20.0.0/24")
    page.get_by_role("button", name="Create network").click()
    expect(page).to_have_url(re.compile(r"/dashboard/networking/networks/$"))
    expect(page.locator(".alert-success")).to_contain_text("Creating network web.")
    row = page.locator('tr[data-name="web"]')
    expect(row).to_contain_text("10.20.0.0/24")
    expect(row.locator(".network-status")).to_have_text("BUILD")
    expect(row).to_have_attribute("data-polling", "true")

    # The network host's answer (see the module docstring): the polling row turns ACTIVE and stops.
    settle(services.NETWORK_LIFECYCLE, Network.objects.get(name="web"), "create")
    expect(row.locator(".network-status")).to_have_text("ACTIVE", timeout=10_000)
    expect(row).not_to_have_attribute("data-polling", "true")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "networks.png"), full_page=True)
    readme_screenshot(page, "networks")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280

    row.get_by_role("link", name="web").click()
    expect(page.locator("#network-name")).to_have_text("web")
    subnet = page.locator('#network-subnets tr[data-cidr="10.20.0.0/24"]')
    expect(subnet.locator(".subnet-used")).to_have_text("0")
    expect(subnet.locator(".subnet-free")).to_have_text("253")
    expect(subnet).to_contain_text("10.20.0.2")

    # A security group and a rule, through the rule editor.
    page.locator("aside").get_by_role("link", name="Security groups", exact=True).click()
    expect(page.locator('tr[data-name="default"]')).to_be_visible()
    page.get_by_label("Name").fill("ssh")
    page.get_by_role("button", name="Create security group").click()
    expect(page.locator("#group-name")).to_have_text("ssh")
    expect(page.get_by_text("No rules: nothing is let in or out.")).to_be_visible()
    form = page.locator("#rule-form")
    form.get_by_label("Protocol").select_option("tcp")
    form.get_by_label("From port").fill("30")
    form.get_by_label("To port").fill("20")
    form.get_by_label("Remote CIDR").fill("0.0.0.0/0")
    form.get_by_role("button", name="Add rule").click()
    expect(page.locator("#id_port_max ~ .invalid-feedback")).to_contain_text("port_min <= port_max")
    expect(form.get_by_label("Remote CIDR")).to_have_value("0.0.0.0/0")
    form.get_by_label("From port").fill("22")
    form.get_by_label("To port").fill("22")
    form.get_by_role("button", name="Add rule").click()
    expect(page.locator(".alert-success")).to_contain_text("Rule ingress IPv4 tcp 22-22 0.0.0.0/0 added.")
    rule = page.locator("#group-rules tbody tr").first
    expect(rule).to_contain_text("22")
    expect(rule).to_contain_text("0.0.0.0/0")
    assert SecurityGroupRule.objects.filter(group__name="ssh", port_min=22, port_max=22).count() == 1

    seen = confirm_next_dialog(page, "Delete")
    rule.get_by_role("button", name="Delete").click()
    expect(page.locator(".alert-success")).to_contain_text("deleted.")
    assert seen == ["Delete this rule?"], seen
    expect(page.get_by_text("No rules: nothing is let in or out.")).to_be_visible()
