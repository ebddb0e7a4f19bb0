"""The whole instance life from the dashboard, in Chromium, against a real conductor and two real host
agents on libvirt's test driver: launch from the wizard, watch the row poll with a progress bar until
ACTIVE, read the console log, reboot, stop, start and delete (confirming each), the row gone.

The agents download the image from the live server with a signed URL (ZENITH_PORTAL_URL in their
environment), as in production.
"""

from __future__ import annotations

import re
import signal
import time

import pytest
from django.conf import settings
from playwright.sync_api import expect

from compute import services
from compute.models import Image, Instance
from tests.integration.conftest import PLANE_KEY, Plane, _signal_group, clear_broker, shut_down
from tests.integration.test_async_plane import wait_for
from workers import processes
from workers.models import Host

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SIM_URI = processes.simulated_host_uri()
HOSTS = ("host-a", "host-b")
IMAGE_BYTES = b"QFI\xfb" + b"\0" * 4092 + b"zenith browser image" * 2000
DEADLINE_MS = 30_000  # the longest any step may take to show (a launch is well under a second here)


@pytest.fixture(scope="module")
def compute_plane(request, django_db_setup, django_db_blocker, live_server, tmp_path_factory):
    """A conductor and agents host-a and host-b (libvirt test driver), started once for the module."""
    clear_broker()
    workers = Plane(tmp_path_factory.mktemp("worker-logs"))
    workers.env.update(ZENITH_PORTAL_URL=live_server.url, ZENITH_HEARTBEAT_INTERVAL="1")
    request.node.stash[PLANE_KEY] = workers
    try:
        launched = [workers.launch_conductor()] + [workers.launch_agent(h, SIM_URI) for h in HOSTS]
        workers.start(*launched)
        yield workers
    finally:
        shut_down(workers, django_db_blocker)


