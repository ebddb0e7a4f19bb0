"""Block Storage v3 (Cinder) and Nova's volume attachments, with Django's test client: version
discovery, the microversion echo, volumes (create, list, detail, show, rename, actions, delete),
snapshots, types, quota sets and limits in Cinder's shapes; Cinder's error shape, no 500s, no
trailing-slash redirects, fixed query counts for the lists."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from compute.models import Instance
from storage.models import Attachment, Snapshot, Volume, VolumeType
from tests.compute.instance_helpers import in_state, launch
from tests.storage.conftest import created_answer, make_storage_host, settle

from .test_views import issue, post

pytestmark = pytest.mark.django_db

CINDER = "/volume/v3"
NOVA = "/compute/v2.1"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def member(client, cloud):
    return {"X-Auth-Token": issue(client, cloud.member, cloud.project)}


@pytest.fixture
def admin(client, cloud):
    return {"X-Auth-Token": issue(client, cloud.admin, cloud.admin_project)}


@pytest.fixture
def store(db):
    VolumeType.objects.get_or_create(name="default", defaults={"backend": "local", "is_default": True})
    return make_storage_host("store-1")


def put(client, path, body, **headers):
    return client.put(path, json.dumps(body), content_type="application/json", headers=headers)


def create(client, headers, **fields) -> dict:
    body = {"size": 1, "name": "vol-1", "volume_type": None, "imageRef": None, "metadata": {}, **fields}
    response = post(client, f"{CINDER}/volumes", {"volume": body}, **headers)
    assert response.status_code == 202, response.content
    return response.json()["volume"]


def available(volume_id: str) -> Volume:
    return settle(
        Volume.objects.get(pk=volume_id), "create", created_answer(Volume.objects.get(pk=volume_id))
    )


def test_version_discovery_is_open_and_echoes_the_microversion(client, cloud):
    response = client.get("/volume/")
    assert response.status_code == 300
    (doc,) = response.json()["versions"]
    assert (doc["id"], doc["status"], doc["version"], doc["min_version"]) == ("v3.0", "CURRENT", "3.0", "3.0")
    assert doc["links"][0]["href"] == "http://testserver/volume/v3/"
    for path in ("/volume/v3", "/volume/v3/"):
        response = client.get(path, headers={"OpenStack-API-Version": "volume 3.0"})
        assert response.status_code == 200 and response.json()["versions"][0]["id"] == "v3.0"
        assert response["OpenStack-API-Version"] == "volume 3.0"
    assert client.get("/volume").status_code == 300


def test_errors_are_cinders_shape(client, cloud, member):
    assert client.get(f"{CINDER}/volumes").status_code == 401
    response = client.get(f"{CINDER}/volumes/vol-1", headers=member)
    assert response.status_code == 404 and response.json()["itemNotFound"]["code"] == 404
    response = client.get(f"{CINDER}/volumes", headers={**member, "OpenStack-API-Version": "volume 3.70"})
    assert response.status_code == 406
    response = post(client, f"{CINDER}/volumes", {"volume": {"size": "big"}}, **member)
    assert response.status_code == 400 and set(response.json()["badRequest"]) == {"message", "code"}
    response = client.post(f"{CINDER}/volumes", "{nope", content_type="application/json", headers=member)
    assert response.status_code == 400
    assert client.get(f"{CINDER}/volumes/", headers=member).status_code == 404  # no redirect
    assert client.get(f"{CINDER}/nothing/here", headers=member).status_code == 404
    response = client.patch(f"{CINDER}/volumes", headers=member)
    assert response.status_code == 405 and "badMethod" in response.json()


def test_a_volumes_lifecycle_in_cinders_shape(client, cloud, member, admin, store):
    volume = create(client, member)
    assert volume["status"] == "creating" and volume["size"] == 1 and volume["bootable"] == "false"
    assert volume["attachments"] == [] and volume["availability_zone"] == "nova"
    assert volume["volume_type"] == "default" and "os-vol-host-attr:host" not in volume
    available(volume["id"])
    shown = client.get(f"{CINDER}/volumes/{volume['id']}", headers=member).json()["volume"]
    assert shown["status"] == "available"
    as_admin = client.get(f"{CINDER}/volumes/{volume['id']}", headers=admin).json()["volume"]
    assert as_admin["os-vol-host-attr:host"] == "store-1@local#local"

    response = put(client, f"{CINDER}/volumes/{volume['id']}", {"volume": {"name": "vol-2"}}, **member)
    assert response.status_code == 200 and response.json()["volume"]["name"] == "vol-2"
    listed = client.get(f"{CINDER}/volumes?name=vol-2", headers=member).json()["volumes"]
    assert [v["id"] for v in listed] == [volume["id"]] and set(listed[0]) == {"id", "name", "links"}

    action = f"{CINDER}/volumes/{volume['id']}/action"
    assert post(client, action, {"os-extend": {"new_size": 2}}, **member).status_code == 202
    assert Volume.objects.get(pk=volume["id"]).busy == Volume.EXTENDING
    assert post(client, action, {"os-reset_status": {"status": "available"}}, **member).status_code == 403
    assert post(client, action, {"os-reset_status": {"status": "available"}}, **admin).status_code == 202
    assert Volume.objects.get(pk=volume["id"]).display_status == "available"
    response = post(client, action, {"os-force_detach": {}}, **admin)
    assert response.status_code == 409 and "conflictingRequest" in response.json()
    assert post(client, action, {"os-frobnicate": {}}, **member).status_code == 400

    # Snapshots.
    response = post(
        client, f"{CINDER}/snapshots", {"snapshot": {"volume_id": volume["id"], "name": "s1"}}, **member
    )
    assert response.status_code == 202, response.content
    snap = response.json()["snapshot"]
    assert snap["status"] == "creating" and snap["volume_id"] == volume["id"] and snap["size"] == 1
    assert client.get(f"{CINDER}/snapshots/{snap['id']}", headers=member).json()["snapshot"]["name"] == "s1"
    assert [
        s["id"] for s in client.get(f"{CINDER}/snapshots/detail", headers=member).json()["snapshots"]
    ] == [snap["id"]]
    # With a snapshot, the volume cannot go.
    assert client.delete(f"{CINDER}/volumes/{volume['id']}", headers=member).status_code == 409
    Snapshot.objects.filter(pk=snap["id"]).update(status=Snapshot.AVAILABLE)
    assert client.delete(f"{CINDER}/snapshots/{snap['id']}", headers=member).status_code == 202
    Snapshot.objects.filter(pk=snap["id"]).update(status=Snapshot.DELETED, busy="")
    assert client.delete(f"{CINDER}/volumes/{volume['id']}?cascade=False", headers=member).status_code == 202
    assert Volume.objects.get(pk=volume["id"]).busy == Volume.DELETING
    # Another project's member sees none of it.
    other = {"X-Auth-Token": issue(client, cloud.other_member, cloud.other_project)}
    assert client.get(f"{CINDER}/volumes/{volume['id']}", headers=other).status_code == 404


def test_the_volume_lists_have_fixed_query_counts(client, cloud, member, store):
    def count(path):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(CINDER + path, headers=member)
        assert response.status_code == 200
        return len(queries)

    ids = [create(client, member, name=f"v{i}")["id"] for i in range(2)]
    available(ids[0])
    post(client, f"{CINDER}/snapshots", {"snapshot": {"volume_id": ids[0], "name": "s"}}, **member)
    before = {p: count(p) for p in ("/volumes", "/volumes/detail", "/snapshots/detail", "/types")}
    for i in range(2, 5):
        available(create(client, member, name=f"v{i}")["id"])
    Snapshot.objects.update(status=Snapshot.AVAILABLE)
    post(client, f"{CINDER}/snapshots", {"snapshot": {"volume_id": ids[0], "name": "s2"}}, **member)
    after = {p: count(p) for p in before}
    assert before == after


def test_types_quotas_and_limits(client, cloud, member, admin, store):
    types = client.get(f"{CINDER}/types", headers=member).json()["volume_types"]
    assert [t["name"] for t in types] == ["default"] and types[0]["is_public"] is True
    assert client.get(f"{CINDER}/types/default", headers=member).json()["volume_type"]["name"] == "default"
    body = {"volume_type": {"name": "fast", "extra_specs": {"volume_backend_name": "local"}}}
    assert post(client, f"{CINDER}/types", body, **member).status_code == 403
    response = post(client, f"{CINDER}/types", body, **admin)
    assert response.status_code == 200, response.content
    fast = response.json()["volume_type"]
    assert post(client, f"{CINDER}/types", body, **admin).status_code == 409
    assert client.delete(f"{CINDER}/types/{fast['id']}", headers=admin).status_code == 202
    assert client.get(f"{CINDER}/types/{fast['id']}", headers=admin).status_code == 404

    pid = str(cloud.project.pk)
    create(client, member, size=3)
    quota = client.get(f"{CINDER}/os-quota-sets/{pid}?usage=False", headers=member).json()["quota_set"]
    assert (quota["id"], quota["volumes"], quota["gigabytes"], quota["snapshots"]) == (pid, 10, 1000, 10)
    used = client.get(f"{CINDER}/os-quota-sets/{pid}?usage=True", headers=member).json()["quota_set"]
    assert used["gigabytes"] == {"limit": 1000, "in_use": 3, "reserved": 0, "allocated": 0}
    assert (
        client.get(f"{CINDER}/os-quota-sets/{pid}/defaults", headers=member).json()["quota_set"]["volumes"]
        == 10
    )
    assert (
        put(client, f"{CINDER}/os-quota-sets/{pid}", {"quota_set": {"volumes": 5}}, **member).status_code
        == 403
    )
    response = put(client, f"{CINDER}/os-quota-sets/{pid}", {"quota_set": {"volumes": 5}}, **admin)
    assert response.status_code == 200 and response.json()["quota_set"]["volumes"] == 5
    assert (
        put(client, f"{CINDER}/os-quota-sets/{pid}", {"quota_set": {"nope": 5}}, **admin).status_code == 400
    )
    other = str(cloud.other_project.pk)
    assert client.get(f"{CINDER}/os-quota-sets/{other}", headers=member).status_code == 403
    absolute = client.get(f"{CINDER}/limits", headers=member).json()["limits"]["absolute"]
    assert (absolute["maxTotalVolumes"], absolute["totalVolumesUsed"], absolute["totalGigabytesUsed"]) == (
        5,
        1,
        3,
    )


def test_nova_volume_attachments(client, cloud, member, store):
    volume = create(client, member)
    available(volume["id"])
    instance = in_state(launch(cloud), Instance.ACTIVE, host=store.host)
    path = f"{NOVA}/servers/{instance.pk}/os-volume_attachments"
    body = {"volumeAttachment": {"volumeId": volume["id"], "device": None}}
    response = post(client, path, body, **member)
    assert response.status_code == 200, response.content
    assert response.json()["volumeAttachment"] == {
        "id": volume["id"],
        "serverId": str(instance.pk),
        "volumeId": volume["id"],
        "device": "/dev/vdb",
    }
    assert post(client, path, body, **member).status_code == 409
    listed = client.get(path, headers=member).json()["volumeAttachments"]
    assert [a["volumeId"] for a in listed] == [volume["id"]]
    assert (
        client.get(f"{path}/{volume['id']}", headers=member).json()["volumeAttachment"]["device"]
        == "/dev/vdb"
    )
    shown = client.get(f"{CINDER}/volumes/{volume['id']}", headers=member).json()["volume"]
    assert shown["status"] == "attaching"
    (attachment,) = shown["attachments"]
    assert (attachment["server_id"], attachment["device"]) == (str(instance.pk), "/dev/vdb")
    assert attachment["attachment_id"] == str(Attachment.objects.get().pk)
    assert (
        client.delete(
            f"{path}/{Volume.objects.exclude(pk=volume['id']).first() or 'x'}", headers=member
        ).status_code
        == 404
    )
    assert post(client, path, {"volumeAttachment": {}}, **member).status_code == 400
    assert client.get(f"{NOVA}/servers/nope/os-volume_attachments", headers=member).status_code == 404
