"""Project-scoped API tokens: issue, use, expire, revoke; stored hashed; TTL from settings."""

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from identity import services
from identity.errors import NotAuthenticated
from identity.models import ApiToken, Role
from tests.factories import PASSWORD, ProjectFactory

from .helpers import error_of

TOKENS = "/api/v1/auth/tokens"
PROJECTS = "/api/v1/identity/projects/"


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def issue(client: APIClient, **body):
    return client.post(TOKENS, body, format="json")


# --- issuing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("reference", ["name", "id", "hex id"])
def test_issue_token_by_project_name_or_id(cloud, reference):
    project = {
        "name": cloud.project.name,
        "id": str(cloud.project.pk),
        "hex id": cloud.project.pk.hex,
    }[reference]
    response = issue(APIClient(), username="alice", password=PASSWORD, project=project)

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"token", "expires_at", "user", "project", "roles"}
    assert body["user"] == {"id": str(cloud.member.pk), "name": "alice"}
    assert body["project"] == {"id": str(cloud.project.pk), "name": "alpha"}
    assert body["roles"] == ["member"]
    assert body["token"].startswith("zt_")
    assert bearer(body["token"]).get(PROJECTS).status_code == 200


def test_issue_without_project_uses_the_default_project(cloud):
    gamma = ProjectFactory(name="gamma")
    services.assign_role(
        cloud.ctx(cloud.admin), user=cloud.member, project=gamma, role=Role.objects.get(name="member")
    )
    response = issue(APIClient(), username="alice", password=PASSWORD)
    assert response.status_code == 201
    assert response.json()["project"]["name"] == "alpha"


def test_token_lists_every_role_held_on_the_project(cloud):
    services.assign_role(
        cloud.ctx(cloud.admin), user=cloud.member, project=cloud.project, role=Role.objects.get(name="reader")
    )
    issued = services.issue_token(username="alice", password=PASSWORD, project="alpha")
    assert issued.roles == ["member", "reader"]


@pytest.mark.parametrize(
    "username, password",
    [("alice", "wrong-password"), ("nobody", PASSWORD), ("alice", ""), ("", "")],
)
def test_wrong_credentials_are_refused(cloud, username, password):
    with pytest.raises(NotAuthenticated) as exc:
        services.issue_token(username=username, password=password, project="alpha")
    assert exc.value.code == "invalid_credentials"
    assert not ApiToken.objects.exists()


def test_wrong_password_over_the_api_is_401_with_the_error_shape(cloud):
    response = issue(APIClient(), username="alice", password="wrong-password", project="alpha")
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_credentials"


def test_inactive_user_cannot_get_a_token(cloud):
    cloud.member.is_active = False
    cloud.member.save()
    with pytest.raises(NotAuthenticated):
        services.issue_token(username="alice", password=PASSWORD, project="alpha")


@pytest.mark.parametrize("project", ["beta", "admin", "no-such-project", "x" * 36, "0" * 32])
def test_project_without_a_role_is_refused(cloud, project):
    with pytest.raises(NotAuthenticated) as exc:
        services.issue_token(username="alice", password=PASSWORD, project=project)
    assert exc.value.code == "no_project"
    response = issue(APIClient(), username="alice", password=PASSWORD, project=project)
    assert response.status_code == 401
    assert error_of(response)["code"] == "no_project"
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("name", ["p" * 32, "engineering-platform-team-europe", "x" * 36])
def test_project_names_as_long_as_an_id_still_work(cloud, name):
    project = ProjectFactory(name=name)
    services.assign_role(
        cloud.ctx(cloud.admin), user=cloud.member, project=project, role=Role.objects.get(name="reader")
    )
    issued = services.issue_token(username="alice", password=PASSWORD, project=name)
    assert issued.record.project == project


