"""Rebuild, the portal's side (no agent): POST instances/{id}/rebuild/ {"image"} -> 202, status
REBUILD; the host gets a spawn's kwargs with the new image; success keeps the id and host and sets
the image, a failure after the old disk went is ERROR, one before it leaves the instance as it was.
The agent's side: tests/integration/test_snapshots.py."""

from __future__ import annotations

import pytest

from compute import services
from compute.models import ComputeNode, Instance
from workers.models import Operation

from .conftest import make_flavor
from .instance_helpers import in_state, launch, make_image

pytestmark = pytest.mark.django_db
URL = "/api/v1/compute/instances/"


@pytest.fixture
def two_images(cloud):
    make_flavor("m1.tiny", vcpus=1, ram_mb=512, disk_gb=1)
    return make_image("old"), make_image("new")


def _rebuild(client, instance, image="new", **headers):
    return client.post(f"{URL}{instance.pk}/rebuild/", {"image": image}, format="json", **headers)


def _settle(instance, answer) -> Instance:
    instance.refresh_from_db()
    services.INSTANCE.settle(instance.operation_id, instance.pk, "rebuild", answer)
    return Instance.objects.get(pk=instance.pk)


def test_rebuild_runs_the_new_image_on_the_same_instance(cloud, clients, two_images):
    old, new = two_images
    instance = in_state(launch(cloud, image=old), "active")
    host = instance.host_id
    response = _rebuild(clients["member"], instance)
    assert response.status_code == 202, response.content
    data = response.json()
    assert (data["id"], data["status"], data["task_state"]) == (str(instance.pk), "REBUILD", "rebuilding")
    assert data["operation"]["kind"] == "instance.rebuild"
    instance.refresh_from_db()
    op = Operation.objects.get(pk=instance.operation_id)
    work = services.INSTANCE.host_work(
        op.pk, instance.pk, services.INSTANCE.transitions["rebuild"], op.payload["params"]
    )
    assert work.task == "workers.agent.tasks.rebuild_instance" and work.host == instance.host.name
    assert (
        work.kwargs["image"]["id"] == str(new.pk)
        and work.kwargs["instance"]["domain"] == instance.domain_name
    )
    assert Instance.objects.get(pk=instance.pk).image_id == old.pk  # until the host has done it
    done = _settle(instance, {"ok": True, "power_state": "running", "host": instance.host.name})
    assert (done.vm_state, done.task_state, done.image_id, done.host_id) == ("active", "", new.pk, host)


def test_a_failure_after_the_old_disk_went_is_error_and_one_before_it_changes_nothing(
    cloud, clients, two_images
):
    old, _new = two_images
    instance = in_state(launch(cloud, image=old), "stopped")
    assert _rebuild(clients["member"], instance).status_code == 202
    early = _settle(instance, {"ok": False, "power_state": "shutdown", "error": "ImageFetchError: 503"})
    assert (early.vm_state, early.image_id, early.power_state) == ("stopped", old.pk, "shutdown")
    assert _rebuild(clients["member"], early).status_code == 202
    late = _settle(early, {"ok": False, "error": "DriverError: the domain would not start"})
    assert (late.vm_state, late.power_state, late.image_id) == ("error", "nostate", old.pk)
    assert "would not start" in late.fault["message"]
    assert _rebuild(clients["member"], late).status_code == 202  # an ERROR instance can be rebuilt


def test_refusals(cloud, clients, two_images):
    old, _new = two_images
    instance = in_state(launch(cloud, image=old), "paused")
    paused = _rebuild(clients["member"], instance)
    assert paused.status_code == 409 and "while it is paused" in paused.json()["error"]["message"]
    in_state(instance, "active")
    assert _rebuild(clients["member"], instance, "no-such-image").status_code in (400, 404)
    kernel = make_image("vmlinuz", disk_format="aki")
    assert _rebuild(clients["member"], instance, str(kernel.pk)).status_code == 400
    make_image("big", min_disk=50)
    too_big = _rebuild(clients["member"], instance, "big")
    assert too_big.status_code == 400, too_big.content
    make_image("qemu-only", properties={"hypervisor_type": "QEMU"})
    ComputeNode.objects.filter(host_id=instance.host_id).update(hypervisor_type="test")
    mismatch = _rebuild(clients["member"], instance, "qemu-only")
    assert mismatch.status_code == 409 and "needs a QEMU host" in mismatch.json()["error"]["message"]
    assert clients["member"].post(f"{URL}{instance.pk}/rebuild/", {}, format="json").status_code == 400
    assert (
        clients["reader"].post(f"{URL}{instance.pk}/rebuild/", {"image": "new"}, format="json").status_code
        == 403
    )
    assert (
        clients["other"].post(f"{URL}{instance.pk}/rebuild/", {"image": "new"}, format="json").status_code
        == 404
    )
    Instance.objects.filter(pk=instance.pk).update(boots_from_volume=True)
    volume = _rebuild(clients["member"], instance)
    assert volume.status_code == 409 and "boots from a volume" in volume.json()["error"]["message"]
    assert Instance.objects.get(pk=instance.pk).task_state == ""


def test_idempotency_key(cloud, clients, two_images):
    old, _new = two_images
    instance = in_state(launch(cloud, image=old), "active")
    key = {"HTTP_IDEMPOTENCY_KEY": "rebuild-1"}
    first, again = _rebuild(clients["member"], instance, **key), _rebuild(clients["member"], instance, **key)
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json()["operation"]["id"] == again.json()["operation"]["id"]


def test_dashboard_rebuild_form(cloud, two_images):
    from django.test import Client

    old, new = two_images
    instance = in_state(launch(cloud, image=old, name="web"), "active")
    browser = Client()
    browser.force_login(cloud.member)
    action = f"/dashboard/compute/instances/{instance.pk}/rebuild/"
    assert (
        f'action="{action}"' in browser.get(f"/dashboard/compute/instances/{instance.pk}/").content.decode()
    )
    form = browser.post(action, {"back": "detail"})
    assert form.status_code == 200 and 'id="rebuild-form"' in form.content.decode()
    assert f'<option value="{new.pk}"' in form.content.decode()
    assert browser.post(action, {"image": "not-an-image", "back": "detail"}).status_code == 400
    done = browser.post(action, {"image": str(new.pk), "back": "detail"}, follow=True)
    assert "Rebuilding instance web." in done.content.decode()
    assert Instance.objects.get(pk=instance.pk).task_state == "rebuilding"
