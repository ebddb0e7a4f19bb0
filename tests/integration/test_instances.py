"""Instances end to end through the API, a real conductor and real host agents (libvirt's test
driver): launch -> ACTIVE with progress, every action, console log, delete; spread across hosts,
rescheduling away from a broken host, and "no valid host" with reasons.

The agents download the image from the portal (pytest-django's live server) with a signed URL, as in
production. Runs on the embedded defaults and on PostgreSQL + Redis.
"""

from __future__ import annotations

import pytest
from django.conf import settings

from compute import services
from compute.models import ComputeNode, Image, Instance
from identity import quotas
from identity.context import system_context
from tests.conftest import token_client
from workers import processes
from workers.models import Host, Operation

from .conftest import PLANE_KEY, Plane, clear_broker, shut_down
from .test_async_plane import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SIM_URI = processes.simulated_host_uri()
HOSTS = ("host-a", "host-b")
BROKEN = "aaa-broken"  # sorts first: the scheduler tries it first when free capacities tie
IMAGE_BYTES = b"QFI\xfb" + b"\0" * 4092 + b"zenith integration image" * 2000
URL = "/api/v1/compute/instances/"
WAIT = 30.0


@pytest.fixture(scope="module")
def compute_plane(request, django_db_setup, django_db_blocker, live_server, tmp_path_factory):
    """A conductor, two healthy agents and one whose image cache is broken (its spawns fail)."""
    clear_broker()
    # A regular file where the broken host's cache directory should be: every fetch fails there.
    broken_dir = settings.VAR_DIR / "agent" / BROKEN
    broken_dir.mkdir(parents=True, exist_ok=True)
    (broken_dir / "images").unlink(missing_ok=True)
    (broken_dir / "images").write_text("not a directory")
    workers = Plane(tmp_path_factory.mktemp("worker-logs"))
    # Power sync off: what an instance shows after an action is what that action's callback set, not
    # what a later sync of the agent's domains corrected it to.
    workers.env.update(
        ZENITH_PORTAL_URL=live_server.url, ZENITH_HEARTBEAT_INTERVAL="1", ZENITH_POWER_SYNC="0"
    )
    request.node.stash[PLANE_KEY] = workers
    try:
        launched = [workers.launch_conductor()] + [workers.launch_agent(h, SIM_URI) for h in (*HOSTS, BROKEN)]
        workers.start(*launched)
        yield workers
    finally:
        shut_down(workers, django_db_blocker)
        (broken_dir / "images").unlink(missing_ok=True)


@pytest.fixture
def world(cloud, compute_plane, live_server, settings):
    settings.ZENITH_PORTAL_URL = live_server.url
    services.seed_flavors()
    wait_for(lambda: Host.objects.filter(name__in=(*HOSTS, BROKEN)).count() == 3, "3 hosts to register")
    admin = cloud.ctx(cloud.admin)
    image = services.create_image(admin, name="tiny", disk_format="qcow2", visibility="public")
    services.upload_image_data(
        admin, image, [IMAGE_BYTES[i : i + 65536] for i in range(0, len(IMAGE_BYTES), 65536)]
    )
    image.refresh_from_db()
    assert image.status == Image.ACTIVE
    return token_client(cloud.member, cloud.project)


def disable(name: str) -> None:
    services.disable_host(system_context(), Host.objects.get(name=name), "kept out of this test")


def admin_in_project(cloud):
    """A cloud admin's client scoped to the members' project (admins see every host's reason)."""
    from tests.factories import grant

    if not cloud.admin.role_assignments.filter(project=cloud.project).exists():
        grant(cloud.admin, cloud.project, "admin")
    return token_client(cloud.admin, cloud.project)


def get(client, instance_id) -> dict:
    response = client.get(f"{URL}{instance_id}/")
    assert response.status_code == 200, response.content
    return response.json()


def wait_status(client, instance_id, status: str, plane: Plane, timeout: float = WAIT) -> dict:
    def reached():
        data = get(client, instance_id)
        return data if data["status"] == status and not data["task_state"] else None

    return wait_for(reached, lambda: f"{status}: now {get(client, instance_id)}\n{plane.logs()}", timeout)


