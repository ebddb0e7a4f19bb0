"""Volumes from the dashboard, in Chromium, against a real conductor and a real agent carrying the
compute and storage roles on libvirt's test driver: create (a bad size first: the error shows on the
form, the input kept), watch the row poll until available, attach to a running instance chosen from a
list (the device shown), detach and delete (confirming each), the row gone; then the admins' panels
at 1280 px: all volumes, volume types, storage backends with their capacity bars."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from compute import services
from compute.models import Image, Instance
from storage.models import StoragePool, Volume, VolumeType
from tests.integration.conftest import storage_plane_for
from tests.integration.test_async_plane import wait_for

from .test_instances import confirm_next_dialog

pytestmark = [pytest.mark.browser, pytest.mark.integration]

HOST = "store-a"
IMAGE_BYTES = b"QFI\xfb" + b"\0" * 4092 + b"zenith browser image" * 2000
DEADLINE_MS = 30_000


@pytest.fixture(scope="module")
def storage_plane(request, django_db_setup, django_db_blocker, live_server, tmp_path_factory):
    with storage_plane_for(request, django_db_blocker, live_server, tmp_path_factory, HOST) as workers:
        yield workers


@pytest.fixture(autouse=True)
def _worker_logs_on_failure(request, storage_plane):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(storage_plane.logs())


@pytest.fixture
def world(cloud, storage_plane, live_server, settings):
    """Flavors, the default volume type, the host's pool reported, an image, a running instance."""
    settings.ZENITH_PORTAL_URL = live_server.url
    services.seed_flavors()
    VolumeType.objects.get_or_create(name="default", defaults={"backend": "local", "is_default": True})
    wait_for(lambda: StoragePool.objects.filter(host__name=HOST).exists(), "the storage host's pool report")
    admin = cloud.ctx(cloud.admin)
    image = services.create_image(admin, name="tiny", disk_format="qcow2", visibility="public")
    services.upload_image_data(admin, image, [IMAGE_BYTES])
    image.refresh_from_db()
    assert image.status == Image.ACTIVE
    instance, _ = services.create_instance(
        cloud.ctx(cloud.member), name="web-1", flavor="m1.tiny", image="tiny"
    )
    wait_for(
        lambda: Instance.objects.get(pk=instance.pk).status == "ACTIVE",
        lambda: f"web-1 to be ACTIVE\n{storage_plane.logs()}",
    )
    return instance


