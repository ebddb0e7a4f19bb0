"""Volumes end to end through the API, a real conductor and a real agent carrying the compute and
storage roles on libvirt's test driver: its heartbeat reports its pool; create -> available ->
attach to a running instance -> in-use (device reported) -> extend in-use -> detach -> snapshot ->
clone -> delete, and an instance's delete detaching its volumes. Runs on the embedded defaults and
on PostgreSQL + Redis."""

from __future__ import annotations

import pytest
from django.conf import settings

from compute import services as compute_services
from compute.models import Image
from storage.models import StoragePool, Volume, VolumeType
from tests.conftest import token_client
from workers import processes
from workers.models import Host, Operation

from .conftest import Plane, storage_plane_for
from .test_async_plane import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SIM_URI = processes.simulated_host_uri()
HOST = "store-a"
IMAGE_BYTES = b"QFI\xfb" + b"\0" * 4092 + b"zenith volume image" * 2000
VOLUMES = "/api/v1/storage/volumes/"
INSTANCES = "/api/v1/compute/instances/"
WAIT = 30.0


@pytest.fixture(scope="module")
def storage_plane(request, django_db_setup, django_db_blocker, live_server, tmp_path_factory):
    with storage_plane_for(request, django_db_blocker, live_server, tmp_path_factory, HOST) as workers:
        yield workers


@pytest.fixture
def world(cloud, storage_plane, live_server, settings):
    settings.ZENITH_PORTAL_URL = live_server.url
    compute_services.seed_flavors()
    VolumeType.objects.get_or_create(name="default", defaults={"backend": "local", "is_default": True})
    wait_for(lambda: StoragePool.objects.filter(host__name=HOST).exists(), "the storage host's pool report")
    admin = cloud.ctx(cloud.admin)
    image = compute_services.create_image(admin, name="tiny", disk_format="qcow2", visibility="public")
    compute_services.upload_image_data(
        admin, image, [IMAGE_BYTES[i : i + 65536] for i in range(0, len(IMAGE_BYTES), 65536)]
    )
    image.refresh_from_db()
    assert image.status == Image.ACTIVE
    return token_client(cloud.member, cloud.project)


def volume_status(client, volume_id, status: str, plane: Plane) -> dict:
    def reached():
        data = client.get(f"{VOLUMES}{volume_id}/").json()
        return data if data["status"] == status else None

    return wait_for(
        reached, lambda: f"{status}: now {client.get(f'{VOLUMES}{volume_id}/').json()}\n{plane.logs()}", WAIT
    )


def launch(client, plane: Plane, name: str) -> str:
    response = client.post(INSTANCES, {"name": name, "flavor": "m1.tiny", "image": "tiny"}, format="json")
    assert response.status_code == 202, response.content
    instance_id = response.json()["id"]

    def active():
        data = client.get(f"{INSTANCES}{instance_id}/").json()
        return data["status"] == "ACTIVE" and not data["task_state"]

    wait_for(active, lambda: f"instance ACTIVE\n{plane.logs()}", WAIT)
    return instance_id


def test_pool_is_reported_with_capacity(world, storage_plane):
    pool = StoragePool.objects.select_related("host").get(host__name=HOST)
    assert pool.name == "local" and pool.type == "dir" and pool.simulated
    assert pool.capacity_bytes > 0 and HOST in pool.reaches
    assert "storage" in Host.objects.get(name=HOST).roles


