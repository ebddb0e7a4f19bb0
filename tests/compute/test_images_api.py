"""The images API, per role: list, retrieve, create, update, delete, upload and download the bytes,
sharing with projects, the host-facing signed download; bad input answers 400s, never a 500; fixed
query counts.

Roles: ``admin`` (cloud admin), ``member`` and ``reader`` of project alpha, ``other`` (member of
project beta) and ``anonymous``.
"""

from __future__ import annotations

import itertools
import time
import urllib.parse
from dataclasses import dataclass

import pytest
from django.conf import settings as django_settings
from django.core import signing

from compute import services
from compute.models import Image
from tests.identity.helpers import error_of
from tests.identity.test_query_counts import MANY, api_rows, assert_fixed_queries

from .image_helpers import DATA, sha256, share_accepted, uploaded_image

ROLES = ("admin", "member", "reader", "other", "anonymous")
BASE = "/api/v1/compute/images/"
OCTET = "application/octet-stream"
NEW = {"name": "ubuntu", "disk_format": "qcow2"}


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@dataclass
class Images:
    private: Image  # alpha's, active
    queued: Image  # alpha's, no bytes yet
    shared: Image  # alpha's, shared with nobody yet
    public: Image  # the cloud admin's, active


@pytest.fixture
def images(cloud) -> Images:
    member = cloud.ctx(cloud.member)
    return Images(
        private=uploaded_image(member, "alpha-disk"),
        queued=services.create_image(member, name="alpha-new", disk_format="raw"),
        shared=uploaded_image(member, "alpha-shared", visibility="shared"),
        public=uploaded_image(cloud.ctx(cloud.admin), "public-disk", visibility="public"),
    )


def per_role(admin: int, member: int, reader: int, other: int, anonymous: int = 401) -> dict[str, int]:
    return dict(zip(ROLES, (admin, member, reader, other, anonymous), strict=True))


def url(image, suffix="") -> str:
    return f"{BASE}{image.pk}/{suffix}"


def put_file(client, image, data=DATA, content_type=OCTET):
    return client.put(f"{BASE}{image.pk}/file", data=data, content_type=content_type)


OPERATIONS = {
    "list": (lambda c, i, cloud: c.get(BASE), per_role(200, 200, 200, 200)),
    "retrieve-private": (lambda c, i, cloud: c.get(url(i.private)), per_role(200, 200, 200, 404)),
    "retrieve-public": (lambda c, i, cloud: c.get(url(i.public)), per_role(200, 200, 200, 200)),
    "create": (lambda c, i, cloud: c.post(BASE, NEW, format="json"), per_role(201, 201, 403, 201)),
    "create-public": (
        lambda c, i, cloud: c.post(BASE, {**NEW, "visibility": "public"}, format="json"),
        per_role(201, 403, 403, 403),
    ),
    "update-private": (
        lambda c, i, cloud: c.patch(url(i.private), {"min_ram": 128}, format="json"),
        per_role(200, 200, 403, 404),
    ),
    "update-public": (
        lambda c, i, cloud: c.patch(url(i.public), {"name": "x"}, format="json"),
        per_role(200, 403, 403, 403),
    ),
    "put-detail": (
        lambda c, i, cloud: c.put(url(i.private), NEW, format="json"),
        per_role(405, 405, 405, 405),
    ),
    "delete-private": (lambda c, i, cloud: c.delete(url(i.private)), per_role(204, 204, 403, 404)),
    "delete-public": (lambda c, i, cloud: c.delete(url(i.public)), per_role(204, 403, 403, 403)),
    "upload": (lambda c, i, cloud: put_file(c, i.queued), per_role(200, 200, 403, 404)),
    "download-private": (
        lambda c, i, cloud: c.get(f"{BASE}{i.private.pk}/file"),
        per_role(200, 200, 200, 404),
    ),
    "download-public": (lambda c, i, cloud: c.get(f"{BASE}{i.public.pk}/file"), per_role(200, 200, 200, 200)),
    "members-list": (lambda c, i, cloud: c.get(url(i.shared, "members/")), per_role(200, 200, 200, 404)),
    "members-add": (
        lambda c, i, cloud: c.post(
            url(i.shared, "members/"), {"project": str(cloud.other_project.pk)}, format="json"
        ),
        per_role(201, 201, 403, 404),
    ),
    "members-remove": (
        lambda c, i, cloud: c.delete(url(i.shared, f"members/{cloud.other_project.pk}/")),
        per_role(404, 404, 403, 404),  # nothing shared yet: 404 for those allowed to ask
    ),
}