def test_create_attach_detach_delete(world, login, cloud, readme_screenshot):
    started = time.monotonic()
    page = login("alice")
    page.locator("aside").get_by_role("link", name="Volumes", exact=True).click()
    expect(page.get_by_role("heading", name="Volumes", exact=True)).to_be_visible()
    expect(page.get_by_text("No volumes yet.")).to_be_visible()
    page.get_by_role("link", name="Create volume").click()

    # A bad size: the error is on the field, the name typed is kept.
    page.get_by_label("Name").fill("data")
    # Choosing a source redraws the fields it uses, keeping what was typed.
    page.get_by_label("Source").select_option(label="Image")
    expect(page.get_by_label("Image", exact=True)).to_be_visible()
    page.get_by_label("Source").select_option(label="Blank volume")
    expect(page.get_by_label("Image", exact=True)).to_have_count(0)
    expect(page.get_by_label("Name")).to_have_value("data")
    page.get_by_label("Size (GiB)").fill("0")
    page.get_by_role("button", name="Create volume").click()
    expect(page.locator(".invalid-feedback")).to_contain_text("greater than or equal to 1")
    expect(page.get_by_label("Name")).to_have_value("data")
    readme_screenshot(page, "volume-create-error")
    page.get_by_label("Size (GiB)").fill("2")
    page.get_by_role("button", name="Create volume").click()
    expect(page).to_have_url(re.compile(r"/dashboard/storage/volumes/$"))
    expect(page.locator(".alert-success")).to_contain_text("Creating volume data.")
    row = page.locator('tr[data-name="data"]')
    expect(row.locator(".volume-status")).to_have_text("available", timeout=DEADLINE_MS)
    expect(row).not_to_have_attribute("data-polling", "true")
    expect(row).to_contain_text("2 GiB")

    # Attach to the running instance, chosen from the project's instances, from the volume's page.
    row.get_by_role("link", name="data").click()
    expect(page.locator("#volume-name")).to_have_text("data")
    summary = page.locator("#volume-summary")
    summary.get_by_role("link", name="Attach").click()
    page.get_by_label("Instance", exact=True).select_option(label="web-1 (ACTIVE)")
    page.get_by_role("button", name="Attach").click()
    expect(page.locator(".alert-success")).to_contain_text("Attaching volume data to web-1 as /dev/vdb.")
    expect(summary.locator(".volume-status")).to_have_text("in-use", timeout=DEADLINE_MS)
    expect(summary).not_to_have_attribute("data-polling", "true", timeout=DEADLINE_MS)
    expect(page.locator('#volume-attachments tr[data-live="true"]')).to_contain_text("/dev/vdb")
    page.get_by_role("tab", name="Action log").click()
    expect(page.locator('#volume-action-log tr[data-action="attach"]')).to_have_attribute(
        "data-result", "success"
    )
    page.get_by_role("tab", name="Overview").click()
    readme_screenshot(page, "volume-detail")

    # The instance's page lists it in its Volumes tab.
    page.goto(f"/dashboard/compute/instances/{world.pk}/")
    page.get_by_role("tab", name="Volumes").click()
    expect(page.locator('#instance-volumes tr[data-name="data"]')).to_contain_text("/dev/vdb")

    from storage import services as storage

    storage.create_volume(cloud.ctx(cloud.member), name="scratch", size=5, description="build cache")
    page.goto("/dashboard/storage/volumes/")
    expect(page.locator('tr[data-name="scratch"] .volume-status')).to_have_text(
        "available", timeout=DEADLINE_MS
    )
    expect(row).to_contain_text("web-1")
    readme_screenshot(page, "volumes")
    row.get_by_role("link", name="data").click()
    seen = confirm_next_dialog(page, "Detach")
    summary.get_by_role("button", name="Detach").click()
    expect(page.locator(".alert-success")).to_contain_text("Detaching volume data from web-1.")
    assert seen and seen[0].startswith("Detach volume data?"), seen
    expect(summary.locator(".volume-status")).to_have_text("available", timeout=DEADLINE_MS)
    expect(summary).not_to_have_attribute("data-polling", "true", timeout=DEADLINE_MS)

    seen = confirm_next_dialog(page, "Delete")
    summary.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(re.compile(r"/dashboard/storage/volumes/$"))
    expect(page.locator(".alert-success")).to_contain_text("Deleting volume data.")
    assert seen and seen[0].startswith("Delete volume data?"), seen
    expect(row).to_have_count(0, timeout=DEADLINE_MS)
    assert Volume.objects.get(name="data").status == Volume.DELETED
    print(f"volume life in the browser: {time.monotonic() - started:.1f} s")


def test_snapshots_and_admin_panels(world, login, cloud, readme_screenshot):
    from storage import services as storage

    member = cloud.ctx(cloud.member)
    volume, _ = storage.create_volume(member, name="db-data", size=3)
    wait_for(lambda: Volume.objects.get(pk=volume.pk).status == Volume.AVAILABLE, "db-data to be available")
    page = login("alice")
    page.goto("/dashboard/storage/snapshots/")
    expect(page.get_by_text("No snapshots yet.")).to_be_visible()

    page.context.clear_cookies()
    page = login("cloudadmin")
    sidebar = page.locator("aside")
    sidebar.get_by_role("link", name="All volumes", exact=True).click()
    row = page.locator('tr[data-name="db-data"]')
    expect(row).to_contain_text("alpha")
    expect(row).to_contain_text(HOST)
    sidebar.get_by_role("link", name="Volume types", exact=True).click()
    expect(page.locator('tr[data-name="default"]')).to_contain_text("local")
    sidebar.get_by_role("link", name="Storage backends", exact=True).click()
    backend = page.locator(f'tr[data-name="local@{HOST}"]')
    expect(backend.locator(".capacity-bar")).to_have_count(2)
    expect(backend).to_contain_text("3 of ")
    expect(backend.locator(".badge").first).to_have_text("up")
    readme_screenshot(page, "admin-storage-backends")
    # Nothing overflows the 1280 px viewport.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280


