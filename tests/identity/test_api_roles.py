"""Every identity endpoint, per role: list, retrieve, create, update, delete (a declarative table).

Roles: ``admin`` (cloud admin, token on the admin project), ``member`` and ``reader`` of project
alpha, ``other`` (member of project beta) and ``anonymous``. The objects acted on belong to alpha
and its member alice (see the ``targets`` fixture).
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from identity.models import KeyPair, Project, User

from .helpers import error_of

ROLES = ("admin", "member", "reader", "other", "anonymous")
BASE = "/api/v1/identity/"


def per_role(admin: int, member: int, reader: int, other: int, anonymous: int = 401) -> dict[str, int]:
    return dict(zip(ROLES, (admin, member, reader, other, anonymous), strict=True))


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    target: Callable  # Targets -> the object the detail operations act on
    create_body: Callable = lambda t: {}
    update_body: dict = field(default_factory=dict)
    update_method: str = "patch"
    expect: dict[str, dict[str, int]] = field(default_factory=dict)

    def detail(self, targets) -> str:
        return f"{BASE}{self.path}{self.target(targets).pk}/"

    def call(self, op: str, client, targets):
        if op == "list":
            return client.get(f"{BASE}{self.path}")
        if op == "retrieve":
            return client.get(self.detail(targets))
        if op == "create":
            return client.post(f"{BASE}{self.path}", self.create_body(targets), format="json")
        if op == "update":
            return getattr(client, self.update_method)(self.detail(targets), self.update_body, format="json")
        if op == "delete":
            return client.delete(self.detail(targets))
        raise AssertionError(op)


ENDPOINTS = [
    Endpoint(
        "projects",
        "projects/",
        target=lambda t: t.project,
        create_body=lambda t: {"name": "gamma", "description": "new"},
        update_body={"description": "changed"},
        expect={
            "list": per_role(200, 200, 200, 200),
            "retrieve": per_role(200, 200, 200, 404),
            "create": per_role(201, 403, 403, 403),
            "update": per_role(200, 403, 403, 404),
            "delete": per_role(204, 403, 403, 404),
        },
    ),
    Endpoint(
        "users",
        "users/",
        target=lambda t: t.cloud.member,
        create_body=lambda t: {"username": "carol", "password": "long-enough-pw", "email": "c@example.test"},
        update_body={"email": "changed@example.test"},
        expect={
            "list": per_role(200, 200, 200, 200),
            "retrieve": per_role(200, 200, 404, 404),
            "create": per_role(201, 403, 403, 403),
            "update": per_role(200, 403, 404, 404),
            "delete": per_role(204, 403, 404, 404),
        },
    ),
    Endpoint(
        "roles",
        "roles/",
        target=lambda t: t.member_role,
        create_body=lambda t: {"name": "auditor"},
        update_body={"description": "changed"},
        expect={
            "list": per_role(200, 200, 200, 200),
            "retrieve": per_role(200, 200, 200, 200),
            "create": per_role(405, 405, 405, 405),
            "update": per_role(405, 405, 405, 405),
            "delete": per_role(405, 405, 405, 405),
        },
    ),
    Endpoint(
        "role-assignments",
        "role-assignments/",
        target=lambda t: t.assignment,
        create_body=lambda t: {
            "user": str(t.cloud.other_member.pk),
            "project": str(t.project.pk),
            "role": "reader",
        },
        update_body={"role": "reader"},
        expect={
            "list": per_role(200, 200, 200, 200),
            "retrieve": per_role(200, 200, 404, 404),
            "create": per_role(201, 403, 403, 403),
            "update": per_role(405, 405, 405, 405),
            "delete": per_role(204, 403, 404, 404),
        },
    ),
    Endpoint(
        "keypairs",
        "keypairs/",
        target=lambda t: t.keypair,  # key pairs belong to a user: even a cloud admin sees only their own
        create_body=lambda t: {"name": "new-key"},
        update_body={"name": "renamed"},
        expect={
            "list": per_role(200, 200, 200, 200),
            "retrieve": per_role(404, 200, 404, 404),
            "create": per_role(201, 201, 403, 201),
            "update": per_role(405, 405, 405, 405),
            "delete": per_role(404, 204, 404, 404),
        },
    ),
]


@dataclass(frozen=True)
class QuotasEndpoint(Endpoint):
    """``projects/{id}/quotas/``: GET shows limit and usage, PUT (admin) sets limits."""

    def detail(self, targets) -> str:
        return f"{BASE}projects/{targets.project.pk}/quotas/"


ENDPOINTS.append(
    QuotasEndpoint(
        "quotas",
        "projects/{id}/quotas/",
        target=lambda t: t.project,
        update_body={"instances": 3, "key_pairs": 7},
        update_method="put",
        expect={
            "retrieve": per_role(200, 200, 200, 404),
            "update": per_role(200, 403, 403, 404),
        },
    )
)

CASES = [
    pytest.param(endpoint, op, role, status, id=f"{endpoint.name}-{op}-{role}")
    for endpoint in ENDPOINTS
    for op, statuses in endpoint.expect.items()
    for role, status in statuses.items()
]


@pytest.mark.parametrize("endpoint, op, role, status", CASES)
def test_status_per_role(targets, clients, endpoint, op, role, status):
    response = endpoint.call(op, clients[role], targets)
    assert response.status_code == status, response.content
    if status >= 400:
        error = error_of(response)
        if status == 404:
            # Nothing about the object leaks: not its name, not its owner.
            for secret in ("alpha", "alice", "alice-laptop"):
                assert secret not in error["message"]


# --- what a successful call did -------------------------------------------------------------------


def test_admin_creates_project_over_the_api(targets, clients):
    response = clients["admin"].post(f"{BASE}projects/", {"name": "gamma", "description": "g"}, format="json")
    body = response.json()
    assert set(body) == {"id", "name", "description", "enabled", "created"}
    assert Project.objects.get(pk=body["id"]).name == "gamma"


def test_admin_updates_and_deletes_project_over_the_api(targets, clients):
    url = f"{BASE}projects/{targets.project.pk}/"
    assert (
        clients["admin"].patch(url, {"description": "changed"}, format="json").json()["description"]
        == "changed"
    )
    response = clients["admin"].put(url, {"name": "alpha-2", "enabled": False}, format="json")
    assert response.status_code == 200, response.content
    targets.project.refresh_from_db()
    assert (targets.project.name, targets.project.enabled) == ("alpha-2", False)
    assert clients["admin"].delete(url).status_code == 204
    assert not Project.objects.filter(pk=targets.project.pk).exists()


def test_member_and_reader_see_their_project_and_its_quotas_but_do_not_change_them(targets, clients):
    for role in ("member", "reader"):
        assert clients[role].get(f"{BASE}projects/{targets.project.pk}/").json()["name"] == "alpha"
    targets.project.refresh_from_db()
    assert targets.project.description == "test project"


def test_admin_creates_user_who_can_then_get_a_token(targets, clients):
    body = {"username": "carol", "password": "long-enough-pw", "email": "c@example.test", "is_admin": False}
    response = clients["admin"].post(f"{BASE}users/", body, format="json")
    assert response.status_code == 201
    out = response.json()
    assert "password" not in out
    assert out["username"] == "carol" and out["is_admin"] is False and out["default_project"] is None
    assert User.objects.get(username="carol").check_password("long-enough-pw")


def test_admin_cannot_delete_or_disable_themselves_over_the_api(targets, clients):
    url = f"{BASE}users/{targets.cloud.admin.pk}/"
    assert error_of(clients["admin"].delete(url))["code"] == "conflict"
    assert clients["admin"].patch(url, {"is_active": False}, format="json").status_code == 409
    assert User.objects.get(pk=targets.cloud.admin.pk).is_active


def test_usernames_cannot_be_changed(targets, clients):
    url = f"{BASE}users/{targets.cloud.member.pk}/"
    response = clients["admin"].patch(url, {"username": "alicia"}, format="json")
    assert response.status_code == 409
    assert User.objects.filter(username="alice").exists()


def test_admin_assigns_role_and_the_user_sees_the_project(targets, clients):
    body = {"user": str(targets.cloud.other_member.pk), "project": str(targets.project.pk), "role": "reader"}
    response = clients["admin"].post(f"{BASE}role-assignments/", body, format="json")
    assert response.status_code == 201
    out = response.json()
    assert (out["user_name"], out["project_name"], out["role"]) == ("bob", "alpha", "reader")
    # bob's token is for beta, but the project list shows every project he holds a role on.
    names = [p["name"] for p in clients["other"].get(f"{BASE}projects/").json()["results"]]
    assert names == ["alpha", "beta"]
    duplicate = clients["admin"].post(f"{BASE}role-assignments/", body, format="json")
    assert duplicate.status_code == 409
    assert error_of(duplicate)["code"] == "conflict"


def test_revoking_over_the_api_revokes_the_users_token(targets, clients):
    url = f"{BASE}role-assignments/{targets.assignment.pk}/"
    assert clients["admin"].delete(url).status_code == 204
    response = clients["member"].get(f"{BASE}projects/")
    assert response.status_code == 401
    assert error_of(response)["code"] == "token_revoked"


def test_member_generates_and_imports_key_pairs(targets, clients, ed25519_public_key):
    generated = clients["member"].post(f"{BASE}keypairs/", {"name": "gen", "key_type": "rsa"}, format="json")
    assert generated.status_code == 201
    body = generated.json()
    assert body["private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert body["public_key"].startswith("ssh-rsa ")
    # The private key is returned once: neither the detail nor the list has it.
    detail = clients["member"].get(f"{BASE}keypairs/{body['id']}/").json()
    assert "private_key" not in detail
    listed = clients["member"].get(f"{BASE}keypairs/").json()["results"]
    assert all("private_key" not in row for row in listed)

    imported = clients["member"].post(
        f"{BASE}keypairs/", {"name": "imp", "public_key": ed25519_public_key}, format="json"
    )
    assert imported.status_code == 201
    assert imported.json()["private_key"] is None
    assert imported.json()["public_key"] == ed25519_public_key


def test_member_deletes_own_key_pair(targets, clients):
    assert clients["member"].delete(f"{BASE}keypairs/{targets.keypair.pk}/").status_code == 204
    assert not KeyPair.objects.filter(pk=targets.keypair.pk).exists()


def test_quotas_show_limit_usage_and_remaining(targets, clients):
    response = clients["member"].get(f"{BASE}projects/{targets.project.pk}/quotas/")
    rows = {row["resource"]: row for row in response.json()}
    assert rows["key_pairs"] == {"resource": "key_pairs", "limit": 100, "in_use": 1, "remaining": 99}
    assert set(rows) >= {"instances", "cores", "ram", "volumes", "key_pairs", "security_group_rules"}


def test_admin_sets_quotas_and_members_see_them(targets, clients):
    url = f"{BASE}projects/{targets.project.pk}/quotas/"
    response = clients["admin"].put(url, {"instances": 3, "cores": -1}, format="json")
    rows = {row["resource"]: row for row in response.json()}
    assert rows["instances"]["limit"] == 3
    assert rows["cores"] == {"resource": "cores", "limit": -1, "in_use": 0, "remaining": None}
    seen = {row["resource"]: row["limit"] for row in clients["reader"].get(url).json()}
    assert seen["instances"] == 3 and seen["cores"] == -1


def test_member_put_of_quotas_changes_nothing(targets, clients):
    url = f"{BASE}projects/{targets.project.pk}/quotas/"
    assert clients["member"].put(url, {"key_pairs": 1000}, format="json").status_code == 403
    limits = {row["resource"]: row["limit"] for row in clients["member"].get(url).json()}
    assert limits["key_pairs"] == 100


def test_key_pair_quota_over_the_api_is_413_naming_the_resource(targets, clients):
    url = f"{BASE}projects/{targets.project.pk}/quotas/"
    assert clients["admin"].put(url, {"key_pairs": 2}, format="json").status_code == 200
    assert clients["member"].post(f"{BASE}keypairs/", {"name": "two"}, format="json").status_code == 201
    response = clients["member"].post(f"{BASE}keypairs/", {"name": "three"}, format="json")
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "quota_exceeded"
    assert "key_pairs" in error["message"]


# --- lists show exactly what the caller may see ---------------------------------------------------


LIST_CONTENTS = {
    "projects": (
        "name",
        {
            "admin": ["admin", "alpha", "beta"],
            "member": ["alpha"],
            "reader": ["alpha"],
            "other": ["beta"],
        },
    ),
    "users": (
        "username",
        {
            "admin": ["alice", "bob", "cloudadmin", "rita"],
            "member": ["alice"],
            "reader": ["rita"],
            "other": ["bob"],
        },
    ),
    "role-assignments": (
        "user_name",
        {
            "admin": ["cloudadmin", "alice", "rita", "bob"],
            "member": ["alice"],
            "reader": ["rita"],
            "other": ["bob"],
        },
    ),
    "keypairs": ("name", {"admin": [], "member": ["alice-laptop"], "reader": [], "other": []}),
    "roles": (
        "name",
        {role: ["admin", "member", "reader"] for role in ("admin", "member", "reader", "other")},
    ),
}


@pytest.mark.parametrize(
    "path, role",
    [(path, role) for path, (_, by_role) in LIST_CONTENTS.items() for role in by_role],
)
def test_list_shows_exactly_the_visible_rows(targets, clients, path, role):
    key, by_role = LIST_CONTENTS[path]
    body = clients[role].get(f"{BASE}{path}/").json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert [row[key] for row in body["results"]] == by_role[role]
    assert body["count"] == len(by_role[role])


def test_role_assignments_filtered_by_another_project_show_nothing(targets, clients):
    response = clients["other"].get(f"{BASE}role-assignments/", {"project": str(targets.project.pk)})
    assert response.status_code == 200
    assert response.json()["results"] == []
    response = clients["other"].get(f"{BASE}role-assignments/", {"user": str(targets.cloud.member.pk)})
    assert response.json()["results"] == []


def test_projects_filter_by_name_is_scoped(targets, clients):
    assert clients["other"].get(f"{BASE}projects/", {"name": "alpha"}).json()["count"] == 0
    assert clients["member"].get(f"{BASE}projects/", {"name": "ALPHA"}).json()["count"] == 1


def test_pagination(targets, clients):
    body = clients["admin"].get(f"{BASE}projects/", {"limit": 2, "offset": 1}).json()
    assert body["count"] == 3
    assert [p["name"] for p in body["results"]] == ["alpha", "beta"]
    assert body["previous"] is not None and body["next"] is None
