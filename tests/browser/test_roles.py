"""What each role sees: a reader cannot create, only a cloud admin gets the Admin panels."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def sidebar_sections(page):
    return page.locator("aside .text-uppercase").all_inner_texts()


def test_reader_sees_no_create_form_and_no_admin_section(login, cloud):
    page = login("rita")
    expect(page.locator('nav .badge[title="your roles in this project"]')).to_have_text("reader")
    page.get_by_role("link", name="Key pairs").click()
    expect(page.get_by_role("heading", name="Key pairs", exact=True)).to_be_visible()
    expect(page.locator("#keypair-form")).to_have_count(0)
    expect(page.get_by_role("button", name="Create key pair")).to_have_count(0)
    assert [s.strip().lower() for s in sidebar_sections(page)] == ["project", "api"]
    sidebar = page.locator("aside")
    for label in ("Projects", "Users", "Role assignments", "Django admin"):
        expect(sidebar.get_by_role("link", name=label, exact=True)).to_have_count(0)
    # Typing the URL does not help either.
    page.goto("/dashboard/identity/admin/projects/")
    expect(page.locator("main .alert-warning")).to_contain_text("Your role in this project does not allow")
    expect(page.locator("#project-form")).to_have_count(0)


def test_admin_creates_project_and_assigns_role(login, cloud, readme_screenshot):
    page = login("cloudadmin")
    expect(page.locator("nav .badge.text-bg-warning")).to_have_text("cloud admin")
    assert "admin" in [s.strip().lower() for s in sidebar_sections(page)]
    sidebar = page.locator("aside")
    for label in ("Projects", "Users", "Role assignments"):
        expect(sidebar.get_by_role("link", name=label, exact=True)).to_be_visible()

    sidebar.get_by_role("link", name="Projects", exact=True).click()
    expect(page).to_have_url(re.compile(r"/dashboard/identity/admin/projects/$"))
    form = page.locator("#project-form")
    form.get_by_label("Name").fill("gamma")
    form.get_by_label("Description").fill("the third project")
    form.get_by_role("button", name="Create project").click()
    expect(page.locator(".alert-success")).to_contain_text("Project gamma created.")
    table = page.locator("main table")
    expect(table.get_by_role("cell", name="gamma", exact=True)).to_be_visible()
    expect(table).to_contain_text("the third project")
    readme_screenshot(page, "admin-projects")

    sidebar.get_by_role("link", name="Role assignments", exact=True).click()
    form = page.locator("#assignment-form")
    form.get_by_label("User").select_option(label="bob")
    form.get_by_label("Project").select_option(label="gamma")
    form.get_by_label("Role").select_option(label="member")
    form.get_by_role("button", name="Assign role").click()
    expect(page.locator(".alert-success")).to_contain_text("bob is now member on gamma.")
    row = page.locator("main table tbody tr").filter(has_text="gamma")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("bob")
    expect(row).to_contain_text("member")


def test_an_admin_is_not_offered_to_revoke_their_own_admin_role(login, cloud):
    """Their own cloud-admin grant has no Revoke button (superuser or not); others' grants do."""
    type(cloud.admin).objects.filter(pk=cloud.admin.pk).update(is_superuser=True, is_staff=True)
    page = login("cloudadmin")
    page.locator("aside").get_by_role("link", name="Role assignments", exact=True).click()
    own = page.locator("main table tbody tr").filter(has_text="cloudadmin")
    expect(own).to_have_count(1)
    expect(own.get_by_role("button", name="Revoke")).to_have_count(0)
    expect(own.locator("[data-own-admin-grant]")).to_have_text("your cloud-admin role")
    alice = page.locator("main table tbody tr").filter(has_text="alice")
    expect(alice.get_by_role("button", name="Revoke")).to_be_visible()
