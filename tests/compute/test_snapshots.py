"""Instance snapshots, the portal's side (no agent): POST instances/{id}/snapshot/ makes a queued
image of the project (instance_uuid, image_type=snapshot, the base image's boot properties) and sets
task_state image_snapshot; the host's request carries the image's signed upload URL; the bytes PUT
there with their Content-Length and the host's answer end it active with size and checksum, or
killed with the reason, the instance in its state either way. Idempotency-Key, 409 naming the
state, policy, bad bodies, the action log. The agent's side: tests/integration/test_snapshots.py."""

from __future__ import annotations

import hashlib

import pytest
from django.test import Client

from compute import services
from compute.models import Image, Instance
from identity.models import ResourceAction
from workers.models import Operation

from .instance_helpers import in_state, launch, make_image

pytestmark = pytest.mark.django_db
URL = "/api/v1/compute/instances/"
DATA = b"QFI\xfb snapshot bytes " * 3000


@pytest.fixture
def base(cloud):
    kernel = make_image("vmlinuz", disk_format="aki")
    return make_image("guest", properties={"kernel_id": str(kernel.pk), "os_command_line": "console=ttyS0"})


def _host_kwargs(instance: Instance) -> dict:
    """What the conductor sends the instance's compute host for its snapshot."""
    transition = services.INSTANCE.transitions["snapshot"]
    op = Operation.objects.get(pk=instance.operation_id)
    work = services.INSTANCE.host_work(op.pk, instance.pk, transition, op.payload["params"])
    assert work.task == "workers.agent.tasks.snapshot_instance" and work.host == instance.host.name
    return work.kwargs


def _put(url: str, data: bytes):
    return Client().put(url.removeprefix("http://testserver"), data, content_type="application/octet-stream")


def _settle(instance: Instance, answer: dict) -> Instance:
    services.INSTANCE.settle(instance.operation_id, instance.pk, "snapshot", answer)
    return Instance.objects.get(pk=instance.pk)


def _answer(data: bytes = DATA, **extra) -> dict:
    checksum = hashlib.sha256(data).hexdigest()
    return {"ok": True, "power_state": "running", "size_bytes": len(data), "checksum": checksum, **extra}


def test_snapshot_of_a_running_instance_end_to_end(cloud, clients, base, settings):
    settings.ZENITH_PORTAL_URL = "http://testserver"
    instance = in_state(launch(cloud, image=base), "active")
    response = clients["member"].post(f"{URL}{instance.pk}/snapshot/", {"name": "snap-1"}, format="json")
    assert response.status_code == 202, response.content
    image_data = response.json()
    image = Image.objects.get(pk=image_data["id"])
    assert (image.status, image.project_id, image.visibility, image.disk_format) == (
        "queued",
        cloud.project.pk,
        "private",
        "qcow2",
    )
    assert image.properties["instance_uuid"] == str(instance.pk)
    assert image.properties["image_type"] == "snapshot"
    assert image.properties["base_image_ref"] == str(base.pk)
    assert image.properties["kernel_id"] == base.properties["kernel_id"]  # what booting the copy needs
    assert image.min_disk == instance.disk_gb
    assert image_data["operation"]["kind"] == "instance.snapshot" and image_data["instance"] == str(
        instance.pk
    )
    assert response["Location"] == f"/api/v1/operations/{image_data['operation']['id']}/"
    instance.refresh_from_db()
    assert (instance.vm_state, instance.task_state) == ("active", "image_snapshot")
    shown = clients["member"].get(f"{URL}{instance.pk}/").json()
    assert (shown["status"], shown["task_state"]) == ("ACTIVE", "image_snapshot")

    kwargs = _host_kwargs(instance)
    assert kwargs["domain"] == instance.domain_name and kwargs["base_image"]["id"] == str(base.pk)
    assert _put(kwargs["upload_url"][:-3] + "xyz", DATA).status_code == 403
    assert _put(kwargs["upload_url"], DATA).status_code == 204
    assert Image.objects.get(pk=image.pk).status == "active"  # stored; the host's answer confirms it
    assert _put(kwargs["upload_url"], DATA).status_code == 409  # once only
    instance = _settle(instance, _answer())
    assert (instance.vm_state, instance.task_state, instance.fault) == ("active", "", None)
    image.refresh_from_db()
    assert (image.status, image.size, image.checksum) == (
        "active",
        len(DATA),
        hashlib.sha256(DATA).hexdigest(),
    )
    op = Operation.objects.get(pk=image_data["operation"]["id"])
    assert op.state == "succeeded"
    log = ResourceAction.objects.get(resource_id=instance.pk, action="snapshot")
    assert log.result == ResourceAction.SUCCESS


