"""The dashboard's layout at a phone (390 px), a laptop (1280 px, 1440 px) and a wide screen (1920 px):
every row action can be clicked (not hidden under the side form), the page never scrolls sideways, and
at phone width the sidebar folds away behind a menu button while the top bar stays readable."""

import re

import pytest
from playwright.sync_api import Page, expect

from compute import services
from compute.models import Image

pytestmark = pytest.mark.browser

WIDTHS = (390, 1280, 1440, 1920)


def clickable(locator) -> None:
    """Playwright's trial click waits until the element would receive the click itself: visible,
    stable, enabled and not covered by another element (the side form card, say). It clicks nothing."""
    locator.scroll_into_view_if_needed()
    locator.click(trial=True, timeout=2_000)


def no_sideways_scroll(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px"


@pytest.fixture
def images(cloud):
    """A public image (the cloud's) and one of alpha's, both active, with long names like real ones."""
    admin = cloud.ctx(cloud.admin)
    public = services.create_image(
        admin, name="debian-12-genericcloud-amd64", disk_format="qcow2", visibility="public"
    )
    services.upload_image_data(admin, public, [b"QFI\xfb" + b"\0" * 4092])
    own = services.create_image(cloud.ctx(cloud.member), name="alpha-build-agent-2026", disk_format="raw")
    services.upload_image_data(cloud.ctx(cloud.member), own, [b"\0" * 4096])
    assert set(Image.objects.values_list("status", flat=True)) == {Image.ACTIVE}
    return public, own


@pytest.mark.parametrize("width", WIDTHS)
def test_image_row_actions_are_clickable_beside_the_upload_form(login, cloud, images, width):
    page = login("alice")
    page.set_viewport_size({"width": width, "height": 900})
    page.goto("/dashboard/compute/images/")
    expect(page.locator("#image-form")).to_be_attached()
    for name in ("debian-12-genericcloud-amd64", "alpha-build-agent-2026"):
        row = page.locator(f'tr[data-name="{name}"]')
        clickable(row.locator('[data-image-action="download"]'))
    clickable(page.locator('tr[data-name="alpha-build-agent-2026"]').get_by_role("button", name="Delete"))
    clickable(page.get_by_role("button", name="Upload image"))
    no_sideways_scroll(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_flavor_delete_buttons_are_clickable_beside_the_create_form(login, cloud, width):
    services.seed_flavors()
    page = login("cloudadmin")
    page.set_viewport_size({"width": width, "height": 900})
    page.goto("/dashboard/compute/admin/flavors/")
    for name in ("m1.tiny", "m1.xlarge"):
        clickable(page.locator(f'tr[data-name="{name}"]').get_by_role("button", name="Delete"))
    clickable(page.get_by_role("button", name="Create flavor"))
    no_sideways_scroll(page)


@pytest.mark.parametrize("width", (390, 1280, 1920))
def test_the_top_bar_and_sidebar_fit_the_screen(login, cloud, width, readme_screenshot):
    page = login("alice")
    page.set_viewport_size({"width": width, "height": 800})
    page.goto("/dashboard/overview/")
    no_sideways_scroll(page)
    sidebar = page.locator("aside")
    logout = page.get_by_role("button", name="Log out")
    user = page.locator("#current-user")
    if width < 768:
        # Folded: the overview's heading comes first, the menu button opens the sidebar.
        expect(sidebar.get_by_role("link", name="Instances")).to_be_hidden()
        toggle = page.get_by_role("button", name="Menu")
        clickable(toggle)
        toggle.click()
        expect(sidebar).to_have_class(re.compile(r"\bcollapse show\b"))  # opened (not still sliding)
        expect(sidebar.get_by_role("link", name="Instances")).to_be_visible()
        clickable(sidebar.get_by_role("link", name="Instances"))
        readme_screenshot(page, "phone-menu")
        toggle.click()
        expect(sidebar.get_by_role("link", name="Instances")).to_be_hidden()
    else:
        expect(page.get_by_role("button", name="Menu")).to_be_hidden()
        clickable(sidebar.get_by_role("link", name="Instances"))
    # The user's name and Log out are on the dark bar (not white on the white page below it).
    clickable(logout)
    expect(user).to_contain_text("alice")
    bar = page.locator("nav.navbar").bounding_box()
    for element in (user, logout):
        box = element.bounding_box()
        assert box["y"] >= bar["y"] and box["y"] + box["height"] <= bar["y"] + bar["height"], element
        assert box["x"] + box["width"] <= width


@pytest.mark.parametrize("width", (390, 1280, 1920))
def test_empty_pages_say_so_and_the_tab_has_an_icon(login, cloud, width):
    page = login("alice")
    page.set_viewport_size({"width": width, "height": 800})
    page.goto("/dashboard/identity/keypairs/")
    expect(page.locator("main table")).to_contain_text("No key pairs yet")
    page.goto("/dashboard/operations/")
    expect(page.locator("main table")).to_contain_text("No operations yet")
    no_sideways_scroll(page)
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    response = page.request.get(icon)
    assert response.ok and response.headers["content-type"].startswith("image/svg+xml"), icon
