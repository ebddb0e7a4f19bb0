"""Create snapshot from the dashboard, in Chromium, against a real conductor and a real host agent on
libvirt's test driver: the instance page's generated button opens the name form, the snapshot runs
(the agent flattens the simulated disk, its base image, and uploads it over the signed URL to the
live server), the instance is back to ACTIVE with the action in its log, and the image is listed in
Images, active."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from compute import services
from compute.models import Image, Instance
from tests.integration.conftest import agent_plane_for
from tests.integration.test_async_plane import wait_for
from workers.models import Host

pytestmark = [pytest.mark.browser, pytest.mark.integration]

HOST = "snap-browser-host"
DEADLINE_MS = 30_000


@pytest.fixture(scope="module")
def plane(request, django_db_setup, django_db_blocker, live_server, tmp_path_factory):
    with agent_plane_for(request, django_db_blocker, live_server, tmp_path_factory, HOST) as workers:
        yield workers


def test_create_snapshot_from_the_instance_page(cloud, plane, live_server, settings, login):
    settings.ZENITH_PORTAL_URL = live_server.url
    services.seed_flavors()
    wait_for(lambda: Host.objects.filter(name=HOST).exists(), f"{HOST} to register")
    admin = cloud.ctx(cloud.admin)
    base = services.create_image(admin, name="base", disk_format="qcow2", visibility="public")
    services.upload_image_data(admin, base, [services.demo_qcow2(virtual_size=64 << 20)])
    instance, _ = services.create_instance(
        cloud.ctx(cloud.member), name="web-1", flavor="m1.tiny", image="base"
    )
    wait_for(
        lambda: Instance.objects.get(pk=instance.pk).status == "ACTIVE",
        lambda: f"web-1 ACTIVE\n{plane.logs()}",
    )

    page = login("alice")
    page.goto(f"/dashboard/compute/instances/{instance.pk}/")
    summary = page.locator("#instance-summary")
    summary.get_by_role("button", name="Create snapshot", exact=True).click()
    expect(page.get_by_role("heading", name="Create snapshot: web-1")).to_be_visible()
    name = page.get_by_label("Snapshot name")
    expect(name).to_have_value("web-1-snapshot")
    name.fill("")
    page.get_by_role("button", name="Create snapshot").click()
    expect(page.locator(".invalid-feedback")).to_contain_text("This field is required")
    page.get_by_label("Snapshot name").fill("web-1-golden")
    page.get_by_role("button", name="Create snapshot").click()
    expect(page).to_have_url(re.compile(rf"/dashboard/compute/instances/{instance.pk}/$"))
    expect(page.locator(".alert-success")).to_contain_text("Creating snapshot web-1-golden of instance web-1")
    expect(summary.locator(".instance-status")).to_have_text("ACTIVE", timeout=DEADLINE_MS)
    expect(summary).not_to_have_attribute("data-polling", "true", timeout=DEADLINE_MS)
    page.get_by_role("tab", name="Action log").click()
    expect(page.locator('#instance-action-log tr[data-action="snapshot"]')).to_have_attribute(
        "data-result", "success", timeout=DEADLINE_MS
    )

    page.locator("aside").get_by_role("link", name="Images", exact=True).click()
    row = page.locator('tr[data-name="web-1-golden"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("active")
    image = Image.objects.get(name="web-1-golden")
    assert image.properties["instance_uuid"] == str(instance.pk) and image.status == Image.ACTIVE