def test_volume_lifecycle_on_a_simulated_host(world, storage_plane):
    client = world
    created = client.post(VOLUMES, {"name": "data", "size": 1}, format="json")
    assert created.status_code == 202, created.content
    volume_id = created.json()["id"]
    data = volume_status(client, volume_id, "available", storage_plane)
    assert Operation.objects.get(pk=data["operation"]["id"]).state == "succeeded"
    assert Volume.objects.get(pk=volume_id).connection["path"]

    instance_id = launch(client, storage_plane, "vm-1")
    attachments = f"{INSTANCES}{instance_id}/volume-attachments/"
    response = client.post(attachments, {"volume": volume_id}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["device"] == "/dev/vdb"
    data = volume_status(client, volume_id, "in-use", storage_plane)
    assert data["attachments"][0]["instance"] == instance_id and data["attachments"][0]["attached_at"]
    detail = client.get(f"{INSTANCES}{instance_id}/").json()
    assert detail["volumes"][0]["device"] == "/dev/vdb" and detail["volumes"][0]["attached"]

    extended = client.post(f"{VOLUMES}{volume_id}/extend/", {"new_size": 2}, format="json")
    assert extended.status_code == 202, extended.content
    data = volume_status(client, volume_id, "in-use", storage_plane)
    assert data["size"] == 2, data
    assert Operation.objects.get(pk=data["operation"]["id"]).state == "succeeded"

    assert client.delete(f"{attachments}{volume_id}/").status_code == 202
    data = volume_status(client, volume_id, "available", storage_plane)
    assert data["attachments"] == []

    snap = client.post("/api/v1/storage/snapshots/", {"name": "s1", "volume": volume_id}, format="json")
    assert snap.status_code == 202, snap.content
    snap_id = snap.json()["id"]
    wait_for(
        lambda: client.get(f"/api/v1/storage/snapshots/{snap_id}/").json()["status"] == "available",
        lambda: f"snapshot available\n{storage_plane.logs()}",
        WAIT,
    )
    clone = client.post(VOLUMES, {"name": "from-snap", "snapshot": snap_id}, format="json")
    assert clone.status_code == 202, clone.content
    volume_status(client, clone.json()["id"], "available", storage_plane)
    refused = client.delete(f"{VOLUMES}{volume_id}/")
    assert refused.status_code == 409 and "snapshot" in refused.json()["error"]["message"]
    assert client.delete(f"/api/v1/storage/snapshots/{snap_id}/").status_code == 202
    wait_for(
        lambda: client.get(f"/api/v1/storage/snapshots/{snap_id}/").status_code == 404,
        lambda: f"snapshot deleted\n{storage_plane.logs()}",
        WAIT,
    )
    for vid in (volume_id, clone.json()["id"]):
        assert client.delete(f"{VOLUMES}{vid}/").status_code == 202
        wait_for(
            lambda vid=vid: Volume.objects.get(pk=vid).status == "deleted",
            lambda: f"volume deleted\n{storage_plane.logs()}",
            WAIT,
        )
    pool = StoragePool.objects.get(host__name=HOST)
    assert pool.allocated_gb == 0


def test_deleting_an_instance_detaches_and_deletes_on_termination(world, storage_plane):
    client = world
    ids = []
    for name in ("keep", "doomed"):
        response = client.post(VOLUMES, {"name": name, "size": 1}, format="json")
        ids.append(response.json()["id"])
    for vid in ids:
        volume_status(client, vid, "available", storage_plane)
    instance_id = launch(client, storage_plane, "vm-2")
    url = f"{INSTANCES}{instance_id}/volume-attachments/"
    assert client.post(url, {"volume": ids[0]}, format="json").status_code == 202
    volume_status(client, ids[0], "in-use", storage_plane)
    body = {"volume": ids[1], "delete_on_termination": True}
    assert client.post(url, body, format="json").status_code == 202
    volume_status(client, ids[1], "in-use", storage_plane)
    assert client.delete(f"{INSTANCES}{instance_id}/").status_code == 202
    volume_status(client, ids[0], "available", storage_plane)
    wait_for(
        lambda: Volume.objects.get(pk=ids[1]).status == "deleted",
        lambda: f"doomed volume deleted\n{storage_plane.logs()}",
        WAIT,
    )
    assert settings.ZENITH_PORTAL_URL


def _active(client, plane: Plane, instance_id: str) -> dict:
    def active():
        data = client.get(f"{INSTANCES}{instance_id}/").json()
        return data if data["status"] == "ACTIVE" and not data["task_state"] else None

    return wait_for(
        active,
        lambda: f"instance ACTIVE: {client.get(f'{INSTANCES}{instance_id}/').json()}\n{plane.logs()}",
        WAIT,
    )


def test_boot_from_a_new_volume_and_from_an_existing_one(world, storage_plane):
    """A launch from a new volume made from the image waits for it, spawns with the volume as vda
    and leaves it in-use; its delete deletes the volume (delete_on_termination). A launch from an
    existing bootable volume leaves it available again after the delete."""
    client = world
    body = {
        "name": "bfv-1",
        "flavor": "m1.tiny",
        "image": "tiny",
        "boot_from_volume": {"size": 1, "delete_on_termination": True},
    }
    response = client.post(INSTANCES, body, format="json")
    assert response.status_code == 202, response.content
    instance_id = response.json()["id"]
    detail = _active(client, storage_plane, instance_id)
    assert [v["device"] for v in detail["volumes"]] == ["/dev/vda"], detail
    root = Volume.objects.get(pk=detail["volumes"][0]["id"])
    assert (root.display_status, root.source, root.bootable) == ("in-use", "image", True)
    assert client.delete(f"{INSTANCES}{instance_id}/").status_code == 202
    wait_for(
        lambda: Volume.objects.get(pk=root.pk).status == "deleted",
        lambda: f"root volume deleted\n{storage_plane.logs()}",
        WAIT,
    )

    made = client.post(VOLUMES, {"name": "bootable", "image": "tiny"}, format="json")
    assert made.status_code == 202, made.content
    volume_id = made.json()["id"]
    volume_status(client, volume_id, "available", storage_plane)
    response = client.post(
        INSTANCES, {"name": "bfv-2", "flavor": "m1.tiny", "boot_volume": volume_id}, format="json"
    )
    assert response.status_code == 202, response.content
    instance_id = response.json()["id"]
    assert client.get(f"{VOLUMES}{volume_id}/").json()["status"] in ("reserved", "in-use")
    _active(client, storage_plane, instance_id)
    volume_status(client, volume_id, "in-use", storage_plane)
    refused = client.delete(f"{VOLUMES}{volume_id}/")
    assert refused.status_code == 409, refused.content
    assert client.delete(f"{INSTANCES}{instance_id}/").status_code == 202
    volume_status(client, volume_id, "available", storage_plane)
    assert client.delete(f"{VOLUMES}{volume_id}/").status_code == 202


def test_upload_to_image_on_a_simulated_host_says_not_supported(world, storage_plane):
    """libvirt's test driver keeps no bytes: the agent answers NotSupported, the volume is available
    again with that reason and the queued image is killed (nothing faked)."""
    client = world
    volume_id = client.post(VOLUMES, {"name": "to-image", "size": 1}, format="json").json()["id"]
    volume_status(client, volume_id, "available", storage_plane)
    response = client.post(f"{VOLUMES}{volume_id}/upload-to-image/", {"name": "from-volume"}, format="json")
    assert response.status_code == 202, response.content
    image_id = response.json()["image_id"]
    wait_for(
        lambda: Image.objects.get(pk=image_id).status == "killed",
        lambda: f"image killed: {Image.objects.get(pk=image_id).status}\n{storage_plane.logs()}",
        WAIT,
    )
    volume = Volume.objects.get(pk=volume_id)
    assert volume.display_status == "available"
    assert "upload" in volume.fault["message"].lower() or "support" in volume.fault["message"].lower()


def test_a_killed_storage_agent_leaves_no_volume_transitional(world, storage_plane):
    """SIGKILL the agent with a create and an attach in flight: at their deadline (the sweeper) the
    new volume is in error with the reason and the attaching one available again; the restarted
    agent's late answers settle nothing twice, and the error volume can be deleted."""
    import contextlib
    import os
    from datetime import timedelta

    from workers import services as ledger

    client = world
    ready = client.post(VOLUMES, {"name": "ready", "size": 1}, format="json").json()["id"]
    volume_status(client, ready, "available", storage_plane)
    instance_id = launch(client, storage_plane, "vm-3")

    agent = storage_plane.workers.pop(f"agent-{HOST}")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(agent.proc.pid, 9)
    agent.proc.wait(timeout=10)

    url = f"{INSTANCES}{instance_id}/volume-attachments/"
    assert client.post(url, {"volume": ready}, format="json").status_code == 202
    fresh = client.post(VOLUMES, {"name": "fresh", "size": 1}, format="json")
    assert fresh.status_code == 202, fresh.content
    fresh_id = fresh.json()["id"]
    ops = [Volume.objects.get(pk=v).operation for v in (ready, fresh_id)]
    wait_for(lambda: all(Operation.objects.get(pk=o.pk).state == "running" for o in ops), "sent to the host")
    assert ledger.sweep(now=max(o.deadline for o in ops) + timedelta(seconds=1)).failed >= 2

    attaching, creating = Volume.objects.get(pk=ready), Volume.objects.get(pk=fresh_id)
    assert (attaching.display_status, attaching.fault["code"]) == ("available", "timeout")
    assert (creating.display_status, creating.fault["code"]) == ("error", "timeout")
    assert "Deadline exceeded" in creating.fault["message"]
    assert client.get(f"{INSTANCES}{instance_id}/").json()["volumes"] == []

    storage_plane.start(storage_plane.launch_agent(HOST, SIM_URI))
    assert client.delete(f"{VOLUMES}{fresh_id}/").status_code == 202
    wait_for(
        lambda: Volume.objects.get(pk=fresh_id).status == "deleted",
        lambda: f"error volume deleted\n{storage_plane.logs()}",
        WAIT,
    )
    assert Volume.objects.get(pk=ready).display_status == "available"  # the late attach changed nothing