def test_project_named_like_another_projects_id_is_not_confused(cloud):
    # A project may be named like another project's id; alice holds no role on beta, so the
    # reference can only mean the project of that name.
    decoy = ProjectFactory(name=str(cloud.other_project.pk))
    services.assign_role(
        cloud.ctx(cloud.admin), user=cloud.member, project=decoy, role=Role.objects.get(name="reader")
    )
    issued = services.issue_token(username="alice", password=PASSWORD, project=str(cloud.other_project.pk))
    assert issued.record.project == decoy


def test_project_by_id_of_another_project_is_refused(cloud):
    with pytest.raises(NotAuthenticated):
        services.issue_token(username="alice", password=PASSWORD, project=str(cloud.other_project.pk))


def test_disabled_project_gets_no_token(cloud):
    services.update_project(cloud.ctx(cloud.admin), cloud.project, enabled=False)
    with pytest.raises(NotAuthenticated):
        services.issue_token(username="alice", password=PASSWORD, project="alpha")


def test_user_without_any_role_is_refused(cloud):
    from tests.factories import UserFactory

    UserFactory(username="loner")
    response = issue(APIClient(), username="loner", password=PASSWORD)
    assert response.status_code == 401
    assert error_of(response)["code"] == "no_project"


# --- storage -------------------------------------------------------------------------------------


def test_token_is_stored_only_as_its_sha256(cloud):
    issued = services.issue_token(username="alice", password=PASSWORD, project="alpha")
    record = ApiToken.objects.get(pk=issued.record.pk)
    assert record.digest == hashlib.sha256(issued.token.encode()).hexdigest()
    assert issued.token not in record.digest
    stored = [str(getattr(record, f.attname)) for f in ApiToken._meta.concrete_fields]
    assert not any(issued.token in value for value in stored)
    assert record.prefix == issued.token[:8]
    assert len(issued.token) >= 40  # 32 random bytes, url-safe encoded, plus the prefix


def test_each_issue_is_a_new_token(cloud):
    first = services.issue_token(username="alice", password=PASSWORD, project="alpha")
    second = services.issue_token(username="alice", password=PASSWORD, project="alpha")
    assert first.token != second.token
    assert ApiToken.objects.filter(user=cloud.member).count() == 2


def test_token_ttl_comes_from_settings(cloud, settings):
    settings.ZENITH_TOKEN_TTL = timedelta(minutes=5)
    before = timezone.now()
    response = issue(APIClient(), username="alice", password=PASSWORD, project="alpha")
    after = timezone.now()
    expires_at = parse_datetime(response.json()["expires_at"])
    assert before + timedelta(minutes=5) <= expires_at <= after + timedelta(minutes=5)
    assert ApiToken.objects.get().expires_at == expires_at


# --- using ---------------------------------------------------------------------------------------


def test_x_auth_token_header_works(cloud):
    issued = services.issue_token(username="alice", password=PASSWORD, project="alpha")
    client = APIClient()
    client.credentials(HTTP_X_AUTH_TOKEN=issued.token)
    response = client.get(PROJECTS)
    assert response.status_code == 200
    assert [p["name"] for p in response.json()["results"]] == ["alpha"]


def test_token_is_scoped_to_its_project(cloud):
    gamma = ProjectFactory(name="gamma")
    services.assign_role(
        cloud.ctx(cloud.admin), user=cloud.member, project=gamma, role=Role.objects.get(name="reader")
    )
    gamma_token = services.issue_token(username="alice", password=PASSWORD, project="gamma").token
    # alice is a member on alpha but only a reader on gamma: her gamma token cannot create key pairs.
    response = bearer(gamma_token).post("/api/v1/identity/keypairs/", {"name": "k"}, format="json")
    assert response.status_code == 403
    alpha_token = services.issue_token(username="alice", password=PASSWORD, project="alpha").token
    response = bearer(alpha_token).post("/api/v1/identity/keypairs/", {"name": "k"}, format="json")
    assert response.status_code == 201