def test_a_stopped_instance_stays_stopped_and_a_failure_kills_the_image(cloud, clients, base):
    instance = in_state(launch(cloud, image=base), "stopped")
    response = clients["member"].post(f"{URL}{instance.pk}/snapshot/", {"name": "s"}, format="json")
    assert response.status_code == 202, response.content
    image_id = response.json()["id"]
    instance.refresh_from_db()
    answer = {"ok": False, "power_state": "shutdown", "error": "DriverError: qemu-img convert failed: boom"}
    instance = _settle(instance, answer)
    assert (instance.vm_state, instance.task_state, instance.power_state) == ("stopped", "", "shutdown")
    assert Image.objects.get(pk=image_id).status == "killed"
    reason = ResourceAction.objects.get(resource_id=image_id, action="upload", result="error").message
    assert "qemu-img convert failed" in reason
    assert Operation.objects.get(pk=response.json()["operation"]["id"]).state == "failed"


def test_an_answer_whose_checksum_differs_is_a_failure(cloud, clients, base, settings):
    settings.ZENITH_PORTAL_URL = "http://testserver"
    instance = in_state(launch(cloud, image=base), "active")
    response = clients["member"].post(f"{URL}{instance.pk}/snapshot/", {"name": "s"}, format="json")
    instance.refresh_from_db()
    assert _put(_host_kwargs(instance)["upload_url"], DATA).status_code == 204
    instance = _settle(instance, _answer(b"other bytes"))
    assert (instance.vm_state, instance.task_state) == ("active", "")
    assert "killed" in instance.fault["message"]
    assert Image.objects.get(pk=response.json()["id"]).status == "killed"


def test_a_simulated_host_says_what_its_snapshot_is(cloud, clients, base, settings):
    settings.ZENITH_PORTAL_URL = "http://testserver"
    instance = in_state(launch(cloud, image=base), "active")
    image_id = (
        clients["member"].post(f"{URL}{instance.pk}/snapshot/", {"name": "s"}, format="json").json()["id"]
    )
    instance.refresh_from_db()
    assert _put(_host_kwargs(instance)["upload_url"], DATA).status_code == 204
    _settle(instance, _answer(simulated=True, source="simulated host: the base image"))
    image = Image.objects.get(pk=image_id)
    assert image.status == "active"
    assert image.properties["zenith_snapshot_source"] == "simulated host: the base image"


def test_an_image_deleted_before_the_host_got_the_work_ends_it_there(cloud, clients, base):
    instance = in_state(launch(cloud, image=base), "active")
    image_id = (
        clients["member"].post(f"{URL}{instance.pk}/snapshot/", {"name": "s"}, format="json").json()["id"]
    )
    services.delete_image(cloud.ctx(cloud.member), Image.objects.get(pk=image_id))
    instance.refresh_from_db()
    transition = services.INSTANCE.transitions["snapshot"]
    op = Operation.objects.get(pk=instance.operation_id)
    assert services.INSTANCE.host_work(op.pk, instance.pk, transition, op.payload["params"]) is None
    instance.refresh_from_db()
    assert (instance.vm_state, instance.task_state) == ("active", "")
    assert "no longer queued" in instance.fault["message"]


def test_a_timed_out_snapshot_kills_its_image(cloud, clients, base):
    instance = in_state(launch(cloud, image=base), "active")
    image_id = (
        clients["member"].post(f"{URL}{instance.pk}/snapshot/", {"name": "s"}, format="json").json()["id"]
    )
    instance.refresh_from_db()
    op = Operation.objects.get(pk=instance.operation_id)
    op.message = "the operation did not finish in time"
    services.INSTANCE.timed_out(op)
    instance.refresh_from_db()
    assert (instance.vm_state, instance.task_state) == ("active", "")
    assert Image.objects.get(pk=image_id).status == "killed"


def test_idempotency_key_answers_the_first_image(cloud, clients, base):
    instance = in_state(launch(cloud, image=base), "active")
    key = {"HTTP_IDEMPOTENCY_KEY": "snap-1"}
    url = f"{URL}{instance.pk}/snapshot/"
    first = clients["member"].post(url, {"name": "s"}, format="json", **key)
    again = clients["member"].post(url, {"name": "s"}, format="json", **key)
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json()["id"] == again.json()["id"]
    assert Image.objects.filter(properties__instance_uuid=str(instance.pk)).count() == 1
    assert ResourceAction.objects.filter(resource_id=instance.pk, action="snapshot").count() == 1
    clash = clients["member"].post(f"{URL}{instance.pk}/stop/", **key)
    assert clash.status_code == 409 and "already used for snapshot" in clash.json()["error"]["message"]


