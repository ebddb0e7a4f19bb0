"""Many simulated hosts in one agent process (``manage.py agent --simulate N``), end to end: each host
registers with its own capacity through the batched heartbeat, answers on its own queue, gets
scheduled onto, and runs what it was sent on its own libvirt test-driver connection, exactly as if
each were its own agent. Runs on the embedded defaults and on PostgreSQL + Redis.
"""

from __future__ import annotations

import uuid

import pytest
from celery import current_app

from compute import services
from compute.models import ComputeNode, Image, Instance
from identity.context import system_context
from tests.conftest import token_client
from workers import processes
from workers.models import Host

from .conftest import PLANE_KEY, Plane, clear_broker, shut_down
from .test_async_plane import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PREFIX = "msim-"
COUNT = 5
HOSTS = processes.simulated_host_names(COUNT, PREFIX)
IMAGE_BYTES = b"QFI\xfb" + b"\0" * 4092 + b"zenith simulated hosts" * 500
URL = "/api/v1/compute/instances/"
WAIT = 30.0


@pytest.fixture(scope="module")
def sim_plane(request, django_db_setup, django_db_blocker, live_server, tmp_path_factory):
    """A conductor and ONE agent process serving five simulated hosts, heartbeating every second."""
    clear_broker()
    workers = Plane(tmp_path_factory.mktemp("worker-logs"))
    workers.env.update(ZENITH_PORTAL_URL=live_server.url, ZENITH_HEARTBEAT_INTERVAL="1")
    request.node.stash[PLANE_KEY] = workers
    try:
        launched = [workers.launch_conductor(), workers.launch_simulated_agent(COUNT, PREFIX)]
        workers.start(*launched)
        yield workers
    finally:
        shut_down(workers, django_db_blocker)


def registered():
    return Host.objects.filter(name__in=HOSTS, compute__vcpus=16, compute__memory_mb=65536).count() == COUNT


def test_every_host_registers_and_answers_its_own_queue_from_one_process(sim_plane):
    wait_for(registered, lambda: f"{COUNT} hosts to register:\n{sim_plane.logs()}", timeout=WAIT)
    hosts = Host.objects.filter(name__in=HOSTS).select_related("compute")
    assert all(h.state == "up" and h.roles == ["compute", "storage"] for h in hosts)  # the default roles
    assert {h.uri for h in hosts} == {processes.simulated_host_uri()}
    agent = sim_plane.workers[f"simulated-{PREFIX}"]
    for host in HOSTS:
        result = current_app.send_task(
            "workers.agent.tasks.ping", kwargs={"nonce": str(uuid.uuid4())}, queue=f"compute.{host}"
        )
        answer = result.get(timeout=WAIT)
        result.forget()
        assert (answer["host"], answer["pid"]) == (host, agent.pid), answer
    # Liveness keeps coming for every host (the batch goes on after registration).
    first = {h.name: h.last_heartbeat for h in hosts}
    wait_for(
        lambda: all(h.last_heartbeat > first[h.name] for h in Host.objects.filter(name__in=HOSTS)),
        "a second heartbeat of every host",
        timeout=10,
    )


@pytest.fixture
def member(cloud, sim_plane, live_server, settings):
    settings.ZENITH_PORTAL_URL = live_server.url
    services.seed_flavors()
    wait_for(registered, f"{COUNT} hosts to register")
    admin = cloud.ctx(cloud.admin)
    image = services.create_image(admin, name="tiny", disk_format="qcow2", visibility="public")
    services.upload_image_data(admin, image, [IMAGE_BYTES])
    image.refresh_from_db()
    assert image.status == Image.ACTIVE
    return token_client(cloud.member, cloud.project)


def only(host: str) -> None:
    """Every simulated host but ``host`` disabled: the next launch lands there."""
    ctx = system_context()
    for other in Host.objects.filter(name__in=HOSTS):
        if other.name == host and not other.enabled:
            services.enable_host(ctx, other)
        elif other.name != host and other.enabled:
            services.disable_host(ctx, other, "kept out of this launch")


def test_a_launch_lands_active_on_each_host_on_its_own_hypervisor(member, sim_plane):
    placed = {}
    for host in HOSTS:
        only(host)
        response = member.post(
            URL, {"name": f"on-{host}", "flavor": "m1.tiny", "image": "tiny"}, format="json"
        )
        assert response.status_code == 202, response.content
        instance_id = response.json()["id"]

        def active(instance_id=instance_id):
            row = Instance.objects.select_related("host").get(pk=instance_id)
            return row if row.vm_state == Instance.ACTIVE and not row.task_state else None

        row = wait_for(active, lambda host=host: f"ACTIVE on {host}:\n{sim_plane.logs()}", timeout=WAIT)
        assert (row.host.name, row.power_state) == (host, "running")
        placed[host] = instance_id

    # Each host's power sync lists its own domain only: one libvirt connection (state) per host.
    def listed():
        nodes = {
            n.host.name: n for n in ComputeNode.objects.filter(host__name__in=HOSTS).select_related("host")
        }
        return all([d.get("instance_id") for d in nodes[h].domains] == [placed[h]] for h in HOSTS)

    wait_for(
        listed,
        lambda: (
            "each host to list its one domain: "
            f"{list(ComputeNode.objects.values_list('host__name', 'domains'))}"
        ),
        timeout=WAIT,
    )
    assert ComputeNode.objects.get(host__name=HOSTS[0]).memory_mb_used == 512


def test_a_host_signing_with_another_hosts_key_is_refused_while_that_host_registers(sim_plane):
    """One multi-host agent, host B's key file holding host A's key: B's batch entries (signed with
    A's key on behalf of B) are refused and logged by the conductor; A's own, in the same batches, count."""
    from django.conf import settings

    from workers import hostauth

    a, b = processes.simulated_host_names(2, "forge-")
    for name in (a, b):  # a var dir reused from an earlier run still holds the forged file; a new
        hostauth.key_path(settings.VAR_DIR, name).unlink(missing_ok=True)  # host would adopt it
    agent = sim_plane.launch_simulated_agent(2, "forge-")  # enrolls both first, each with its own key
    try:
        key_of_a = hostauth.read_key_file(hostauth.key_path(settings.VAR_DIR, a))
        hostauth.write_key_file(hostauth.key_path(settings.VAR_DIR, b), key_of_a)
        sim_plane.start(agent)
        wait_for(
            lambda: (
                Host.objects.filter(name=a).exists()
                and "refused workers.tasks.host_heartbeats (host=forge-2)" in sim_plane.logs()
            ),
            lambda: f"{a} to register and {b} to be refused:\n{sim_plane.logs()}",
            timeout=WAIT,
        )
        assert not Host.objects.filter(name=b).exists()
    finally:
        sim_plane.stop(agent.name)