CASES = [
    pytest.param(op, role, status, id=f"{op}-{role}")
    for op, (_, statuses) in OPERATIONS.items()
    for role, status in statuses.items()
]


@pytest.mark.parametrize("op, role, status", CASES)
def test_status_per_role(cloud, clients, images, op, role, status):
    call, _ = OPERATIONS[op]
    response = call(clients[role], images, cloud)
    assert response.status_code == status, getattr(response, "content", b"")[:500]
    if status >= 400 and status != 405:
        error = error_of(response)
        if status == 404 and role == "other":
            assert "alpha" not in error["message"]  # nothing about a hidden image leaks


def test_each_project_lists_what_it_may_see(cloud, clients, images):
    def names(role):
        return sorted(row["name"] for row in clients[role].get(BASE).json()["results"])

    assert names("member") == ["alpha-disk", "alpha-new", "alpha-shared", "public-disk"]
    assert names("other") == ["public-disk"]
    # By id any project; by name only the projects the caller sees (a cloud admin sees every one).
    response = clients["member"].post(
        url(images.shared, "members/"), {"project": str(cloud.other_project.pk)}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["project_name"] == "beta"
    response = clients["admin"].post(
        url(images.shared, "members/"), {"project": cloud.admin_project.name}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "pending"
    assert names("other") == ["public-disk"]  # offered, not accepted: not in beta's catalogue yet
    response = clients["other"].put(
        url(images.shared, f"members/{cloud.other_project.pk}/"), {"status": "accepted"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert names("other") == ["alpha-shared", "public-disk"]
    assert b"".join(clients["other"].get(f"{BASE}{images.shared.pk}/file").streaming_content) == DATA
    assert (
        clients["member"].delete(url(images.shared, f"members/{cloud.other_project.pk}/")).status_code == 204
    )
    assert names("other") == ["public-disk"]
    assert clients["other"].get(url(images.shared)).status_code == 404


def test_image_fields(cloud, clients, images):
    body = clients["member"].get(url(images.private)).json()
    assert body == {
        "id": str(images.private.pk),
        "name": "alpha-disk",
        "status": "active",
        "visibility": "private",
        "disk_format": "qcow2",
        "container_format": "bare",
        "size": len(DATA),
        "checksum": sha256(DATA),
        "min_disk": 0,
        "min_ram": 0,
        "protected": False,
        "properties": {},
        "project": str(cloud.project.pk),
        "owner": str(cloud.member.pk),
        "file": f"/api/v1/compute/images/{images.private.pk}/file",
        "created": body["created"],
        "updated": body["updated"],
    }


def test_create_upload_download_round_trip(cloud, clients):
    client = clients["member"]
    response = client.post(
        BASE,
        {"name": "cirros", "disk_format": "qcow2", "min_ram": 64, "properties": {"os": "cirros"}},
        "json",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["status"], created["size"], created["checksum"]) == ("queued", None, "")
    image = Image.objects.get(pk=created["id"])
    response = put_file(client, image)
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["size"], response.json()["checksum"]) == (
        "active",
        len(DATA),
        sha256(DATA),
    )
    response = client.get(f"{BASE}{image.pk}/file")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == OCTET
    assert response["Content-Length"] == str(len(DATA))
    assert response["X-Image-Checksum-Sha256"] == sha256(DATA)
    assert 'filename="cirros.qcow2"' in response["Content-Disposition"]
    assert b"".join(response.streaming_content) == DATA


def test_upload_refusals(cloud, clients, images):
    client = clients["member"]
    response = put_file(client, images.queued, content_type="application/json")
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"
    response = put_file(client, images.queued, data=b"")
    assert response.status_code == 400
    assert error_of(response)["code"] == "length_required"
    assert Image.objects.get(pk=images.queued.pk).status == "queued"  # refused before it started
    response = put_file(client, images.private)
    assert response.status_code == 409
    assert "active" in error_of(response)["message"]
    response = client.get(f"{BASE}{images.queued.pk}/file")
    assert response.status_code == 409
    assert error_of(response)["code"] == "invalid_state"


def test_a_short_body_kills_the_image(cloud, clients, images):
    response = clients["member"].put(
        f"{BASE}{images.queued.pk}/file", data=b"abc", content_type=OCTET, CONTENT_LENGTH="10"
    )
    assert response.status_code == 400, response.content
    # Django's test client refuses to read past the body; a real server hands over a short one.
    assert error_of(response)["code"] in ("size_mismatch", "upload_interrupted")
    assert Image.objects.get(pk=images.queued.pk).status == "killed"


def test_protected_image_is_not_deleted(cloud, clients, images):
    client = clients["member"]
    assert client.patch(url(images.private), {"protected": True}, format="json").status_code == 200
    response = client.delete(url(images.private))
    assert response.status_code == 409
    assert error_of(response)["message"].startswith("Image alpha-disk is protected")
    client.patch(url(images.private), {"protected": False}, format="json")
    assert client.delete(url(images.private)).status_code == 204
    assert client.get(url(images.private)).status_code == 404
    assert Image.objects.get(pk=images.private.pk).status == "deleted"


BAD_CREATES = [
    {},
    {"name": "x"},
    {"name": "x", "disk_format": "vmdk"},
    {"name": 7, "disk_format": "raw"},
    {"name": "", "disk_format": "raw"},
    {"name": "x" * 300, "disk_format": "raw"},
    {"name": "x", "disk_format": "raw", "min_disk": -1},
    {"name": "x", "disk_format": "raw", "min_disk": "big"},
    {"name": "x", "disk_format": "raw", "min_ram": 10**12},
    {"name": "x", "disk_format": "raw", "protected": "maybe"},
    {"name": "x", "disk_format": "raw", "properties": "nope"},
    {"name": "x", "disk_format": "raw", "properties": {"k": 1}},
    {"name": "x", "disk_format": "raw", "properties": {"kernel_id": "123"}},
    {"name": "x", "disk_format": "raw", "visibility": "community"},
    {"name": "x", "disk_format": "aki"},
    {"name": "x", "disk_format": "raw", "status": "active"},
    {"name": "x", "disk_format": "raw", "checksum": "0" * 64},
    ["name", "x"],
]


@pytest.mark.parametrize("body", BAD_CREATES, ids=[str(i) for i in range(len(BAD_CREATES))])
def test_bad_creates_are_400(cloud, clients, body):
    response = clients["member"].post(BASE, body, format="json")
    assert response.status_code == 400, response.content
    error_of(response)
    assert not Image.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"disk_format": "raw"},
        {"size": 5},
        {"min_disk": -2},
        {"visibility": 3},
        {"properties": {"kernel_id": "00000000-0000-0000-0000-000000000000"}},
        {"name": None},
    ],
)
def test_bad_updates_are_400(cloud, clients, images, body):
    response = clients["member"].patch(url(images.private), body, format="json")
    assert response.status_code == 400, response.content
    error_of(response)


