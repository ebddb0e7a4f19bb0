"""Cross-project isolation (404, never 403, never data), the one error shape, and bad input (never 500)."""

import pytest
from django.forms.models import model_to_dict

from identity.models import KeyPair, Project, Quota, RoleAssignment, User
from tests.factories import KeyPairFactory

from .helpers import error_of, make_operation

BASE = "/api/v1/identity/"
SECRETS = ("alpha", "alice", "alice-laptop", "rita")


def detail_requests(targets, operation):
    """(method, url, body) for every request that names one object of alpha or of its member."""
    project = f"{BASE}projects/{targets.project.pk}/"
    user = f"{BASE}users/{targets.cloud.member.pk}/"
    assignment = f"{BASE}role-assignments/{targets.assignment.pk}/"
    keypair = f"{BASE}keypairs/{targets.keypair.pk}/"
    return [
        ("get", project, None),
        ("put", project, {"name": "stolen", "description": "x", "enabled": True}),
        ("patch", project, {"description": "stolen"}),
        ("delete", project, None),
        ("get", f"{project}quotas/", None),
        ("put", f"{project}quotas/", {"instances": 0}),
        ("get", user, None),
        ("put", user, {"username": "alice", "email": "stolen@example.test"}),
        ("patch", user, {"email": "stolen@example.test", "password": "stolen-password"}),
        ("delete", user, None),
        ("get", assignment, None),
        ("delete", assignment, None),
        ("get", keypair, None),
        ("delete", keypair, None),
        ("get", f"/api/v1/operations/{operation.pk}/", None),
    ]


def snapshot(targets, operation):
    models = [
        targets.project,
        targets.cloud.member,
        targets.assignment,
        targets.keypair,
        operation,
    ]
    return [model_to_dict(type(obj).objects.get(pk=obj.pk)) for obj in models] + [
        list(Quota.objects.filter(project=targets.project).values())
    ]


@pytest.fixture
def alpha_operation(targets):
    return make_operation(targets.project, targets.cloud.member, message="alpha's work")


def test_another_projects_objects_are_404_for_every_method(targets, clients, alpha_operation):
    before = snapshot(targets, alpha_operation)
    for method, url, body in detail_requests(targets, alpha_operation):
        response = getattr(clients["other"], method)(url, body, format="json")
        assert response.status_code == 404, (method, url, response.content)
        error = error_of(response)
        assert error["code"] == "not_found"
        for secret in SECRETS:
            assert secret not in response.content.decode(), (method, url)
    assert snapshot(targets, alpha_operation) == before
    assert User.objects.get(pk=targets.cloud.member.pk).check_password("correct-horse-battery")


def test_isolation_holds_the_other_way_round(targets, clients):
    beta = targets.cloud.other_project
    bob = targets.cloud.other_member
    bob_key = KeyPairFactory(user=bob, name="bob-key")
    bob_assignment = RoleAssignment.objects.get(user=bob, project=beta)
    beta_op = make_operation(beta, bob)
    for role in ("member", "reader"):
        for url in (
            f"{BASE}projects/{beta.pk}/",
            f"{BASE}projects/{beta.pk}/quotas/",
            f"{BASE}users/{bob.pk}/",
            f"{BASE}role-assignments/{bob_assignment.pk}/",
            f"{BASE}keypairs/{bob_key.pk}/",
            f"/api/v1/operations/{beta_op.pk}/",
        ):
            response = clients[role].get(url)
            assert response.status_code == 404, (role, url)
            assert "bob" not in response.content.decode()
            assert "beta" not in response.content.decode()


def test_other_projects_rows_never_appear_in_lists(targets, clients, alpha_operation):
    for path in ("projects/", "users/", "role-assignments/", "keypairs/"):
        content = clients["other"].get(f"{BASE}{path}").content.decode()
        for secret in SECRETS:
            assert secret not in content, (path, secret)
    operations = clients["other"].get("/api/v1/operations/").json()
    assert operations["results"] == []


@pytest.mark.parametrize("user", ["real", "unknown", "garbage"])
def test_non_admin_role_assignment_posts_cannot_probe_which_ids_exist(targets, clients, user):
    user_id = {
        "real": str(targets.cloud.other_member.pk),
        "unknown": "00000000-0000-0000-0000-000000000000",
        "garbage": "not-a-uuid",
    }[user]
    body = {"user": user_id, "project": str(targets.cloud.other_project.pk), "role": "admin"}
    response = clients["member"].post(f"{BASE}role-assignments/", body, format="json")
    assert response.status_code == 403
    assert error_of(response)["code"] == "policy_denied"


def test_role_assignment_filters_cannot_probe_which_ids_exist(targets, clients):
    url = f"{BASE}role-assignments/"
    for ref in (str(targets.cloud.other_member.pk), "00000000-0000-0000-0000-000000000000"):
        response = clients["member"].get(url, {"user": ref})
        assert response.status_code == 200
        assert response.json()["results"] == []
    for ref in (str(targets.cloud.other_project.pk), "00000000-0000-0000-0000-000000000000"):
        response = clients["member"].get(url, {"project": ref})
        assert response.status_code == 200
        assert response.json()["results"] == []


