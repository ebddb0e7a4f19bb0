"""Login throttling (issue 16, item 5): every try used to cost a full password hash, without limit.
Now ZENITH_LOGIN_MAX_FAILURES failures lock the username (API tokens, dashboard login, one counter)
for ZENITH_LOGIN_LOCKOUT seconds; locked tries answer 429 (API) or a form error, before hashing."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.utils import timezone
from rest_framework.test import APIClient

from identity.models import LoginThrottle
from tests.factories import PASSWORD
from tests.identity.helpers import error_of

TOKENS = "/api/v1/auth/tokens"
HASHED = []


class CountingHasher(MD5PasswordHasher):
    """MD5 (fast), counting each password verification: what a throttled try must not cost."""

    algorithm = "md5"

    def verify(self, password, encoded):
        HASHED.append(1)
        return super().verify(password, encoded)


@pytest.fixture(autouse=True)
def counting_hasher(settings):
    settings.PASSWORD_HASHERS = ["tests.security.test_login_throttle.CountingHasher"]
    settings.ZENITH_LOGIN_MAX_FAILURES = 5
    settings.ZENITH_LOGIN_LOCKOUT = 300
    HASHED.clear()


def token(client, password, username="alice"):
    return client.post(
        TOKENS, {"username": username, "password": password, "project": "alpha"}, format="json"
    )


def test_api_locks_the_username_after_five_failures(cloud):
    from django.contrib.auth.hashers import make_password

    cloud.member.password = make_password(PASSWORD)  # hashed by the counting hasher
    cloud.member.save()
    client = APIClient()
    for _ in range(5):
        assert token(client, "wrong-guess").status_code == 401
    hashed = len(HASHED)
    response = token(client, PASSWORD)  # even the right password, while locked
    assert response.status_code == 429
    assert error_of(response)["code"] == "too_many_attempts"
    assert 0 < int(response["Retry-After"]) <= 300
    for _ in range(20):
        assert token(client, "another-guess").status_code == 429
    assert len(HASHED) == hashed  # locked tries cost no hashing
    # Other users are not locked; the lock ends after the lockout.
    assert token(client, PASSWORD, username="rita").status_code == 201
    LoginThrottle.objects.filter(key="user:alice").update(locked_until=timezone.now())
    assert token(client, PASSWORD).status_code == 201
    assert not LoginThrottle.objects.filter(key="user:alice").exists()  # success clears the count


def test_the_dashboard_login_shares_the_lock(cloud, client):
    for _ in range(3):
        client.post("/login/", {"username": "Alice", "password": "wrong"})
    for _ in range(2):
        token(APIClient(), "wrong")
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200  # the form again, not the redirect of a login
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_one_address_spraying_many_usernames_is_locked(cloud):
    client = APIClient()
    for n in range(20):
        token(client, "password1", username=f"user{n}")
    response = token(client, PASSWORD, username="rita")
    assert response.status_code == 429


def test_failures_below_the_limit_do_not_lock(cloud):
    client = APIClient()
    for _ in range(4):
        token(client, "wrong")
    assert token(client, PASSWORD).status_code == 201
    for _ in range(4):  # the count started again after the success
        token(client, "wrong")
    assert token(client, PASSWORD).status_code == 201
