"""The storage API: shapes, 202 with the operation's Location, 400/404/409 with messages, roles
and project isolation, Idempotency-Key, fixed query counts, and the instances' volume-attachments."""

from __future__ import annotations

import uuid

import pytest

from compute.models import Instance
from storage import services
from storage.models import Attachment, Volume
from tests.compute.conftest import make_flavor
from tests.compute.instance_helpers import in_state, launch, make_image
from tests.identity.test_query_counts import MANY, api_rows, assert_fixed_queries
from workers.messages import AttachmentResult

from .conftest import available, make_storage_host, settle

pytestmark = pytest.mark.django_db

URL = "/api/v1/storage/volumes/"
API_LIST_QUERIES = (
    5  # token, caller's roles, COUNT, page (type, operation, pool and host joined), attachments
)
API_DETAIL_QUERIES = 4  # token, caller's roles, the row, its attachment


def error_of(response) -> str:
    return response.json()["error"]["message"]


def test_create_answers_202_with_the_operation(cloud, clients, pool):
    response = clients["member"].post(URL, {"name": "data", "size": 2}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "creating" and body["size"] == 2 and body["volume_type"] == "default"
    assert body["operation"]["kind"] == "volume.create"
    assert response["Location"] == f"/api/v1/operations/{body['operation']['id']}/"
    assert body["host"] is None  # members do not see storage hosts
    admin_view = clients["admin"].get("/api/v1/storage/backends/").json()
    assert admin_view["results"][0]["allocated_gb"] == 2


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"name": "a"}, 400, "size must be a whole number"),
        ({"name": "a", "size": "2"}, 400, "valid integer"),
        ({"name": "a", "size": 2, "sise": 3}, 400, ""),
        ({"name": "", "size": 2}, 400, ""),
        ({"name": "a", "size": 2, "volume_type": "gold"}, 400, "No volume type 'gold'"),
        ({"name": "a", "size": 2, "snapshot": str(uuid.uuid4())}, 400, "No snapshot"),
        ({"name": "a", "size": 100000}, 400, "from 1 to"),
        ({"name": "a", "size": 500}, 409, "No valid storage backend"),
    ],
)
def test_bad_creates(cloud, clients, pool, body, status, message):
    response = clients["member"].post(URL, body, format="json")
    assert response.status_code == status, response.content
    assert message in response.content.decode()


def test_roles_and_isolation(cloud, clients, pool):
    volume = available(cloud)
    assert clients["reader"].post(URL, {"name": "a", "size": 1}, format="json").status_code == 403
    assert clients["reader"].get(f"{URL}{volume.pk}/").status_code == 200
    assert clients["other"].get(f"{URL}{volume.pk}/").status_code == 404
    assert clients["other"].delete(f"{URL}{volume.pk}/").status_code == 404
    assert clients["other"].get(URL).json()["count"] == 0
    assert clients["anonymous"].get(URL).status_code == 401
    assert clients["member"].get("/api/v1/storage/backends/").status_code == 403


def test_idempotent_create_and_action(cloud, clients, pool):
    headers = {"HTTP_IDEMPOTENCY_KEY": "abc"}
    first = clients["member"].post(URL, {"name": "a", "size": 1}, format="json", **headers)
    again = clients["member"].post(URL, {"name": "a", "size": 1}, format="json", **headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"] and Volume.objects.count() == 1
    volume = settle(Volume.objects.get(), "create", {"ok": True})
    url = f"{URL}{volume.pk}/extend/"
    one = clients["member"].post(url, {"new_size": 3}, format="json", HTTP_IDEMPOTENCY_KEY="x1")
    two = clients["member"].post(url, {"new_size": 3}, format="json", HTTP_IDEMPOTENCY_KEY="x1")
    assert (one.status_code, two.status_code) == (202, 202)
    assert Volume.objects.get().operation.kind == "volume.extend"
    from workers.models import Operation

    assert Operation.objects.filter(kind="volume.extend").count() == 1


def test_extend_and_delete_conflicts_name_the_state(cloud, clients, pool):
    creating = clients["member"].post(URL, {"name": "a", "size": 1}, format="json").json()
    response = clients["member"].post(f"{URL}{creating['id']}/extend/", {"new_size": 2}, format="json")
    assert response.status_code == 409 and "while it is creating" in error_of(response)
    response = clients["member"].delete(f"{URL}{creating['id']}/")
    assert response.status_code == 409 and "while it is creating" in error_of(response)
    response = clients["member"].post(f"{URL}{creating['id']}/extend/", {"new_size": "2"}, format="json")
    assert response.status_code == 400


def test_delete_with_snapshots_is_409_with_the_reason(cloud, clients, pool):
    volume = available(cloud)
    snap = clients["member"].post(
        "/api/v1/storage/snapshots/", {"name": "s", "volume": str(volume.pk)}, format="json"
    )
    assert snap.status_code == 202, snap.content
    response = clients["member"].delete(f"{URL}{volume.pk}/")
    assert response.status_code == 409 and "has 1 snapshot(s): delete them first" in error_of(response)


def test_delete_answers_202(cloud, clients, pool):
    volume = available(cloud)
    response = clients["member"].delete(f"{URL}{volume.pk}/")
    assert response.status_code == 202 and response.json()["status"] == "deleting"
    assert response["Location"].startswith("/api/v1/operations/")


def test_admin_actions(cloud, clients, pool):
    volume = available(cloud)
    url = f"{URL}{volume.pk}/reset-state/"
    assert clients["member"].post(url, {"status": "error"}, format="json").status_code == 403
    admin = clients["admin"]
    # Admins act within their project's scope through the API: the volume is another project's.
    assert admin.post(url, {"status": "error"}, format="json").status_code == 404


def test_volume_types(cloud, clients, vtype):
    listed = clients["member"].get("/api/v1/storage/volume-types/")
    assert listed.status_code == 200 and listed.json()["results"][0]["is_default"] is True
    body = {"name": "gold", "backend": "ssd", "extra_specs": {"tier": "1"}}
    assert clients["member"].post("/api/v1/storage/volume-types/", body, format="json").status_code == 403
    created = clients["admin"].post(
        "/api/v1/storage/volume-types/", {**body, "is_default": True}, format="json"
    )
    assert created.status_code == 201, created.content
    again = clients["admin"].post("/api/v1/storage/volume-types/", body, format="json")
    assert again.status_code == 409
    names = {
        t["name"]: t["is_default"]
        for t in clients["member"].get("/api/v1/storage/volume-types/").json()["results"]
    }
    assert names == {"default": False, "gold": True}


def more_volumes(cloud, n):
    from identity import quotas

    quotas.set_limits(cloud.project, {"volumes": 100})
    for i in range(n):
        volume = available(cloud, name=f"v{i}")
        if i % 2:
            services.attach_volume(
                cloud.ctx(cloud.member), volume, instance_id=uuid.uuid4(), host_name="store-1"
            )


@pytest.mark.parametrize("role", ["member", "reader"])
def test_volume_list_query_count(cloud, clients, pool, django_assert_num_queries, role):
    available(cloud, name="first")
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: clients[role].get(URL),
        API_LIST_QUERIES,
        grow=lambda: more_volumes(cloud, MANY),
        rows=api_rows,
    )


