"""The top bar's project switcher changes the project the whole dashboard works in."""

import re

import pytest
from playwright.sync_api import expect

from tests.factories import grant

pytestmark = pytest.mark.browser


def test_switching_project_changes_overview_and_roles(login, cloud):
    # cloud.member is a stale instance (its default_project is still None in memory): alpha must stay
    # alice's default project all the same.
    grant(cloud.member, cloud.other_project, "reader")
    page = login("alice")
    roles = page.locator('nav .badge[title="your roles in this project"]')
    expect(page.locator("#current-project")).to_have_text("alpha")
    expect(roles).to_have_text("member")
    expect(page.locator("#project-select option")).to_have_text(["alpha", "beta"])

    page.select_option("#project-select", label="beta")  # data-autosubmit: no button to press

    expect(page.locator(".alert-success")).to_contain_text("Switched to project beta.")
    expect(page).to_have_url(re.compile(r"/dashboard/overview/$"))
    expect(page.locator("#current-project")).to_have_text("beta")
    expect(page.locator("#project-select option:checked")).to_have_text("beta")
    expect(roles).to_have_text("reader")
    # The choice is kept in the session: other pages work in beta too.
    page.goto("/dashboard/identity/keypairs/")
    expect(page.locator("#project-select option:checked")).to_have_text("beta")
    expect(page.locator("#keypair-form")).to_have_count(0)  # a reader cannot create key pairs
