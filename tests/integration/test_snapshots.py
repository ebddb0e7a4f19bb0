"""Instance snapshots end to end through the API, a real conductor and a real host agent (libvirt's
test driver): the agent flattens the simulated disk (its cached base image, as a simulated host has
no disk bytes) with qemu-img and PUTs it to the portal (pytest-django's live server) over the signed
URL; the image ends active with the portal's checksum and boots a new instance; a disk qemu-img
cannot read ends the image killed with qemu-img's reason and the instance as it was. Runs on the
embedded defaults and on PostgreSQL + Redis."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest
from django.core.files.storage import default_storage

from compute import services
from compute.models import Image, Instance
from identity.models import ResourceAction
from tests.conftest import token_client
from workers.models import Host, Operation

from .conftest import Plane, agent_plane_for
from .test_async_plane import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HOST = "snap-host"
URL = "/api/v1/compute/instances/"
WAIT = 30.0
BASE = services.demo_qcow2(virtual_size=64 << 20)  # a real (empty) qcow2 disk
NOT_QCOW2 = b"QFI\xfb" + b"\0" * 4092 + b"not a qcow2 header" * 100


@pytest.fixture(scope="module")
def snapshot_plane(request, django_db_setup, django_db_blocker, live_server, tmp_path_factory):
    with agent_plane_for(request, django_db_blocker, live_server, tmp_path_factory, HOST) as workers:
        yield workers


@pytest.fixture
def world(cloud, snapshot_plane, live_server, settings):
    settings.ZENITH_PORTAL_URL = live_server.url
    services.seed_flavors()
    wait_for(lambda: Host.objects.filter(name=HOST).exists(), f"{HOST} to register")
    admin = cloud.ctx(cloud.admin)
    for name, data in (("base", BASE), ("broken", NOT_QCOW2)):
        image = services.create_image(admin, name=name, disk_format="qcow2", visibility="public")
        services.upload_image_data(admin, image, [data])
    return token_client(cloud.member, cloud.project)


def get(client, instance_id) -> dict:
    response = client.get(f"{URL}{instance_id}/")
    assert response.status_code == 200, response.content
    return response.json()


def settled(client, instance_id, status: str, plane: Plane) -> dict:
    def reached():
        data = get(client, instance_id)
        return data if data["status"] == status and not data["task_state"] else None

    return wait_for(reached, lambda: f"{status}: now {get(client, instance_id)}\n{plane.logs()}", WAIT)


def boot(client, name: str, image: str, plane: Plane) -> dict:
    response = client.post(URL, {"name": name, "flavor": "m1.tiny", "image": image}, format="json")
    assert response.status_code == 202, response.content
    return settled(client, response.json()["id"], "ACTIVE", plane)


def snapshot(client, instance_id, name: str) -> dict:
    response = client.post(f"{URL}{instance_id}/snapshot/", {"name": name}, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def image_done(answer: dict, plane: Plane) -> Image:
    """The snapshot's image once its operation settled (the bytes arrive before the host's answer)."""

    def done():
        op = Operation.objects.get(pk=answer["operation"]["id"])
        return op.state not in Operation.UNFINISHED

    wait_for(done, lambda: f"snapshot {answer['id']} to settle\n{plane.logs()}", WAIT)
    return Image.objects.get(pk=answer["id"])


def test_snapshot_of_a_running_instance_boots_a_copy(world, snapshot_plane, tmp_path):
    client = world
    vm = boot(client, "snap-src", "base", snapshot_plane)
    answer = snapshot(client, vm["id"], "snap-1")
    assert answer["status"] == "queued" and answer["properties"]["image_type"] == "snapshot"
    image = image_done(answer, snapshot_plane)
    assert image.status == Image.ACTIVE, snapshot_plane.logs()
    after = settled(client, vm["id"], "ACTIVE", snapshot_plane)
    assert after["power_state"] == "running" and after["fault"] is None
    op = Operation.objects.get(pk=answer["operation"]["id"])
    assert op.state == "succeeded" and "bytes uploaded" in op.message
    # What the portal stored is what the agent sent: a standalone qcow2 of the base's virtual size.
    with default_storage.open(image.file.name, "rb") as fh:
        data = fh.read()
    assert (image.size, image.checksum) == (len(data), hashlib.sha256(data).hexdigest())
    copy = tmp_path / "snap.qcow2"
    copy.write_bytes(data)
    info = json.loads(subprocess.check_output(["qemu-img", "info", "--output=json", str(copy)]))
    assert info["format"] == "qcow2" and info["virtual-size"] == 64 << 20 and "backing-filename" not in info
    assert "base image" in image.properties["zenith_snapshot_source"]  # a simulated host says what it sent
    assert image.properties["instance_uuid"] == vm["id"]
    assert ResourceAction.objects.filter(resource_id=vm["id"], action="snapshot", result="success").exists()
    # The snapshot is an image like any other: a new instance boots from it.
    copy_vm = boot(client, "snap-copy", "snap-1", snapshot_plane)
    assert copy_vm["image"]["id"] == str(image.pk)


def test_snapshot_of_a_stopped_instance_keeps_it_stopped(world, snapshot_plane):
    client = world
    vm = boot(client, "snap-stopped", "base", snapshot_plane)
    assert client.post(f"{URL}{vm['id']}/stop/").status_code == 202
    settled(client, vm["id"], "SHUTOFF", snapshot_plane)
    image = image_done(snapshot(client, vm["id"], "snap-2"), snapshot_plane)
    assert image.status == Image.ACTIVE, snapshot_plane.logs()
    assert settled(client, vm["id"], "SHUTOFF", snapshot_plane)["power_state"] == "shutdown"


def test_a_disk_qemu_img_cannot_read_kills_the_image_and_leaves_the_instance(world, snapshot_plane):
    client = world
    vm = boot(client, "snap-broken", "broken", snapshot_plane)
    answer = snapshot(client, vm["id"], "snap-3")
    image = image_done(answer, snapshot_plane)
    assert image.status == Image.KILLED
    after = settled(client, vm["id"], "ACTIVE", snapshot_plane)
    assert after["power_state"] == "running" and "qemu-img convert" in after["fault"]["message"]
    reason = ResourceAction.objects.get(resource_id=image.pk, action="upload", result="error").message
    assert "qemu-img convert" in reason
    assert Operation.objects.get(pk=answer["operation"]["id"]).state == "failed"
    assert Instance.objects.get(pk=vm["id"]).vm_state == Instance.ACTIVE


def test_rebuild_from_the_snapshot_and_from_an_image_the_host_cannot_fetch(world, snapshot_plane, cloud):
    client = world
    vm = boot(client, "rebuilt", "base", snapshot_plane)
    image = image_done(snapshot(client, vm["id"], "rebuild-from"), snapshot_plane)
    assert image.status == Image.ACTIVE
    response = client.post(f"{URL}{vm['id']}/rebuild/", {"image": "rebuild-from"}, format="json")
    assert response.status_code == 202 and response.json()["status"] == "REBUILD", response.content
    after = settled(client, vm["id"], "ACTIVE", snapshot_plane)
    assert (after["id"], after["image"]["id"], after["power_state"]) == (vm["id"], str(image.pk), "running")
    assert Instance.objects.get(pk=vm["id"]).host.name == HOST

    # An image whose bytes the portal lost: the host cannot fetch it, the old guest stays as it was.
    admin = cloud.ctx(cloud.admin)
    lost = services.create_image(admin, name="lost", disk_format="qcow2", visibility="public")
    services.upload_image_data(admin, lost, [BASE + b"\0" * 512])
    lost.refresh_from_db()
    default_storage.delete(lost.file.name)
    response = client.post(f"{URL}{vm['id']}/rebuild/", {"image": "lost"}, format="json")
    assert response.status_code == 202, response.content
    kept = settled(client, vm["id"], "ACTIVE", snapshot_plane)
    assert kept["image"]["id"] == str(image.pk) and kept["power_state"] == "running"
    assert "ImageFetchError" in kept["fault"]["message"]