def test_volume_detail_query_count(cloud, clients, pool, django_assert_num_queries):
    volume = available(cloud)
    clients["member"].get(f"{URL}{volume.pk}/")
    with django_assert_num_queries(API_DETAIL_QUERIES):
        assert clients["member"].get(f"{URL}{volume.pk}/").status_code == 200


def test_snapshot_list_query_count(cloud, clients, pool, django_assert_num_queries):
    volume = available(cloud)

    def grow():
        for i in range(MANY):
            services.create_snapshot(cloud.ctx(cloud.member), volume=str(volume.pk), name=f"s{i}")

    from identity import quotas

    quotas.set_limits(cloud.project, {"snapshots": 100})
    services.create_snapshot(cloud.ctx(cloud.member), volume=str(volume.pk), name="first")
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: clients["member"].get("/api/v1/storage/snapshots/"),
        4,  # token, caller's roles, COUNT, page (operation joined)
        grow=grow,
        rows=api_rows,
    )


# --- instances' volume-attachments ----------------------------------------------------------------


@pytest.fixture
def instance(cloud, pool):
    make_image()
    vm = launch(cloud, flavor=make_flavor("tiny"))
    return in_state(vm, Instance.ACTIVE, host=pool.host)


def test_attach_and_detach_through_the_instance(cloud, clients, pool, instance):
    volume = available(cloud)
    url = f"/api/v1/compute/instances/{instance.pk}/volume-attachments/"
    response = clients["member"].post(url, {"volume": "data", "delete_on_termination": True}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["device"] == "/dev/vdb" and response["Location"].startswith("/api/v1/operations/")
    assert clients["member"].get(f"{URL}{volume.pk}/").json()["status"] == "attaching"
    settle(volume, "attach", AttachmentResult(ok=True, target_dev="vdb").as_dict())
    detail = clients["member"].get(f"/api/v1/compute/instances/{instance.pk}/").json()
    assert detail["volumes"] == [
        {
            "id": str(volume.pk),
            "name": "data",
            "device": "/dev/vdb",
            "delete_on_termination": True,
            "attached": True,
        }
    ]
    assert clients["member"].get(url).json()[0]["volume"] == str(volume.pk)
    again = clients["member"].post(url, {"volume": str(volume.pk)}, format="json")
    assert again.status_code == 409 and "already attached" in error_of(again)
    gone = clients["member"].delete(f"{url}{uuid.uuid4()}/")
    assert gone.status_code == 404
    response = clients["member"].delete(f"{url}{volume.pk}/")
    assert response.status_code == 202
    assert Volume.objects.get(pk=volume.pk).display_status == "detaching"


def test_attach_refusals(cloud, clients, pool, instance):
    url = f"/api/v1/compute/instances/{instance.pk}/volume-attachments/"
    assert clients["member"].post(url, {"volume": "nope"}, format="json").status_code == 400
    assert clients["member"].post(url, {}, format="json").status_code == 400
    make_storage_host("far-away", reaches=["far-away"])
    from storage.models import StoragePool

    StoragePool.objects.filter(host__name="store-1").update(allocated_gb=100)  # store-1 is full
    far = available(cloud, name="far")
    response = clients["member"].post(url, {"volume": "far"}, format="json")
    assert response.status_code == 409 and "cannot reach volume far" in error_of(response)
    in_state(instance, Instance.ACTIVE, task_state="rebooting", host=instance.host)
    StoragePool.objects.filter(host__name="store-1").update(allocated_gb=0)
    near = available(cloud, name="near")
    response = clients["member"].post(url, {"volume": str(near.pk)}, format="json")
    assert response.status_code == 409 and "rebooting" in error_of(response)
    assert not Attachment.objects.filter(volume__in=[far, near]).exists()
    other = clients["other"].post(url, {"volume": "near"}, format="json")
    assert other.status_code == 404


def test_schema_has_the_storage_endpoints(clients):
    schema = clients["member"].get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    for path in ("/api/v1/storage/volumes/", "/api/v1/storage/volumes/{id}/extend/", "volume-attachments"):
        assert path in schema