@pytest.mark.parametrize(
    "header",
    ["Bearer not-a-real-token", "Bearer zt_" + "A" * 43, "Bearer", "Bearer a b", "bearer  "],
)
def test_bad_bearer_headers_are_401(cloud, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(PROJECTS)
    assert response.status_code == 401
    error_of(response)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_unknown_token_says_invalid_token(cloud):
    response = bearer("zt_unknown").get(PROJECTS)
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_token"


def test_expired_token_is_401_token_expired(cloud):
    issued = services.issue_token(username="alice", password=PASSWORD, project="alpha")
    ApiToken.objects.filter(pk=issued.record.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = bearer(issued.token).get(PROJECTS)
    assert response.status_code == 401
    assert error_of(response)["code"] == "token_expired"


def test_token_of_a_disabled_user_or_project_stops_working(cloud):
    issued = services.issue_token(username="alice", password=PASSWORD, project="alpha")
    services.update_user(cloud.ctx(cloud.admin), cloud.member, is_active=False)
    response = bearer(issued.token).get(PROJECTS)
    assert response.status_code == 401
    assert error_of(response)["code"] == "token_revoked"  # disabling revokes: enabling does not revive

    reader_token = services.issue_token(username="rita", password=PASSWORD, project="alpha")
    services.update_project(cloud.ctx(cloud.admin), cloud.project, enabled=False)
    response = bearer(reader_token.token).get(PROJECTS)
    assert response.status_code == 401
    assert error_of(response)["code"] == "token_disabled"


# --- revoking ------------------------------------------------------------------------------------


def test_delete_revokes_the_token_in_use_and_only_that_one(cloud):
    mine = services.issue_token(username="alice", password=PASSWORD, project="alpha")
    spare = services.issue_token(username="alice", password=PASSWORD, project="alpha")
    client = bearer(mine.token)

    response = client.delete(TOKENS)
    assert response.status_code == 204

    response = client.get(PROJECTS)
    assert response.status_code == 401
    assert error_of(response)["code"] == "token_revoked"
    assert client.delete(TOKENS).status_code == 401
    assert bearer(spare.token).get(PROJECTS).status_code == 200
    assert ApiToken.objects.get(pk=mine.record.pk).revoked_at is not None


def test_revoke_through_x_auth_token(cloud):
    issued = services.issue_token(username="alice", password=PASSWORD, project="alpha")
    client = APIClient()
    client.credentials(HTTP_X_AUTH_TOKEN=issued.token)
    assert client.delete(TOKENS).status_code == 204
    assert error_of(client.get(PROJECTS))["code"] == "token_revoked"


def test_delete_without_a_token_is_401(cloud):
    response = APIClient().delete(TOKENS)
    assert response.status_code == 401
    error_of(response)


def test_delete_with_a_session_is_400_not_a_crash(cloud):
    client = APIClient()
    client.force_login(cloud.member)
    response = client.delete(TOKENS)
    assert response.status_code == 400
    assert "Bearer" in error_of(response)["message"]


def test_revoke_token_of_someone_else_is_not_found(cloud):
    from identity.errors import NotFound

    issued = services.issue_token(username="alice", password=PASSWORD, project="alpha")
    with pytest.raises(NotFound):
        services.revoke_token(cloud.ctx(cloud.reader), issued.record)
    assert services.authenticate_token(issued.token).revoked_at is None
    services.revoke_token(cloud.ctx(cloud.admin), issued.record)
    with pytest.raises(NotAuthenticated):
        services.authenticate_token(issued.token)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "alice"},
        {"username": ["alice"], "password": PASSWORD},
        {"username": "alice", "password": {"x": 1}},
        {"username": "alice", "password": PASSWORD, "project": 12},
        {"username": "alice", "password": PASSWORD, "project": "p" * 65},
        {"username": "al\x00ice", "password": PASSWORD},
    ],
)
def test_malformed_token_requests_are_400_or_401_never_500(cloud, body):
    response = issue(APIClient(), **body)
    assert response.status_code in (400, 401), response.content
    error_of(response)


def test_token_request_with_broken_json_is_400(cloud):
    response = APIClient().post(TOKENS, data='{"username": "alice",', content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "parse_error"
