"""Create forms work the first time: a flavor with only a name and sizes, an image with only a name
and a file (min disk/RAM, ephemeral and swap start at 0, as in Horizon); an upload refused for a bad
value says the file must be chosen again (a browser never refills a file input)."""

import pytest
from playwright.sync_api import expect

from compute.models import Flavor, Image

pytestmark = pytest.mark.browser

QCOW2 = b"QFI\xfb" + b"\0" * 4092
WIDTHS = (390, 1280, 1920)


def fresh_form(login, who: str, width: int, path: str, form_id: str, zeros: tuple[str, ...]):
    """The page's create form as a first-time user meets it: the fields Horizon defaults to 0 hold 0."""
    page = login(who)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(path)
    form = page.locator(form_id)
    for label in zeros:
        expect(form.get_by_label(label)).to_have_value("0")
    return page, form


@pytest.mark.parametrize("width", WIDTHS)
def test_the_first_flavor_create_succeeds_with_the_defaults(login, cloud, width):
    zeros = ("Ephemeral disk (GB)", "Swap (MB)")
    page, form = fresh_form(
        login, "cloudadmin", width, "/dashboard/compute/admin/flavors/", "#flavor-form", zeros
    )
    form.get_by_label("Name").fill("c1.first")
    form.get_by_role("button", name="Create flavor").click()
    expect(page.locator(".alert-success")).to_contain_text("Flavor c1.first created.")
    assert Flavor.objects.filter(name="c1.first", ephemeral_gb=0, swap_mb=0).exists()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_first_image_upload_succeeds_with_the_defaults(login, cloud, width):
    zeros = ("Minimum disk (GB)", "Minimum RAM (MB)")
    page, form = fresh_form(login, "alice", width, "/dashboard/compute/images/", "#image-form", zeros)
    form.get_by_label("Name").fill("first")
    form.get_by_label("Image file").set_input_files(
        files=[{"name": "first.qcow2", "mimeType": "application/octet-stream", "buffer": QCOW2}]
    )
    form.get_by_role("button", name="Upload image").click()
    expect(page.locator(".alert-success")).to_contain_text("Image first uploaded.")
    expect(page.locator('tr[data-name="first"]')).to_have_attribute("data-status", Image.ACTIVE)


def test_a_refused_upload_asks_for_the_file_again(login, cloud):
    page = login("alice")
    page.goto("/dashboard/compute/images/")
    form = page.locator("#image-form")
    form.get_by_label("Name").fill("second")
    form.get_by_label("Minimum RAM (MB)").fill("-1")
    form.get_by_label("Image file").set_input_files(
        files=[{"name": "second.qcow2", "mimeType": "application/octet-stream", "buffer": QCOW2}]
    )
    # The browser's own check on the number would stop the submit before the server sees it.
    form.evaluate("form => form.noValidate = true")
    form.get_by_role("button", name="Upload image").click()
    form = page.locator("#image-form")
    expect(form).to_contain_text("greater than or equal to 0")
    expect(form).to_contain_text("Choose second.qcow2 again")
    expect(form.get_by_label("Name")).to_have_value("second")
    assert not Image.objects.filter(name="second").exists()
