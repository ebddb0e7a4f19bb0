"""Logging in and out through the dashboard, and what the overview shows once in."""

import re

import pytest
from django.conf import settings
from playwright.sync_api import expect

from tests.factories import PASSWORD

pytestmark = pytest.mark.browser


def test_login_lands_on_overview_with_quota_usage(page, cloud, readme_screenshot):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_role("heading", name="Log in to Zenith")).to_be_visible()
    readme_screenshot(page, "login")

    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(re.compile(r"/dashboard/overview/$"))
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator("#current-project")).to_have_text("alpha")
    expect(page.locator("#project-select option:checked")).to_have_text("alpha")
    expect(page.get_by_role("heading", name="Quota usage")).to_be_visible()
    cards = page.locator("#quota-usage .card")
    resources = list(settings.ZENITH_DEFAULT_QUOTAS)
    expect(cards).to_have_count(len(resources))
    assert [cards.nth(i).get_attribute("data-resource") for i in range(len(resources))] == resources
    instances = page.locator('#quota-usage [data-resource="instances"]')
    expect(instances).to_contain_text("Instances")
    expect(instances.locator(".quota-figures")).to_have_text("0 of 10")
    expect(page.locator('#quota-usage [data-resource="key_pairs"] .quota-figures')).to_have_text("0 of 100")
    expect(page.locator("nav.navbar")).to_contain_text("alice")
    readme_screenshot(page, "overview")


def test_logout_returns_to_login_page(login, cloud):
    page = login("alice")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_role("heading", name="Log in to Zenith")).to_be_visible()
    expect(page.locator("#project-select")).to_have_count(0)
    # The session is gone: the overview now sends us back to the login form.
    page.goto("/dashboard/overview/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/dashboard/overview/$"))


def test_wrong_password_shows_an_error(page, cloud):
    page.goto("/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".alert-danger")).to_contain_text("correct username and password")
    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_label("Username")).to_have_value("alice")
    expect(page.locator("#current-project")).to_have_count(0)