def test_launch_from_volumes_and_upload_to_image(world, login, cloud):
    """The launch wizard's Source step: an existing bootable volume, then an image to a new volume
    (a bad size first: the error on the Source step, the choice kept); both instances ACTIVE with
    their root volume in-use. Then a volume's Upload to image form: the upload starts, and on this
    simulated host (no bytes to stream) the volume comes back available with the host's reason."""
    from storage import services as storage

    member = cloud.ctx(cloud.member)
    boot, _ = storage.create_volume(member, name="boot-disk", size=1, image="tiny")
    wait_for(lambda: Volume.objects.get(pk=boot.pk).status == Volume.AVAILABLE, "boot-disk to be available")
    page = login("alice")
    page.goto("/dashboard/compute/instances/launch/")
    page.get_by_label("Instance name").fill("from-vol")
    page.get_by_role("button", name="Next: Source").click()
    images, volumes = page.locator("#launch-images"), page.locator("#launch-volumes")
    expect(images).to_be_visible()
    expect(volumes).to_be_hidden()
    page.get_by_label("Existing volume").check()
    expect(images).to_be_hidden()
    expect(page.get_by_label("Volume size (GiB)")).to_be_hidden()
    volumes.get_by_label("boot-disk").check()
    page.get_by_label("Delete the volume when the instance is deleted").check()
    expect(page.locator('[data-summary="source"]')).to_have_text("volume boot-disk")
    page.get_by_role("button", name="Next: Flavor").click()
    page.locator('tr[data-flavor="m1.tiny"]').get_by_label("m1.tiny").check()
    page.get_by_role("button", name="Launch instance").click()
    expect(page).to_have_url(re.compile(r"/dashboard/compute/instances/$"))
    expect(page.locator(".alert-success")).to_contain_text("Launching instance from-vol.")
    row = page.locator('tr[data-name="from-vol"]')
    expect(row.locator(".instance-status")).to_have_text("ACTIVE", timeout=DEADLINE_MS)
    assert Volume.objects.get(pk=boot.pk).display_status == "in-use"

    # Image to a new volume: a size of 0 is refused on the Source step, what was chosen kept.
    page.get_by_role("link", name="Launch instance").click()
    page.get_by_label("Instance name").fill("bfv")
    page.get_by_role("button", name="Next: Source").click()
    page.get_by_label("Image to a new volume").check()
    expect(volumes).to_be_hidden()
    images.get_by_label("tiny", exact=True).check()
    page.get_by_label("Volume size (GiB)").fill("0")
    page.get_by_role("button", name="Next: Flavor").click()
    page.locator('tr[data-flavor="m1.tiny"]').get_by_label("m1.tiny").check()
    page.get_by_role("button", name="Launch instance").click()
    expect(page.locator("#step-source")).to_be_visible()
    expect(page.locator("#step-source .invalid-feedback")).to_contain_text("greater than or equal to 1")
    expect(page.get_by_label("Image to a new volume")).to_be_checked()
    expect(images).to_be_visible()
    page.get_by_label("Volume size (GiB)").fill("2")
    images.get_by_label("tiny", exact=True).check()
    expect(page.locator('[data-summary="source"]')).to_have_text("a new 2 GiB volume from tiny")
    page.get_by_role("tab", name="Flavor").click()
    page.locator('tr[data-flavor="m1.tiny"]').get_by_label("m1.tiny").check()
    page.get_by_role("button", name="Launch instance").click()
    expect(page).to_have_url(re.compile(r"/dashboard/compute/instances/$"))
    expect(page.locator('tr[data-name="bfv"] .instance-status')).to_have_text("ACTIVE", timeout=DEADLINE_MS)
    root = Volume.objects.get(name="bfv-root")
    assert (root.size, root.display_status) == (2, "in-use")

    # Upload to image, from the volume's page.
    data, _ = storage.create_volume(member, name="data", size=1)
    wait_for(lambda: Volume.objects.get(pk=data.pk).status == Volume.AVAILABLE, "data to be available")
    page.goto(f"/dashboard/storage/volumes/{data.pk}/")
    summary = page.locator("#volume-summary")
    summary.get_by_role("link", name="Upload to image").click()
    expect(page.get_by_label("Image name")).to_have_value("data")
    page.get_by_label("Image name").fill("")
    page.get_by_role("button", name="Upload to image").click()
    expect(page.locator(".invalid-feedback")).to_contain_text("Give the image a name.")
    page.get_by_label("Image name").fill("data-image")
    page.get_by_label("Disk format").select_option("qcow2")
    page.get_by_role("button", name="Upload to image").click()
    expect(page).to_have_url(re.compile(rf"/dashboard/storage/volumes/{data.pk}/$"))
    expect(page.locator(".alert-success")).to_contain_text("Uploading volume data to image data-image.")
    expect(summary.locator(".volume-status")).to_have_text("available", timeout=DEADLINE_MS)
    expect(summary).not_to_have_attribute("data-polling", "true", timeout=DEADLINE_MS)
    page.reload()
    page.get_by_role("tab", name="Action log").click()
    upload = page.locator('#volume-action-log tr[data-action="upload"]')
    expect(upload).to_have_attribute("data-result", "error")
    expect(upload).to_contain_text("NotSupported")
    image = Image.objects.get(name="data-image")
    assert (image.status, image.disk_format) == (Image.KILLED, "qcow2")