def test_malformed_ids_and_projects(cloud, clients, images):
    client = clients["member"]
    assert client.get(f"{BASE}not-an-id/").status_code == 404
    assert client.get(f"{BASE}{'a' * 32}/file").status_code == 404
    for project in ("no-such-project", "", "00000000-0000-0000-0000-000000000000", "beta"):
        # beta exists, but by name a member only finds the projects it belongs to
        response = client.post(url(images.shared, "members/"), {"project": project}, format="json")
        assert response.status_code == 400, (project, response.content)
        error_of(response)
    response = client.post(url(images.shared, "members/"), {"project": 5}, format="json")
    assert response.status_code == 400
    response = client.post(url(images.private, "members/"), {"project": str(cloud.other_project.pk)}, "json")
    assert response.status_code == 409
    assert error_of(response)["code"] == "not_shared"
    response = client.delete(url(images.shared, f"members/{'f' * 32}/"))
    assert response.status_code == 404
    error_of(response)


# --- the host-facing signed download --------------------------------------------------------------


def data_path(image) -> str:
    return urllib.parse.urlsplit(services.image_fetch_url(image)).path


def test_signed_url_needs_no_credentials(cloud, images):
    from rest_framework.test import APIClient

    response = APIClient().get(data_path(images.private))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == DATA


