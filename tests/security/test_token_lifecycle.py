"""API tokens end with the credentials that issued them (issue 16, item 5): a password change or a
disable revokes every token of the user (and enabling again does not revive them); a user lists and
revokes their own tokens (on any project) through /api/v1/identity/tokens/, nobody else's."""

from __future__ import annotations

from rest_framework.test import APIClient

from identity import services
from identity.models import ApiToken
from tests.factories import PASSWORD, grant
from tests.identity.helpers import error_of
from tests.identity.test_query_counts import MANY, api_rows, assert_fixed_queries

TOKENS = "/api/v1/identity/tokens/"
WHOAMI = "/api/v1/identity/keypairs/"  # any endpoint every authenticated user may call


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def issue(user, project=None, password=PASSWORD) -> str:
    return services.issue_token(
        username=user.username, password=password, project=project and project.name
    ).token


def test_a_password_change_revokes_every_token(fast_hashing, cloud):
    old = bearer(issue(cloud.member))
    assert old.get(WHOAMI).status_code == 200
    services.update_user(cloud.ctx(cloud.admin), cloud.member, password="a-brand-new-password")
    response = old.get(WHOAMI)
    assert response.status_code == 401 and error_of(response)["code"] == "token_revoked"
    assert bearer(issue(cloud.member, password="a-brand-new-password")).get(WHOAMI).status_code == 200


def test_disable_revokes_and_enable_does_not_revive(fast_hashing, cloud):
    admin = cloud.ctx(cloud.admin)
    old = bearer(issue(cloud.member))
    services.update_user(admin, cloud.member, is_active=False)
    services.update_user(admin, cloud.member, is_active=True)
    assert error_of(old.get(WHOAMI))["code"] == "token_revoked"
    # An unrelated change (e-mail) revokes nothing.
    fresh = bearer(issue(cloud.member))
    services.update_user(admin, cloud.member, email="alice@example.org")
    assert fresh.get(WHOAMI).status_code == 200


def test_a_user_lists_and_revokes_their_own_tokens(fast_hashing, cloud):
    grant(cloud.member, cloud.other_project, "member")
    mine = bearer(issue(cloud.member, cloud.project))
    issue(cloud.member, cloud.other_project)
    bobs = issue(cloud.other_member)
    rows = mine.get(TOKENS).json()["results"]
    assert sorted(r["project_name"] for r in rows) == ["alpha", "beta"]
    assert [r["current"] for r in rows].count(True) == 1
    assert all(r["active"] and set(r) >= {"id", "prefix", "expires_at", "revoked_at"} for r in rows)
    assert all("token" not in r and "digest" not in r for r in rows)
    other = next(r for r in rows if not r["current"])
    assert mine.delete(f"{TOKENS}{other['id']}/").status_code == 204
    assert mine.get(f"{TOKENS}{other['id']}/").json()["active"] is False
    # Bob's token is not alice's to see or revoke (404), and not listed.
    bob_id = ApiToken.objects.get(user=cloud.other_member, revoked_at=None).pk
    assert mine.get(f"{TOKENS}{bob_id}/").status_code == 404
    assert mine.delete(f"{TOKENS}{bob_id}/").status_code == 404
    assert bearer(bobs).get(WHOAMI).status_code == 200
    # Revoking the current token ends this client's session.
    current = next(r for r in rows if r["current"])
    assert mine.delete(f"{TOKENS}{current['id']}/").status_code == 204
    assert mine.get(TOKENS).status_code == 401
    assert APIClient().get(TOKENS).status_code == 401


def test_token_list_queries(fast_hashing, cloud, django_assert_num_queries):
    client = bearer(issue(cloud.member))
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: client.get(TOKENS),
        4,  # token, caller's roles, COUNT, page (with each token's project)
        grow=lambda: [issue(cloud.member) for _ in range(MANY)],
        rows=api_rows,
    )
