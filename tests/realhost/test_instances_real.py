"""Real guests through the whole stack: the API, a real conductor and a real agent on this
machine's libvirtd (QEMU, software emulation), next to a simulated host.

Two guests at once: launch -> ACTIVE -> the guest's marker on its console log (read through the
API) -> soft reboot -> the marker again -> stop -> SHUTOFF -> start -> a guest powered off from
outside Zenith shows SHUTOFF (libvirt's lifecycle events) -> delete -> no domain and no disk left.
"""

from __future__ import annotations

import io
from pathlib import Path

import libvirt
import pytest
from django.conf import settings
from django.core.management import call_command

from compute import services
from compute.models import ComputeNode, Instance
from identity import quotas
from tests.conftest import token_client
from tests.integration.conftest import PLANE_KEY, ROOT, Plane, clear_broker
from tests.integration.test_async_plane import wait_for
from tests.realhost.conftest import MARKER, URI, remove_instances
from workers.models import Host, Operation

pytestmark = [pytest.mark.realhost, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REAL = "real-1"
SIM = "sim-x"
SIM_URI = f"test://{(ROOT / 'workers' / 'agent' / 'simhost.xml').resolve()}"
API = "/api/v1/compute/instances/"
BOOT = 120.0  # deadline per step that waits for a guest to boot (measured 3-10 s)


@pytest.fixture(scope="module")
def real_plane(request, realhost, django_db_setup, live_server, tmp_path_factory):
    clear_broker()
    workers = Plane(tmp_path_factory.mktemp("worker-logs"))
    volumes = settings.VAR_DIR / "realhost" / "agent-volumes"
    workers.env.update(
        ZENITH_PORTAL_URL=live_server.url,
        ZENITH_HEARTBEAT_INTERVAL="2",
        ZENITH_LIBVIRT_POOL_PATH=str(settings.VAR_DIR / "realhost" / "agent-pool"),
        # The storage role's volume pool too under the state directory realhost.sh teardown cleans.
        ZENITH_STORAGE_BACKENDS=f'[{{"name": "local", "path": "{volumes}"}}]',
        ZENITH_STOP_TIMEOUT="30",
    )
    request.node.stash[PLANE_KEY] = workers
    try:
        launched = [
            workers.launch_conductor(),
            workers.launch_agent(REAL, URI),
            workers.launch_agent(SIM, SIM_URI),
        ]
        workers.start(*launched)
        yield workers
    finally:
        workers.stop()


@pytest.fixture
def client(cloud, real_plane, realhost, live_server, settings):
    settings.ZENITH_PORTAL_URL = live_server.url
    services.seed_flavors()
    call_command("register_guest_image", dir=str(Path(realhost.kernel).parent), stdout=io.StringIO())
    wait_for(
        lambda: (
            Host.objects.filter(name=REAL, compute__hypervisor_type__iexact="qemu").exists()
            and Host.objects.filter(name=SIM).exists()
        ),
        "the real and the simulated host to register",
    )
    quotas.set_limits(cloud.project, {"instances": -1, "cores": -1, "ram": -1})
    return token_client(cloud.member, cloud.project)


def get(client, instance_id) -> dict:
    response = client.get(f"{API}{instance_id}/")
    assert response.status_code == 200, response.content
    return response.json()


def wait_status(client, instance_id, status, plane: Plane, timeout: float = BOOT) -> dict:
    def reached():
        data = get(client, instance_id)
        if data["status"] == "ERROR":
            pytest.fail(f"instance went to ERROR: {data['fault']}\n{plane.logs()}")
        return data if data["status"] == status and not data["task_state"] else None

    return wait_for(reached, lambda: f"{status}: {get(client, instance_id)}\n{plane.logs()}", timeout)


def console(client, instance_id) -> str:
    response = client.get(f"{API}{instance_id}/console-log/?lines=500")
    assert response.status_code == 200, response.content
    assert response.json()["supported"] is True
    return response.json()["output"]


def wait_marker(client, instance_id, count: int) -> None:
    wait_for(
        lambda: console(client, instance_id).count(MARKER) >= count,
        lambda: f"{MARKER!r} x{count} on {instance_id}:\n{console(client, instance_id)}",
        BOOT,
    )


def act(client, instance_id, action, payload=None) -> None:
    response = client.post(f"{API}{instance_id}/{action}/", payload or {}, format="json")
    assert response.status_code == 202, response.content


@pytest.fixture
def launched():
    """Instance ids this test launched: their domains and disks are removed even if it fails."""
    ids: list[str] = []
    yield ids
    conn = libvirt.open(URI)
    try:
        remove_instances(conn, ids)
    finally:
        conn.close()


def test_two_real_guests_through_the_api(client, real_plane, launched):
    ids = launched
    for n in range(2):
        response = client.post(
            API, {"name": f"real-{n}", "flavor": "m1.tiny", "image": "zenith-guest"}, format="json"
        )
        assert response.status_code == 202, response.content
        ids.append(response.json()["id"])
    for instance_id in ids:
        wait_status(client, instance_id, "ACTIVE", real_plane)
        assert Instance.objects.get(pk=instance_id).host.name == REAL  # never the simulated host
    for instance_id in ids:
        wait_marker(client, instance_id, 1)

    first, second = ids
    act(client, first, "reboot", {"type": "soft"})
    wait_status(client, first, "ACTIVE", real_plane)
    wait_marker(client, first, 2)

    act(client, first, "stop")
    wait_status(client, first, "SHUTOFF", real_plane)
    act(client, first, "start")
    wait_status(client, first, "ACTIVE", real_plane)
    wait_marker(client, first, 3)

    # The second guest is powered off from outside Zenith (ACPI, as `virsh shutdown` does): the
    # agent's lifecycle event listener reports it, and Zenith shows it SHUTOFF.
    conn = libvirt.open(URI)
    try:
        conn.lookupByName(f"zenith-{second}").shutdown()
    finally:
        conn.close()
    wait_status(client, second, "SHUTOFF", real_plane, timeout=60)

    disks = {}
    for instance_id in ids:
        disks[instance_id] = f"zenith-{instance_id}-disk"
        assert client.delete(f"{API}{instance_id}/").status_code == 202
    for instance_id in ids:
        wait_for(lambda i=instance_id: Instance.objects.get(pk=i).vm_state == "deleted", "delete", BOOT)
    conn = libvirt.open(URI)
    try:
        names = {dom.name() for dom in conn.listAllDomains(0)}
        volumes = {
            vol for pool in conn.listAllStoragePools(0) if pool.isActive() for vol in pool.listVolumes()
        }
    finally:
        conn.close()
    for instance_id in ids:
        assert f"zenith-{instance_id}" not in names
        assert disks[instance_id] not in volumes
    assert ComputeNode.objects.get(host__name=REAL).memory_mb_used == 0


def test_a_real_guest_boots_from_a_volume_through_the_api(client, real_plane, launched, cloud):
    """Boot from a new volume made from the guest's image on real-1's storage pool: the guest boots
    with it as vda (its console says so); deleting the instance deletes the volume
    (delete_on_termination) and leaves nothing in the pool."""
    from storage.models import Volume, VolumeType

    VolumeType.objects.get_or_create(name="default", defaults={"backend": "local", "is_default": True})
    quotas.set_limits(cloud.project, {"volumes": -1, "gigabytes": -1})
    # The simulated host's pool would be as good a place for the volume: keep it out of this one.
    Host.objects.filter(name=SIM).update(enabled=False)
    try:
        body = {
            "name": "real-bfv",
            "flavor": "m1.tiny",
            "image": "zenith-guest",
            "boot_from_volume": {"size": 1, "delete_on_termination": True},
        }
        response = client.post(API, body, format="json")
        assert response.status_code == 202, response.content
        instance_id = response.json()["id"]
        launched.append(instance_id)
        data = wait_status(client, instance_id, "ACTIVE", real_plane, timeout=240)
        assert Instance.objects.get(pk=instance_id).host.name == REAL
        assert [v["device"] for v in data["volumes"]] == ["/dev/vda"]
        volume = Volume.objects.get(pk=data["volumes"][0]["id"])
        assert volume.display_status == "in-use" and volume.pool.host.name == REAL
        wait_marker(client, instance_id, 1)
        assert "ZENITH DISK vda 1073741824" in console(client, instance_id)
        response = client.delete(f"{API}{instance_id}/")
        assert response.status_code == 202, response.content
        wait_for(
            lambda: Volume.objects.get(pk=volume.pk).status == "deleted",
            lambda: (
                f"root volume deleted: {Volume.objects.get(pk=volume.pk).display_status}\n{real_plane.logs()}"
            ),
            BOOT,
        )
        assert not Path(volume.connection["path"] if volume.connection else "/nonexistent").exists()
    finally:
        Host.objects.filter(name=SIM).update(enabled=True)


def test_a_snapshot_of_a_running_guest_carries_what_it_wrote_to_a_copy_and_a_rebuild_clears_it(
    client, real_plane, launched, cloud, realhost
):
    """A running guest writes a marker to its root disk (zenith.rootmark on its command line); its
    snapshot (paused for the copy, running after, never rebooted) is an active qcow2 image of the
    project; a copy booted from it, with no mark on its command line, reads the marker back; rebuilt
    from the plain guest image, the same instance boots on a new, empty root disk."""
    from compute.models import Image

    mark = f"snap-{cloud.project.pk.hex[:8]}"
    admin = cloud.ctx(cloud.admin)
    guest = Image.objects.get(name="zenith-guest", status=Image.ACTIVE)
    plain = guest.properties["os_command_line"]
    marking = services.create_image(
        admin,
        name="guest-marking",
        disk_format="qcow2",
        visibility="public",
        min_disk=1,
        properties={**guest.properties, "os_command_line": f"{plain} zenith.rootmark={mark}"},
    )
    with open(realhost.root_disk, "rb") as fh:
        services.upload_image_data(admin, marking, [fh.read()])
    body = {"name": "snap-src", "flavor": "m1.tiny", "image": "guest-marking"}
    response = client.post(API, body, format="json")
    assert response.status_code == 202, response.content
    source = response.json()["id"]
    launched.append(source)
    wait_status(client, source, "ACTIVE", real_plane)
    # Booted to the end (the guest prints READY 0.2 s after its disk reporter starts): a snapshot
    # paused in between would leave READY unprinted when the no-reboot count below is read.
    wait_for(
        lambda: all(s in console(client, source) for s in (f"ZENITH DISK WROTE vda {mark}", MARKER)),
        lambda: f"the marker written on {source}:\n{console(client, source)}",
        BOOT,
    )

    response = client.post(f"{API}{source}/snapshot/", {"name": "snap-of-src"}, format="json")
    assert response.status_code == 202, response.content
    answer = response.json()
    wait_for(
        lambda: Operation.objects.get(pk=answer["operation"]["id"]).state not in Operation.UNFINISHED,
        lambda: f"the snapshot to finish\n{real_plane.logs()}",
        BOOT,
    )
    op = Operation.objects.get(pk=answer["operation"]["id"])
    assert op.state == "succeeded", op.message
    assert "paused meanwhile" in op.message
    image = Image.objects.get(pk=answer["id"])
    assert image.status == Image.ACTIVE and image.project_id == cloud.project.pk
    assert "zenith_snapshot_source" not in image.properties  # a real disk's bytes, not a stand-in
    after = wait_status(client, source, "ACTIVE", real_plane)
    assert after["power_state"] == "running"
    assert console(client, source).count(MARKER) == 1  # paused and resumed, not rebooted

    # The copy boots without the mark on its command line: the marker it reads is the disk's.
    services.update_image(
        cloud.ctx(cloud.member), image, properties={**image.properties, "os_command_line": plain}
    )
    response = client.post(
        API, {"name": "snap-copy", "flavor": "m1.tiny", "image": "snap-of-src"}, format="json"
    )
    assert response.status_code == 202, response.content
    copy = response.json()["id"]
    launched.append(copy)
    wait_status(client, copy, "ACTIVE", real_plane)
    assert Instance.objects.get(pk=copy).host.name == REAL
    wait_for(
        lambda: f"ZENITH DISK DATA vda {mark}" in console(client, copy),
        lambda: f"the marker read on {copy}:\n{console(client, copy)}",
        BOOT,
    )

    # Rebuilt from the plain guest image: same instance and host, a new root disk (the marker is gone).
    response = client.post(f"{API}{copy}/rebuild/", {"image": "zenith-guest"}, format="json")
    assert response.status_code == 202, response.content
    rebuilt = wait_status(client, copy, "ACTIVE", real_plane)
    assert (rebuilt["id"], rebuilt["image"]["id"]) == (copy, str(guest.pk))
    assert Instance.objects.get(pk=copy).host.name == REAL
    wait_for(
        lambda: "ZENITH DISK EMPTY vda" in console(client, copy),
        lambda: f"the rebuilt root disk to be empty on {copy}:\n{console(client, copy)}",
        BOOT,
    )
