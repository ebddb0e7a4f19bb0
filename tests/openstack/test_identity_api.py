"""Keystone v3 writes for cloud admins, with Django's test client: projects and users created,
changed and deleted, roles granted and revoked on projects, role assignments listed with names;
Keystone's error shape; members refused; a fixed query count for the assignment list."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from identity.models import ApiToken, Project, Role, RoleAssignment, User

from .test_views import issue, post

pytestmark = pytest.mark.django_db

KEYSTONE = "/identity/v3"
STRONG = "correct-horse-battery-staple-42"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def member(client, cloud):
    return {"X-Auth-Token": issue(client, cloud.member, cloud.project)}


@pytest.fixture
def admin(client, cloud):
    return {"X-Auth-Token": issue(client, cloud.admin, cloud.admin_project)}


def patch(client, path, body, headers):
    return client.patch(path, json.dumps(body), content_type="application/json", headers=headers)


def keystone_error(response, status: int) -> str:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == status and error["title"]
    return error["message"]


def test_projects_created_changed_deleted(client, cloud, admin, member):
    created = post(
        client,
        f"{KEYSTONE}/projects",
        {"project": {"name": "gamma", "description": "g", "enabled": True, "domain_id": "default"}},
        **admin,
    )
    assert created.status_code == 201, created.content
    body = created.json()["project"]
    assert (body["name"], body["description"], body["enabled"], body["domain_id"]) == (
        "gamma",
        "g",
        True,
        "default",
    )
    path = f"{KEYSTONE}/projects/{body['id']}"
    changed = patch(client, path, {"project": {"name": "gamma2", "enabled": False}}, admin)
    assert changed.status_code == 200 and changed.json()["project"]["name"] == "gamma2"
    assert Project.objects.get(pk=body["id"]).enabled is False
    assert "already exists" in keystone_error(
        post(client, f"{KEYSTONE}/projects", {"project": {"name": "alpha"}}, **admin), 409
    )
    keystone_error(post(client, f"{KEYSTONE}/projects", {"project": {"name": "delta"}}, **member), 403)
    keystone_error(patch(client, path, {"project": {"name": "x"}}, member), 404)  # not theirs to see
    for bad in (
        {"name": 5},
        {},
        {"name": "d", "domain_id": "other"},
        {"name": "d", "parent_id": body["id"]},
        {"name": "d", "tags": ["t"]},
        {"name": "d", "is_domain": True},
        {"name": "d", "enabled": "yes"},
    ):
        keystone_error(post(client, f"{KEYSTONE}/projects", {"project": bad}, **admin), 400)
    assert client.delete(path, headers=admin).status_code == 204
    keystone_error(client.get(path, headers=admin), 404)
    busy = f"{KEYSTONE}/projects/{cloud.admin_project.pk}"
    keystone_error(client.delete(busy, headers=admin), 409)


def test_users_created_changed_deleted(client, cloud, admin, member):
    body = {
        "user": {
            "name": "carol",
            "password": STRONG,
            "email": "c@example.org",
            "enabled": True,
            "default_project_id": str(cloud.project.pk),
            "domain_id": "default",
        }
    }
    created = post(client, f"{KEYSTONE}/users", body, **admin)
    assert created.status_code == 201, created.content
    row = created.json()["user"]
    assert (row["name"], row["email"], row["enabled"], row["default_project_id"]) == (
        "carol",
        "c@example.org",
        True,
        str(cloud.project.pk),
    )
    user = User.objects.get(pk=row["id"])
    assert user.check_password(STRONG) and user.default_project == cloud.project
    path = f"{KEYSTONE}/users/{row['id']}"
    changed = patch(client, path, {"user": {"email": "new@example.org", "enabled": False}}, admin)
    assert changed.status_code == 200 and changed.json()["user"]["enabled"] is False
    assert User.objects.get(pk=row["id"]).is_active is False
    keystone_error(patch(client, path, {"user": {"name": "caroline"}}, admin), 400)
    keystone_error(
        post(client, f"{KEYSTONE}/users", {"user": {"name": "carol", "password": STRONG}}, **admin), 409
    )
    keystone_error(
        post(client, f"{KEYSTONE}/users", {"user": {"name": "dave", "password": "x"}}, **admin), 400
    )
    keystone_error(post(client, f"{KEYSTONE}/users", {"user": {"name": "dave"}}, **admin), 400)
    keystone_error(
        post(
            client,
            f"{KEYSTONE}/users",
            {"user": {"name": "dave", "password": STRONG, "default_project_id": "nope"}},
            **admin,
        ),
        400,
    )
    keystone_error(
        post(client, f"{KEYSTONE}/users", {"user": {"name": "dave", "password": STRONG}}, **member), 403
    )
    assert not User.objects.filter(username="dave").exists()
    assert client.delete(path, headers=admin).status_code == 204
    keystone_error(client.delete(path, headers=admin), 404)
    keystone_error(client.delete(f"{KEYSTONE}/users/{cloud.admin.pk}", headers=admin), 409)  # yourself


def test_role_grants_and_assignments(client, cloud, admin, member):
    reader = Role.objects.get(name="reader")
    grant = f"{KEYSTONE}/projects/{cloud.other_project.pk}/users/{cloud.member.pk}/roles/{reader.pk}"
    keystone_error(client.get(grant, headers=admin), 404)
    assert client.put(grant, headers=admin).status_code == 204
    assert client.put(grant, headers=admin).status_code == 204  # idempotent, as Keystone's
    assert (
        client.get(grant, headers=admin).status_code == 204
        and client.head(grant, headers=admin).status_code == 204
    )
    assert RoleAssignment.objects.filter(user=cloud.member, project=cloud.other_project, role=reader).exists()
    roles = client.get(
        f"{KEYSTONE}/projects/{cloud.other_project.pk}/users/{cloud.member.pk}/roles", headers=admin
    )
    assert [r["name"] for r in roles.json()["roles"]] == ["reader"]
    assert client.get(f"{KEYSTONE}/roles/{reader.pk}", headers=admin).json()["role"]["name"] == "reader"
    keystone_error(client.get(f"{KEYSTONE}/roles/reader", headers=admin), 404)  # then ?name=
    keystone_error(client.put(grant, headers=member), 403)  # members grant nothing

    query = f"user.id={cloud.member.pk}&scope.project.id={cloud.other_project.pk}&include_names=True"
    listed = client.get(f"{KEYSTONE}/role_assignments?{query}", headers=admin).json()["role_assignments"]
    assert listed == [
        {
            "user": {
                "id": str(cloud.member.pk),
                "name": "alice",
                "domain": {"id": "default", "name": "Default"},
            },
            "role": {"id": str(reader.pk), "name": "reader"},
            "scope": {
                "project": {
                    "id": str(cloud.other_project.pk),
                    "name": "beta",
                    "domain": {"id": "default", "name": "Default"},
                }
            },
            "links": listed[0]["links"],
        }
    ]

    # A token for that project works until the last role on it goes.
    token = issue(client, cloud.member, cloud.other_project)
    assert client.delete(grant, headers=admin).status_code == 204
    keystone_error(client.delete(grant, headers=admin), 404)
    assert ApiToken.objects.get(user=cloud.member, project=cloud.other_project).revoked_at is not None
    keystone_error(client.get(f"{KEYSTONE}/projects", headers={"X-Auth-Token": token}), 401)
    for bad in (
        f"{KEYSTONE}/projects/nope/users/{cloud.member.pk}/roles/{reader.pk}",
        f"{KEYSTONE}/projects/{cloud.project.pk}/users/nope/roles/{reader.pk}",
        f"{KEYSTONE}/projects/{cloud.project.pk}/users/{cloud.member.pk}/roles/nope",
    ):
        keystone_error(client.put(bad, headers=admin), 404)


def test_role_assignment_list_has_a_fixed_query_count(client, cloud, admin):
    member = Role.objects.get(name="member")

    def count() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"{KEYSTONE}/role_assignments?include_names=1", headers=admin)
        return len(response.json()["role_assignments"]), len(queries)

    few, few_queries = count()
    for i in range(5):
        project = Project.objects.create(name=f"p-{i}")
        RoleAssignment.objects.create(user=cloud.member, project=project, role=member)
    many, many_queries = count()
    assert many == few + 5 and few_queries == many_queries <= 4


def test_the_default_domain_by_id_and_name(client, cloud, member):
    assert client.get(f"{KEYSTONE}/domains/default", headers=member).json()["domain"]["name"] == "Default"
    keystone_error(client.get(f"{KEYSTONE}/domains/Default", headers=member), 404)
    assert [
        d["id"] for d in client.get(f"{KEYSTONE}/domains?name=Default", headers=member).json()["domains"]
    ] == ["default"]
    assert client.get(f"{KEYSTONE}/domains?name=Other", headers=member).json()["domains"] == []


def test_user_project_and_grant_lists_have_fixed_query_counts(client, cloud, admin):
    paths = (
        f"{KEYSTONE}/users",
        f"{KEYSTONE}/projects",
        f"{KEYSTONE}/projects/{cloud.project.pk}/users/{cloud.member.pk}/roles",
    )

    def counts() -> list[int]:
        result = []
        for path in paths:
            with CaptureQueriesContext(connection) as queries:
                assert client.get(path, headers=admin).status_code == 200
            result.append(len(queries))
        return result

    few = counts()
    for i in range(4):
        User.objects.create(username=f"u-{i}")
        Project.objects.create(name=f"p-{i}")
    RoleAssignment.objects.create(
        user=cloud.member, project=cloud.project, role=Role.objects.get(name="admin")
    )
    assert counts() == few and max(few) <= 5  # token, roles, then the project and user, the rows