def test_signed_url_refusals(cloud, images, monkeypatch):
    from rest_framework.test import APIClient

    anonymous = APIClient()
    path = data_path(images.private)
    tampered = path[:-3] + ("xyz" if not path.endswith("xyz") else "abc")
    response = anonymous.get(tampered)
    assert response.status_code == 403
    assert error_of(response)["code"] == "bad_signature"
    assert anonymous.get("/api/v1/compute/image-data/not%20a%20token").status_code == 404

    class Old:
        @staticmethod
        def time():
            return time.time() - django_settings.ZENITH_IMAGE_URL_TTL - 1

    monkeypatch.setattr(signing, "time", Old)
    old = data_path(images.private)
    monkeypatch.undo()
    response = anonymous.get(old)
    assert response.status_code == 403
    assert error_of(response)["code"] == "url_expired"

    Image.objects.filter(pk=images.public.pk).update(status="killed")
    response = anonymous.get(data_path(images.public))
    assert response.status_code == 409
    error_of(response)
    path = data_path(images.private)
    services.delete_image(cloud.ctx(cloud.member), images.private)
    response = anonymous.get(path)
    assert response.status_code == 404
    error_of(response)


# --- query counts ---------------------------------------------------------------------------------

API_LIST_QUERIES = 4  # token, caller's roles, COUNT, page
API_DETAIL_QUERIES = 3  # token, caller's roles, the row
_names = itertools.count()


def more_images(cloud, n):
    """Images of every visibility the member sees: public, alpha's own, beta's shared with alpha."""
    admin, other = cloud.ctx(cloud.admin), cloud.ctx(cloud.other_member)
    for _ in range(n // 3 + 1):
        services.create_image(admin, name=f"pub-{next(_names)}", disk_format="raw", visibility="public")
        services.create_image(cloud.ctx(cloud.member), name=f"own-{next(_names)}", disk_format="raw")
        shared = services.create_image(
            other, name=f"sh-{next(_names)}", disk_format="raw", visibility="shared"
        )
        share_accepted(other, shared, cloud.ctx(cloud.member))
        services.create_image(other, name=f"hidden-{next(_names)}", disk_format="raw")


@pytest.mark.parametrize("role", ["admin", "member"])
def test_images_list_queries(cloud, clients, django_assert_num_queries, role):
    services.create_image(cloud.ctx(cloud.admin), name="first", disk_format="raw", visibility="public")
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: clients[role].get(BASE),
        API_LIST_QUERIES,
        grow=lambda: more_images(cloud, MANY),
        rows=api_rows,
    )


def test_image_detail_queries(cloud, clients, images, django_assert_num_queries):
    clients["member"].get(url(images.shared))
    with django_assert_num_queries(API_DETAIL_QUERIES):
        assert clients["member"].get(url(images.shared)).status_code == 200