def test_role_assignment_filters_work_for_admins(targets, clients):
    url = f"{BASE}role-assignments/"
    by_project = clients["admin"].get(url, {"project": str(targets.project.pk)}).json()["results"]
    assert sorted(row["user_name"] for row in by_project) == ["alice", "rita"]
    by_user = clients["admin"].get(url, {"user": str(targets.cloud.member.pk), "role": "member"}).json()
    assert [row["project_name"] for row in by_user["results"]] == ["alpha"]


def test_admin_sees_another_users_key_pair_as_404_too(targets, clients):
    # Key pairs belong to their user; a cloud admin has no business reading someone's keys.
    response = clients["admin"].get(f"{BASE}keypairs/{targets.keypair.pk}/")
    assert response.status_code == 404
    assert "alice-laptop" not in response.content.decode()


# --- the error shape -----------------------------------------------------------------------------


def test_every_kind_of_error_has_the_same_shape(targets, clients):
    project = f"{BASE}projects/{targets.project.pk}/"
    cases = [
        (clients["anonymous"].get(f"{BASE}projects/"), 401),
        (clients["reader"].post(f"{BASE}keypairs/", {"name": "k"}, format="json"), 403),
        (clients["other"].get(project), 404),
        (clients["member"].get(f"{BASE}nothing-here/"), 404),
        (clients["member"].put(f"{BASE}keypairs/{targets.keypair.pk}/", {}, format="json"), 405),
        (clients["admin"].post(f"{BASE}projects/", {"name": "alpha"}, format="json"), 409),
        (clients["admin"].post(f"{BASE}projects/", {}, format="json"), 400),
        (clients["member"].post(f"{BASE}keypairs/", {"name": "alice-laptop"}, format="json"), 409),
        (clients["member"].post(f"{BASE}keypairs/", {"name": "k", "key_type": "dsa"}, format="json"), 400),
    ]
    for response, status in cases:
        assert response.status_code == status, response.content
        error_of(response)


def test_validation_errors_carry_field_details(targets, clients):
    response = clients["admin"].post(f"{BASE}projects/", {"enabled": "perhaps"}, format="json")
    error = error_of(response)
    assert error["code"] == "invalid"
    assert "name" in error["details"] and "enabled" in error["details"]
    assert "name:" in error["message"]


# --- bad input: 400 or 404, never 500 -------------------------------------------------------------


def malformed_json(client, url, method="post"):
    return getattr(client, method)(url, data='{"name": "x",', content_type="application/json")


@pytest.mark.parametrize(
    "role, method, path",
    [
        ("admin", "post", "projects/"),
        ("admin", "patch", "projects/{project}/"),
        ("admin", "put", "projects/{project}/quotas/"),
        ("admin", "post", "users/"),
        ("admin", "post", "role-assignments/"),
        ("member", "post", "keypairs/"),
    ],
)
def test_malformed_json_is_400(targets, clients, role, method, path):
    url = BASE + path.format(project=targets.project.pk)
    response = malformed_json(clients[role], url, method)
    assert response.status_code == 400, response.content
    assert error_of(response)["code"] == "parse_error"


def test_body_that_is_not_json_at_all_is_415_or_400(targets, clients):
    response = clients["admin"].generic("POST", f"{BASE}projects/", "name=gamma", content_type="text/csv")
    assert response.status_code == 415
    error_of(response)