def test_states_that_refuse_a_snapshot_are_409_naming_the_state(cloud, clients, base):
    instance = in_state(launch(cloud, image=base), "paused")
    url = f"{URL}{instance.pk}/snapshot/"
    paused = clients["member"].post(url, {"name": "s"}, format="json")
    assert paused.status_code == 409
    assert (
        "Cannot snapshot instance vm while it is paused (status PAUSED)" in paused.json()["error"]["message"]
    )
    in_state(instance, "active", task_state="image_snapshot")
    busy = clients["member"].post(url, {"name": "s"}, format="json")
    assert busy.status_code == 409 and "busy (image_snapshot)" in busy.json()["error"]["message"]
    in_state(instance, "active")
    Instance.objects.filter(pk=instance.pk).update(boots_from_volume=True)
    volume = clients["member"].post(url, {"name": "s"}, format="json")
    assert volume.status_code == 409 and "boots from a volume" in volume.json()["error"]["message"]
    assert not Image.objects.filter(properties__instance_uuid=str(instance.pk)).exists()  # nothing left


@pytest.mark.parametrize(
    "payload", [{}, {"name": ""}, {"name": 5}, {"name": "x", "extra": 1}, {"name": "x" * 256}]
)
def test_bad_bodies_are_400(cloud, clients, base, payload):
    instance = in_state(launch(cloud, image=base), "active")
    response = clients["member"].post(f"{URL}{instance.pk}/snapshot/", payload, format="json")
    assert response.status_code == 400, response.content
    assert not Image.objects.filter(properties__instance_uuid=str(instance.pk)).exists()


def test_roles_and_projects(cloud, clients, base):
    instance = in_state(launch(cloud, image=base), "active")
    url = f"{URL}{instance.pk}/snapshot/"
    assert clients["reader"].post(url, {"name": "s"}, format="json").status_code == 403
    assert clients["other"].post(url, {"name": "s"}, format="json").status_code == 404
    assert clients["anonymous"].post(url, {"name": "s"}, format="json").status_code in (401, 403)
    assert not Image.objects.filter(properties__instance_uuid=str(instance.pk)).exists()
    assert clients["member"].get(f"{URL}{instance.pk}/").json()["task_state"] == ""


# --- the dashboard ------------------------------------------------------------------------------------

DASHBOARD = "/dashboard/compute/instances/"


def _browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_dashboard_create_snapshot_button_form_and_images_page(cloud, base):
    instance = in_state(launch(cloud, image=base, name="web"), "active")
    member = _browser(cloud.member)
    detail = member.get(f"{DASHBOARD}{instance.pk}/").content.decode()
    action = f"{DASHBOARD}{instance.pk}/snapshot/"
    assert f'action="{action}"' in detail and "Create snapshot" in detail  # the generated button
    # The button posts no name: the small form for it, with a name proposed.
    form = member.post(action, {"back": "detail"})
    assert form.status_code == 200 and 'id="snapshot-form"' in form.content.decode()
    assert 'value="web-snapshot"' in form.content.decode()
    assert Instance.objects.get(pk=instance.pk).task_state == ""
    empty = member.post(action, {"name": "", "back": "detail"})
    assert empty.status_code == 400 and "This field is required" in empty.content.decode()
    done = member.post(
        action, {"name": "web-snap", "back": "detail", "idempotency_key": "form-1"}, follow=True
    )
    assert done.redirect_chain[-1][0] == f"{DASHBOARD}{instance.pk}/"
    assert "Creating snapshot web-snap of instance web" in done.content.decode()
    assert Instance.objects.get(pk=instance.pk).task_state == "image_snapshot"
    again = member.post(action, {"name": "web-snap", "back": "detail", "idempotency_key": "form-1"})
    assert again.status_code == 302  # a reposted form: the same snapshot, nothing more
    assert Image.objects.filter(name="web-snap").count() == 1
    images = member.get("/dashboard/compute/images/").content.decode()
    assert "web-snap" in images and "queued" in images.lower()
    busy = member.post(action, {"name": "second", "back": "detail"})
    assert busy.status_code == 400 and "busy (image_snapshot)" in busy.content.decode()


def test_dashboard_snapshot_refused_to_readers(cloud, base):
    instance = in_state(launch(cloud, image=base), "active")
    reader = _browser(cloud.reader)
    assert "Create snapshot" not in reader.get(f"{DASHBOARD}{instance.pk}/").content.decode()
    assert reader.post(f"{DASHBOARD}{instance.pk}/snapshot/", {"name": "x"}).status_code == 403
    assert not Image.objects.filter(properties__instance_uuid=str(instance.pk)).exists()
