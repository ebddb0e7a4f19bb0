"""Image v2 beyond the basics, with Django's test client: tags (create, PUT/DELETE, JSON patch) and
members over the consent-based sharing (pending until the member project accepts), in Glance's
shapes and plain-text errors, with fixed query counts for the lists."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from compute.models import Image, ImageMember
from tests.compute.instance_helpers import make_image

from .test_views import issue, post

pytestmark = pytest.mark.django_db

GLANCE = "/image/v2"
PATCH = "application/openstack-images-v2.1-json-patch"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def member(client, cloud):
    return {"X-Auth-Token": issue(client, cloud.member, cloud.project)}


@pytest.fixture
def other(client, cloud):
    return {"X-Auth-Token": issue(client, cloud.other_member, cloud.other_project)}


def patch(client, path, ops, headers):
    return client.patch(path, json.dumps(ops), content_type=PATCH, headers=headers)


def glance_error(response, status: int) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def test_tags(client, cloud, member, other):
    created = post(
        client, f"{GLANCE}/images", {"name": "tagged", "disk_format": "qcow2", "tags": ["a", "b"]}, **member
    )
    assert created.status_code == 201 and created.json()["tags"] == ["a", "b"]
    path = f"{GLANCE}/images/{created.json()['id']}"
    assert client.put(f"{path}/tags/c", headers=member).status_code == 204
    assert client.put(f"{path}/tags/c", headers=member).status_code == 204  # already there: no change
    assert client.delete(f"{path}/tags/a", headers=member).status_code == 204
    assert client.get(path, headers=member).json()["tags"] == ["b", "c"]
    assert "has no tag" in glance_error(client.delete(f"{path}/tags/a", headers=member), 404)
    assert patch(client, path, [{"op": "replace", "path": "/tags", "value": ["z"]}], member).json()[
        "tags"
    ] == ["z"]
    assert patch(client, path, [{"op": "remove", "path": "/tags"}], member).json()["tags"] == []
    assert Image.objects.get(pk=created.json()["id"]).tags == []

    glance_error(patch(client, path, [{"op": "add", "path": "/tags", "value": "x"}], member), 400)
    glance_error(patch(client, path, [{"op": "add", "path": "/tags", "value": [5]}], member), 400)
    glance_error(client.put(f"{path}/tags/{'x' * 300}", headers=member), 400)
    glance_error(client.put(f"{path}/tags/c", headers=other), 404)  # another project's image
    glance_error(post(client, f"{GLANCE}/images", {"name": "t", "tags": "x"}, **member), 400)
    assert not Image.objects.filter(name="t").exists()
    post(client, f"{GLANCE}/images", {"name": "two", "disk_format": "qcow2", "tags": ["x", "y"]}, **member)
    post(client, f"{GLANCE}/images", {"name": "one", "disk_format": "qcow2", "tags": ["x"]}, **member)

    def named(query):
        return sorted(
            i["name"] for i in client.get(f"{GLANCE}/images?{query}", headers=member).json()["images"]
        )

    assert named("tag=x") == ["one", "two"]
    assert named("tag=x&tag=y") == ["two"]
    assert named("tag=z") == []


def test_members_with_consent(client, cloud, member, other):
    image = make_image("shared-img", visibility=Image.SHARED, project=cloud.project)
    path = f"{GLANCE}/images/{image.pk}"
    them = str(cloud.other_project.pk)

    added = post(client, f"{path}/members", {"member": them}, **member)
    assert added.status_code == 200, added.content
    assert added.json() == {
        "image_id": str(image.pk),
        "member_id": them,
        "status": "pending",
        "created_at": added.json()["created_at"],
        "updated_at": added.json()["updated_at"],
        "schema": "/v2/schemas/member",
    }
    assert "already shared" in glance_error(post(client, f"{path}/members", {"member": them}, **member), 409)

    # Pending: the member sees it by id and among its pending offers, not in its catalogue.
    assert client.get(path, headers=other).status_code == 200
    assert client.get(f"{GLANCE}/images", headers=other).json()["images"] == []
    pending = client.get(f"{GLANCE}/images?member_status=pending", headers=other).json()["images"]
    assert [i["id"] for i in pending] == [str(image.pk)]
    assert client.get(f"{path}/members/{them}", headers=other).json()["status"] == "pending"

    # Only the member decides; the owner cannot.
    glance_error(
        client.put(
            f"{path}/members/{them}",
            json.dumps({"status": "accepted"}),
            content_type="application/json",
            headers=member,
        ),
        403,
    )
    accepted = client.put(
        f"{path}/members/{them}",
        json.dumps({"status": "accepted"}),
        content_type="application/json",
        headers=other,
    )
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    assert ImageMember.objects.get(image=image, project=cloud.other_project).status == "accepted"
    assert [i["id"] for i in client.get(f"{GLANCE}/images", headers=other).json()["images"]] == [
        str(image.pk)
    ]

    listed = client.get(f"{path}/members", headers=member).json()
    assert [(m["member_id"], m["status"]) for m in listed["members"]] == [(them, "accepted")]
    glance_error(client.get(f"{path}/members", headers=other), 403)  # the member sees its own only
    glance_error(client.delete(f"{path}/members/{them}", headers=other), 403)

    for body in ({"status": "maybe"}, {}, ["accepted"]):
        response = client.put(
            f"{path}/members/{them}", json.dumps(body), content_type="application/json", headers=other
        )
        glance_error(response, 400)
    glance_error(post(client, f"{path}/members", {"member": "nope"}, **member), 400)
    glance_error(post(client, f"{path}/members", {}, **member), 400)
    glance_error(client.get(f"{path}/members/nope", headers=member), 404)
    glance_error(client.get(f"{GLANCE}/images?member_status=maybe", headers=member), 400)

    assert client.delete(f"{path}/members/{them}", headers=member).status_code == 204
    glance_error(client.get(path, headers=other), 404)
    glance_error(client.delete(f"{path}/members/{them}", headers=member), 404)

    private = make_image("private-img", visibility=Image.PRIVATE, project=cloud.project)
    glance_error(post(client, f"{GLANCE}/images/{private.pk}/members", {"member": them}, **member), 409)


def test_image_and_member_lists_have_fixed_query_counts(client, cloud, member):
    image = make_image("shared-img", visibility=Image.SHARED, project=cloud.project, tags=["x"])

    def count(path) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path, headers=member).status_code == 200
        return len(queries)

    few = (count(f"{GLANCE}/images"), count(f"{GLANCE}/images/{image.pk}/members"))
    for i in range(5):
        make_image(f"more-{i}", tags=["a", "b"])
    from identity.models import Project

    for i in range(4):
        ImageMember.objects.create(image=image, project=Project.objects.create(name=f"p-{i}"))
    many = (count(f"{GLANCE}/images"), count(f"{GLANCE}/images/{image.pk}/members"))
    assert few == many and max(many) <= 4