@pytest.mark.parametrize(
    "role, method, path, body",
    [
        ("admin", "post", "projects/", {"name": ["gamma"]}),
        ("admin", "post", "projects/", {"name": {"a": 1}}),
        ("admin", "post", "projects/", {"name": "gamma", "enabled": "perhaps"}),
        ("admin", "post", "projects/", {"name": "gamma", "description": ["x"]}),
        ("admin", "post", "projects/", {"name": "g" * 65}),
        ("admin", "post", "projects/", {"name": ""}),
        ("admin", "post", "projects/", {"name": "bad/name"}),
        ("admin", "post", "projects/", {"name": "nul\x00byte"}),
        ("admin", "post", "projects/", ["not", "an", "object"]),
        ("admin", "patch", "projects/{project}/", {"enabled": "sometimes"}),
        ("admin", "patch", "projects/{project}/", {"name": None}),
        ("admin", "post", "users/", {"username": "carol"}),
        ("admin", "post", "users/", {"username": "carol", "password": "short"}),
        ("admin", "post", "users/", {"username": "carol", "password": "long-enough", "email": "nope"}),
        ("admin", "post", "users/", {"username": "carol", "password": "long-enough", "is_admin": "sure"}),
        ("admin", "post", "users/", {"username": "c" * 151, "password": "long-enough"}),
        ("admin", "post", "users/", {"username": 5, "password": ["long-enough"]}),
        ("admin", "patch", "users/{member}/", {"is_active": "maybe"}),
        ("admin", "patch", "users/{member}/", {"password": "short"}),
        (
            "admin",
            "post",
            "role-assignments/",
            {"user": "not-a-uuid", "project": "{project}", "role": "reader"},
        ),
        (
            "admin",
            "post",
            "role-assignments/",
            {"user": "{member}", "project": "{project}", "role": "emperor"},
        ),
        ("admin", "post", "role-assignments/", {"user": "{member}", "project": 42, "role": "reader"}),
        ("admin", "post", "role-assignments/", {"user": "{member}"}),
        ("member", "post", "keypairs/", {}),
        ("member", "post", "keypairs/", {"name": ""}),
        ("member", "post", "keypairs/", {"name": "k" * 256}),
        ("member", "post", "keypairs/", {"name": "bad/name"}),
        ("member", "post", "keypairs/", {"name": "k", "key_type": "dsa"}),
        ("member", "post", "keypairs/", {"name": "k", "public_key": "ssh-ed25519 garbage"}),
        ("member", "post", "keypairs/", {"name": "k", "public_key": "x" * 20000}),
        ("member", "post", "keypairs/", {"name": "k", "public_key": ["ssh-ed25519"]}),
        ("member", "post", "keypairs/", {"name": "k", "public_key": "ssh-ed25519 AAAA\x00"}),
        ("admin", "put", "projects/{project}/quotas/", {"unicorns": 5}),
        ("admin", "put", "projects/{project}/quotas/", {"instances": "ten"}),
        ("admin", "put", "projects/{project}/quotas/", {"instances": -2}),
        ("admin", "put", "projects/{project}/quotas/", {"instances": 2.5}),
        ("admin", "put", "projects/{project}/quotas/", {"instances": True}),
        ("admin", "put", "projects/{project}/quotas/", {"instances": None}),
        ("admin", "put", "projects/{project}/quotas/", {"instances": 10**20}),
        ("admin", "put", "projects/{project}/quotas/", {"instances": 2**31}),
        ("admin", "put", "projects/{project}/quotas/", {"instances": {"limit": 3}}),
        ("admin", "put", "projects/{project}/quotas/", {}),
        ("admin", "put", "projects/{project}/quotas/", [1, 2]),
        ("admin", "put", "projects/{project}/quotas/", "instances"),
    ],
)
def test_wrong_types_and_invalid_values_are_400(targets, clients, role, method, path, body):
    fill = {"project": str(targets.project.pk), "member": str(targets.cloud.member.pk)}
    if isinstance(body, dict):
        body = {k: v.format(**fill) if isinstance(v, str) and "{" in v else v for k, v in body.items()}
    url = BASE + path.format(**fill)
    before = (Project.objects.count(), User.objects.count(), KeyPair.objects.count(), Quota.objects.count())
    response = getattr(clients[role], method)(url, body, format="json")
    assert response.status_code == 400, response.content
    assert error_of(response)["code"] in ("invalid", "parse_error")
    after = (Project.objects.count(), User.objects.count(), KeyPair.objects.count(), Quota.objects.count())
    assert after == before


NOT_UUIDS = [
    "projects/not-a-uuid/",
    "projects/12345/",
    "projects/" + "-" * 36 + "/",
    "projects/" + "0" * 33 + "/",
    "projects/" + "a" * 35 + "/",
    "users/" + "f" * 34 + "/",
    "users/%00/",
    "role-assignments/xyz/",
    "role-assignments/" + "-" * 32 + "/",
    "keypairs/alice-laptop/",
    "keypairs/" + "0" * 36 + "/",
]


@pytest.mark.parametrize("path", NOT_UUIDS)
@pytest.mark.parametrize("method", ["get", "delete"])
def test_ids_that_are_not_uuids_are_404(targets, clients, path, method):
    response = getattr(clients["admin"], method)(BASE + path)
    assert response.status_code == 404, response.content
    error_of(response)


@pytest.mark.parametrize(
    "path",
    [
        "projects/not-a-uuid/quotas/",
        "projects/" + "-" * 36 + "/quotas/",
        "roles/member/",
        "roles/" + "-" * 36 + "/",
    ],
)
def test_read_only_routes_with_ids_that_are_not_uuids_are_404(targets, clients, path):
    response = clients["admin"].get(BASE + path)
    assert response.status_code == 404, response.content
    error_of(response)


def test_operations_id_that_is_not_a_uuid_is_404(targets, clients):
    for path in ("/api/v1/operations/nope/", "/api/v1/operations/" + "-" * 36 + "/"):
        response = clients["member"].get(path)
        assert response.status_code == 404
        error_of(response)


@pytest.mark.parametrize(
    "path, query",
    [
        ("role-assignments/", {"user": "not-a-uuid"}),
        ("role-assignments/", {"project": "0" * 36}),
    ],
)
def test_bad_filter_values_are_400(targets, clients, path, query):
    response = clients["admin"].get(BASE + path, query)
    assert response.status_code == 400, response.content
    error_of(response)


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "abc"},
        {"limit": "-5"},
        {"offset": "-1"},
        {"offset": "zz"},
        {"limit": "100000000000000000000"},
        {"ordering": "nonsense"},
        {"ordering": "-password"},
        {"name": "\x00"},
        {"enabled": "perhaps"},
    ],
)
def test_odd_list_parameters_do_not_break_lists(targets, clients, query):
    response = clients["admin"].get(f"{BASE}projects/", query)
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        error_of(response)