def act(client, instance_id, action, payload=None) -> dict:
    response = client.post(f"{URL}{instance_id}/{action}/", payload or {}, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def test_launch_every_action_and_delete(world, compute_plane):
    disable(BROKEN)
    client = world
    response = client.post(URL, {"name": "it-1", "flavor": "m1.tiny", "image": "tiny"}, format="json")
    assert response.status_code == 202, response.content
    instance_id = response.json()["id"]
    active = wait_status(client, instance_id, "ACTIVE", compute_plane)
    assert active["power_state"] == "running" and active["launched_at"]
    op = Operation.objects.get(pk=active["operation"]["id"])
    assert (op.state, op.progress) == ("succeeded", 100)
    instance = Instance.objects.select_related("host").get(pk=instance_id)
    assert instance.host.name in HOSTS and instance.host.compute.memory_mb_used == 512

    log = client.get(f"{URL}{instance_id}/console-log/").json()
    assert log["supported"] is False and "no console output" in log["message"]

    for action, payload, status in [
        ("reboot", {"type": "soft"}, "ACTIVE"),
        ("reboot", {"type": "hard"}, "ACTIVE"),
        ("pause", None, "PAUSED"),
        ("unpause", None, "ACTIVE"),
        ("suspend", None, "SUSPENDED"),
        ("resume", None, "ACTIVE"),
        ("stop", None, "SHUTOFF"),
        ("start", None, "ACTIVE"),
    ]:
        act(client, instance_id, action, payload)
        data = wait_status(client, instance_id, status, compute_plane)
        assert Operation.objects.get(pk=data["operation"]["id"]).state == "succeeded", action
    actions = [row["action"] for row in client.get(f"{URL}{instance_id}/actions/").json()]
    assert actions == [
        "start",
        "stop",
        "resume",
        "suspend",
        "unpause",
        "pause",
        "reboot_hard",
        "reboot",
        "create",
    ]

    response = client.delete(f"{URL}{instance_id}/")
    assert response.status_code == 202
    wait_for(
        lambda: Instance.objects.get(pk=instance_id).vm_state == "deleted",
        lambda: f"delete\n{compute_plane.logs()}",
        WAIT,
    )
    assert client.get(f"{URL}{instance_id}/").status_code == 404
    assert ComputeNode.objects.get(pk=instance.host_id).memory_mb_used == 0
    # The host's next report lists no domain for it any more.
    wait_for(
        lambda: (
            all(d["instance_id"] != instance_id for d in ComputeNode.objects.get(pk=instance.host_id).domains)
            and ComputeNode.objects.get(pk=instance.host_id).domains_reported_at is not None
        ),
        "the domain to be gone from the host",
    )


def test_spread_over_both_hosts(world, compute_plane):
    """One launch after another, each placed on the host with the most free RAM. (Launches scheduled
    at the same moment may see the same "most free" host; the claim keeps capacity exact, not the
    spread: Nova's scheduler behaves the same.)"""
    disable(BROKEN)
    ids = []
    for n in range(4):
        response = world.post(URL, {"name": f"s-{n}", "flavor": "m1.small", "image": "tiny"}, format="json")
        assert response.status_code == 202, response.content
        ids.append(response.json()["id"])
        wait_status(world, ids[-1], "ACTIVE", compute_plane)
    placed = sorted(Instance.objects.filter(pk__in=ids).values_list("host__name", flat=True))
    assert placed == ["host-a", "host-a", "host-b", "host-b"]


def test_a_failed_spawn_is_rescheduled_on_another_host(world, compute_plane):
    response = world.post(URL, {"name": "resched", "flavor": "m1.tiny", "image": "tiny"}, format="json")
    instance_id = response.json()["id"]
    wait_status(world, instance_id, "ACTIVE", compute_plane)
    instance = Instance.objects.select_related("host").get(pk=instance_id)
    assert instance.attempted_hosts[0] == BROKEN and instance.host.name in HOSTS
    assert ComputeNode.objects.get(host__name=BROKEN).memory_mb_used == 0  # the failed claim was given back
    # The action log shows the failed attempt, with the broken host's own error.
    (create,) = [row for row in world.get(f"{URL}{instance_id}/actions/").json() if row["action"] == "create"]
    assert create["result"] == "success"
    assert f"{BROKEN}: " in create["message"] and "is unusable" in create["message"], create
    assert f"active on {instance.host.name}" in create["message"]


def test_a_fault_after_rescheduling_names_the_spawn_error(world, compute_plane, cloud):
    """The broken host fails the spawn and no other host is left: for an admin, the fault, the
    operation and the action log all carry the broken host's own error, not only "already tried";
    the member who launched it reads the summary, without host names (issue 17)."""
    for host in HOSTS:
        disable(host)
    response = world.post(URL, {"name": "no-more", "flavor": "m1.tiny", "image": "tiny"}, format="json")
    instance_id = response.json()["id"]
    member_view = wait_status(world, instance_id, "ERROR", compute_plane)
    assert member_view["fault"]["message"].startswith("No valid host was found for flavor m1.tiny")
    assert BROKEN not in str(member_view["fault"])
    admin = admin_in_project(cloud)
    data = get(admin, instance_id)
    fault = data["fault"]
    assert fault["message"].startswith(f"Spawning failed on {BROKEN}: "), fault
    assert "is unusable" in fault["message"] and "No valid host was found" in fault["message"]
    assert fault["details"]["attempts"][0]["host"] == BROKEN
    assert "is unusable" in fault["details"]["attempts"][0]["error"]
    assert {v["host"] for v in fault["details"]["hosts"]} == {*HOSTS, BROKEN}
    (create,) = [row for row in admin.get(f"{URL}{instance_id}/actions/").json() if row["action"] == "create"]
    assert create["result"] == "error" and "is unusable" in create["message"], create
    assert "is unusable" in Operation.objects.get(pk=data["operation"]["id"]).message


def test_no_valid_host_ends_in_error_with_reasons(world, compute_plane, cloud):
    quotas.set_limits(cloud.project, {"ram": -1})
    services.create_flavor(cloud.ctx(cloud.admin), name="huge", vcpus=8, ram_mb=10**6, disk_gb=1)
    response = world.post(URL, {"name": "too-big", "flavor": "huge", "image": "tiny"}, format="json")
    data = wait_status(world, response.json()["id"], "ERROR", compute_plane)
    assert data["fault"]["code"] == "no_valid_host"
    assert data["fault"]["message"].startswith("No valid host was found for flavor huge")  # the member's
    data = get(admin_in_project(cloud), data["id"])  # an admin reads every host's reason
    for host in (*HOSTS, BROKEN):
        assert f"{host}: not enough RAM" in data["fault"]["message"]
