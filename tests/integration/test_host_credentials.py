"""Host credentials with real processes: an enrolled agent's signed messages run a launch to ACTIVE;
an agent nobody enrolled, and forged messages put on the real broker, change nothing.

Runs on the embedded defaults and on PostgreSQL + Redis (issue 16 item 2).
"""

from __future__ import annotations

import pytest
from celery import current_app

from compute import services
from compute.models import Image, Instance
from tests.conftest import token_client
from workers import hostauth, processes, tasknames
from workers.models import Host, Operation

from .conftest import PLANE_KEY, Plane, clear_broker, shut_down
from .test_async_plane import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SIM_URI = processes.simulated_host_uri()
HOST = "cred-a"
ROGUE = "rogue-1"  # an agent started with no enrollment (no key)
IMAGE_BYTES = b"QFI\xfb" + b"\0" * 4092 + b"zenith credentials image" * 500
URL = "/api/v1/compute/instances/"
GHOST = {"roles": ["compute"], "uri": "test:///default", "compute": {"vcpus": 100_000, "memory_mb": 10**7}}


@pytest.fixture(scope="module")
def cred_plane(request, django_db_setup, django_db_blocker, live_server, tmp_path_factory):
    clear_broker()
    workers = Plane(tmp_path_factory.mktemp("worker-logs"))
    workers.env.update(ZENITH_PORTAL_URL=live_server.url, ZENITH_HEARTBEAT_INTERVAL="1")
    request.node.stash[PLANE_KEY] = workers
    try:
        rogue = workers._launch(f"agent-{ROGUE}", processes.agent_argv(ROGUE, libvirt_uri=SIM_URI), "")
        workers.start(workers.launch_conductor(), workers.launch_agent(HOST, SIM_URI))
        yield workers, rogue
    finally:
        shut_down(workers, django_db_blocker)


def conductor_log_says(plane: Plane, text: str) -> None:
    wait_for(lambda: text in plane.log_of("conductor"), f"the conductor to log {text!r}\n{plane.logs()}", 20)


def test_an_enrolled_agent_launches_and_nothing_else_speaks_for_a_host(
    cloud, cred_plane, live_server, settings
):
    plane, rogue = cred_plane
    settings.ZENITH_PORTAL_URL = live_server.url
    services.seed_flavors()
    wait_for(lambda: Host.objects.filter(name=HOST).exists(), f"{HOST} to register\n{plane.logs()}")
    admin = cloud.ctx(cloud.admin)
    image = services.create_image(admin, name="tiny", disk_format="qcow2", visibility="public")
    services.upload_image_data(admin, image, [IMAGE_BYTES])
    image.refresh_from_db()
    assert image.status == Image.ACTIVE

    # The agent nobody enrolled: its heartbeats are refused, it never registers, and it says why.
    conductor_log_says(
        plane, f"refused {tasknames.HOST_HEARTBEAT} (host={ROGUE}): the message is not signed by a host"
    )
    assert f"host {ROGUE} cannot sign its messages" in rogue.log()
    assert not Host.objects.filter(name=ROGUE).exists()

    # A forged heartbeat straight onto the broker: no ghost host.
    current_app.send_task(
        tasknames.HOST_HEARTBEAT, kwargs={"host": "ghost-1", "info": GHOST}, queue="conductor"
    )
    conductor_log_says(plane, "refused workers.tasks.host_heartbeat (host=ghost-1)")
    assert not Host.objects.filter(name="ghost-1").exists()

    # A launch through the API reaches ACTIVE on the enrolled host: heartbeats, the spawn's answer
    # (Celery's link callback, published by the agent) are all signed and accepted.
    client = token_client(cloud.member, cloud.project)
    response = client.post(URL, {"name": "cred-1", "flavor": "m1.tiny", "image": "tiny"}, format="json")
    assert response.status_code == 202, response.content
    instance_id = response.json()["id"]

    def active():
        row = Instance.objects.filter(pk=instance_id, vm_state="active", task_state="").first()
        return row

    instance = wait_for(active, lambda: f"ACTIVE\n{plane.logs()}", 40)
    assert instance.host.name == HOST and instance.power_state == "running"
    op = Operation.objects.get(pk=instance.operation_id)
    assert (op.state, op.host) == ("succeeded", HOST)

    # A forged power event and a forged answer for that instance: unchanged.
    current_app.send_task(
        tasknames.POWER_EVENT,
        kwargs={"host": HOST, "instance_id": instance_id, "power_state": "shutdown", "event": "stopped"},
        queue="conductor",
    )
    conductor_log_says(plane, f"refused {tasknames.POWER_EVENT} (host={HOST}")
    other_key = hostauth.decode_key(hostauth.new_key())  # signed, but not with this host's key
    forged = {
        "operation_id": str(op.pk),
        "resource_type": "instance",
        "resource_id": instance_id,
        "step": "create",
    }
    result = {"ok": False, "error": "forged"}
    auth = hostauth.sign(other_key, HOST, tasknames.TRANSITION_DONE, [result], forged)
    current_app.send_task(
        tasknames.TRANSITION_DONE, args=[result], kwargs={**forged, "auth": auth}, queue="conductor"
    )
    conductor_log_says(plane, f"refused {tasknames.TRANSITION_DONE} (operation={op.pk}): bad signature")
    instance.refresh_from_db()
    assert (instance.vm_state, instance.power_state, instance.fault) == ("active", "running", None)
    # The enrolled host's own messages were never refused.
    log = plane.log_of("conductor")
    assert f"refused {tasknames.HOST_HEARTBEAT} (host={HOST})" not in log
    assert log.count(f"refused {tasknames.TRANSITION_DONE}") == 1


def test_a_crashed_host_task_s_errback_is_signed_by_the_agent_and_settles(cloud, cred_plane):
    """The errback (``host_task_failed``) is published by the agent's Celery, not by Zenith's code:
    the signing hook covers it too, and it settles the operation sent to that host."""
    from datetime import timedelta

    from django.utils import timezone

    from workers import dispatch
    from workers.tasks import host_callbacks

    plane, _rogue = cred_plane
    op = Operation.objects.create(
        kind="test.crash",
        state=Operation.RUNNING,
        task_name=tasknames.AGENT_CONSOLE_LOG,
        queue=f"compute.{HOST}",
        deadline=timezone.now() + timedelta(minutes=5),
    )
    # console_log without its arguments: the task raises TypeError on the host.
    dispatch.send_to_host(
        tasknames.AGENT_CONSOLE_LOG, HOST, kwargs={}, **host_callbacks(str(op.pk), host=HOST)
    )

    def failed():
        row = Operation.objects.get(pk=op.pk)
        return row if row.state == Operation.FAILED else None

    row = wait_for(failed, lambda: f"the crash to be settled\n{plane.logs()}", 30)
    assert row.message.startswith("The host task crashed"), row.message
    assert f"refused {tasknames.HOST_TASK_FAILED}" not in plane.log_of("conductor")