@pytest.fixture(autouse=True)
def _worker_logs_on_failure(request, compute_plane):
    """A failed test prints the workers' logs (pytest shows a failed test's captured output)."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(compute_plane.logs())


@pytest.fixture
def world(cloud, compute_plane, live_server, settings):
    """Flavors, a public image with bytes, and both hosts registered (the database is flushed per test)."""
    settings.ZENITH_PORTAL_URL = live_server.url
    services.seed_flavors()
    wait_for(lambda: Host.objects.filter(name__in=HOSTS).count() == 2, "both hosts to register")
    admin = cloud.ctx(cloud.admin)
    image = services.create_image(admin, name="tiny", disk_format="qcow2", visibility="public")
    services.upload_image_data(admin, image, [IMAGE_BYTES])
    image.refresh_from_db()
    assert image.status == Image.ACTIVE
    return compute_plane


class frozen_agents:
    """SIGSTOP the agents' process groups (a busy host): a launch waits on their queues, so the row is
    seen polling with its progress bar; SIGCONT lets them work. Short enough that no host goes down."""

    def __init__(self, plane: Plane):
        self.agents = [w for name, w in plane.workers.items() if name.startswith("agent-")]

    def __enter__(self):
        for agent in self.agents:
            _signal_group(agent, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        for agent in self.agents:
            _signal_group(agent, signal.SIGCONT)


def confirm_next_dialog(page, expected: str) -> list[str]:
    """Accept the next confirm() and keep its message for the test to check."""
    seen: list[str] = []

    def accept(dialog):
        seen.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    return seen


def test_launch_watch_console_reboot_stop_start_delete(world, login, readme_screenshot):
    started = time.monotonic()
    page = login("alice")
    page.locator("aside").get_by_role("link", name="Instances", exact=True).click()
    expect(page.get_by_role("heading", name="Instances", exact=True)).to_be_visible()
    expect(page.get_by_text("No instances yet.")).to_be_visible()
    page.get_by_role("link", name="Launch instance").click()

    # The wizard: details, source, flavor (quota left, hosts that fit), key pair, configuration.
    expect(page.get_by_role("heading", name="Launch instance")).to_be_visible()
    page.get_by_label("Instance name").fill("web-1")
    page.get_by_role("button", name="Next: Source").click()
    page.get_by_label("tiny", exact=True).check()
    page.get_by_role("button", name="Next: Flavor").click()
    tiny = page.locator('tr[data-flavor="m1.tiny"]')
    expect(tiny).to_be_visible()
    expect(tiny.locator(".hosts-fit")).to_have_text("2 hosts fit")
    expect(tiny.locator(".quota-after")).to_contain_text("9 instances")
    tiny.get_by_label("m1.tiny").check()
    expect(page.locator('#launch-quota [data-resource="cores"] .quota-adding')).to_have_text(" (+1)")
    expect(page.locator('[data-summary="flavor"]')).to_contain_text("m1.tiny")
    readme_screenshot(page, "launch-wizard")
    page.get_by_role("button", name="Next: Key pair").click()
    page.get_by_role("button", name="Next: Configuration").click()
    page.get_by_label("User data").fill("#cloud-config\nhostname: web-1\n")

    row = page.locator('tr[data-name="web-1"]')
    with frozen_agents(world):
        page.get_by_role("button", name="Launch instance").click()
        expect(page).to_have_url(re.compile(r"/dashboard/compute/instances/$"))
        expect(page.locator(".alert-success")).to_contain_text("Launching instance web-1.")
        # Building: the row polls and shows the operation's progress (scheduled, waiting for the host).
        expect(row).to_have_attribute("data-polling", "true")
        expect(row.locator(".instance-status")).to_have_text("BUILD")
        expect(row.locator(".instance-progress")).to_be_visible(timeout=DEADLINE_MS)
        expect(row.locator(".instance-progress-message")).to_contain_text(
            "scheduled on host-", timeout=DEADLINE_MS
        )
        readme_screenshot(page, "instances-building")
    expect(row.locator(".instance-status")).to_have_text("ACTIVE", timeout=DEADLINE_MS)
    expect(row).not_to_have_attribute("data-polling", "true")
    expect(row.locator(".instance-progress")).to_have_count(0)
    readme_screenshot(page, "instances")

    # Detail: overview, console log (the test driver has no guest: it says so), action log.
    row.get_by_role("link", name="web-1").click()
    expect(page.locator("#instance-name")).to_have_text("web-1")
    expect(page.locator("#instance-summary .instance-status")).to_have_text("ACTIVE")
    expect(page.locator("#instance-overview")).to_contain_text("m1.tiny")
    page.get_by_role("tab", name="Console log").click()
    expect(page.locator("#console-unsupported")).to_contain_text("no console output", timeout=DEADLINE_MS)
    page.get_by_role("tab", name="Action log").click()
    expect(page.locator('#instance-action-log tr[data-action="create"]')).to_have_attribute(
        "data-result", "success"
    )
    page.get_by_role("tab", name="Overview").click()
    readme_screenshot(page, "instance-detail")

    summary = page.locator("#instance-summary")
    for button, confirm, status in [
        ("Reboot", "Reboot instance web-1?", "ACTIVE"),
        ("Stop", "Stop instance web-1?", "SHUTOFF"),
        ("Start", None, "ACTIVE"),
    ]:
        seen = confirm_next_dialog(page, confirm) if confirm else []
        summary.get_by_role("button", name=button, exact=True).click()
        expect(page.locator(".alert-success")).to_contain_text("instance web-1.")
        if confirm:
            assert seen and seen[0].startswith(confirm), seen
        expect(summary.locator(".instance-status")).to_have_text(status, timeout=DEADLINE_MS)
        expect(summary).not_to_have_attribute("data-polling", "true", timeout=DEADLINE_MS)
    page.get_by_role("tab", name="Action log").click()
    log = page.locator("#instance-action-log tbody tr")
    expect(log).to_have_count(4)
    expect(log.first).to_have_attribute("data-action", "start")
    expect(page.locator('#instance-action-log tr[data-result="success"]')).to_have_count(4)

    # Delete from the table, confirming; the row polls while deleting and then goes.
    page.locator("aside").get_by_role("link", name="Instances", exact=True).click()
    row.get_by_role("button", name="Actions for web-1").click()
    seen = confirm_next_dialog(page, "Delete")
    row.get_by_role("button", name="Delete").click()
    expect(page.locator(".alert-success")).to_contain_text("Deleting instance web-1.")
    assert seen and seen[0].startswith("Delete instance web-1?"), seen
    expect(row).to_have_count(0, timeout=DEADLINE_MS)
    assert Instance.objects.get(name="web-1").vm_state == "deleted"
    print(f"instance life in the browser: {time.monotonic() - started:.1f} s")


def test_a_dismissed_confirm_changes_nothing_and_a_reader_has_no_buttons(world, login, cloud):
    admin = cloud.ctx(cloud.member)
    instance, _ = services.create_instance(admin, name="keep-me", flavor="m1.tiny", image="tiny")
    wait_for(
        lambda: Instance.objects.get(pk=instance.pk).status == "ACTIVE",
        lambda: f"keep-me to be ACTIVE\n{world.logs()}",
    )
    page = login("alice")
    page.goto(f"/dashboard/compute/instances/{instance.pk}/")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.locator("#instance-summary").get_by_role("button", name="Delete", exact=True).click()
    expect(page.locator("#instance-summary .instance-status")).to_have_text("ACTIVE")
    assert Instance.objects.get(pk=instance.pk).task_state == ""

    page.context.clear_cookies()
    page = login("rita")
    page.goto(f"/dashboard/compute/instances/{instance.pk}/")
    expect(page.locator("#instance-summary .instance-status")).to_have_text("ACTIVE")
    expect(page.locator("#instance-summary form[data-action]")).to_have_count(0)
    expect(page.get_by_role("tab", name="Console log")).to_have_count(0)


def test_admin_panels(world, login, cloud, readme_screenshot):
    member = cloud.ctx(cloud.member)
    instance, _ = services.create_instance(member, name="db-1", flavor="m1.small", image="tiny")
    wait_for(lambda: Instance.objects.get(pk=instance.pk).status == "ACTIVE", "db-1 to be ACTIVE")
    page = login("cloudadmin")
    sidebar = page.locator("aside")
    sidebar.get_by_role("link", name="Hypervisors", exact=True).click()
    host = Instance.objects.select_related("host").get(pk=instance.pk).host.name
    expect(page.locator(f'tr[data-name="{host}"] .badge')).to_have_text("up")
    expect(page.locator(f'tr[data-name="{host}"]')).to_contain_text("2048 / ")
    readme_screenshot(page, "admin-hypervisors")

    sidebar.get_by_role("link", name="All instances", exact=True).click()
    row = page.locator('tr[data-name="db-1"]')
    expect(row).to_contain_text("alpha")
    expect(row).to_contain_text(host)
    expect(row.locator(".instance-status")).to_have_text("ACTIVE")

    sidebar.get_by_role("link", name="Scheduler", exact=True).click()
    page.get_by_label("Flavor").select_option(label="m1.small")
    page.get_by_role("button", name="Explain").click()
    expect(page.locator('#explain-result tr[data-passed="true"]')).to_have_count(2)
    assert settings.ZENITH_PORTAL_URL.startswith("http://")
