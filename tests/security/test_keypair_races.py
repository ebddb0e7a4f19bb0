"""Key pairs under concurrency (issue 16, item 5). 20 concurrent creates of one name gave 500s
(IntegrityError on the unique (user, name)); and the key-pair quota, counted per user but locked per
project, let a user holding roles on two projects overshoot it (6 of 5). Real threads, each with its
own database connection: the race is real on PostgreSQL (SQLite serialises every write anyway)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from identity import quotas, services
from identity.models import KeyPair
from tests.factories import PASSWORD, grant

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFz1kB5l3qE6Ecm1tq0vJ1t3v6Zb0S8pH5y2VbC1nGzL test"


def bearer(user, project) -> str:
    return services.issue_token(username=user.username, password=PASSWORD, project=project.name).token


def race(tokens: list[str], bodies: list[dict]) -> list[int]:
    """POST each body at once (one thread each, behind a barrier); the status codes."""
    outcomes, barrier = [], threading.Barrier(len(bodies))

    def create(token, body):
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            barrier.wait()
            outcomes.append(client.post("/api/v1/identity/keypairs/", body, format="json").status_code)
        except Exception as exc:  # a failure of the test, reported by the assertions below
            outcomes.append(repr(exc))
        finally:
            connection.close()

    workers = [threading.Thread(target=create, args=args) for args in zip(tokens, bodies, strict=True)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_of_one_name_give_one_201_and_409s(fast_hashing, cloud):
    token = bearer(cloud.member, cloud.project)
    outcomes = race([token] * 20, [{"name": "dup", "public_key": PUBLIC_KEY}] * 20)
    assert sorted(outcomes, key=str) == [201] + [409] * 19, outcomes
    assert KeyPair.objects.filter(user=cloud.member, name="dup").count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_key_pair_quota_holds_across_a_users_projects(fast_hashing, cloud):
    """alice holds roles on alpha and beta; both limit her to 5 key pairs; 10 creates at once, half
    through each project's token: 5 succeed, never 6."""
    grant(cloud.member, cloud.other_project, "member")
    for project in (cloud.project, cloud.other_project):
        quotas.set_limits(project, {"key_pairs": 5})
    tokens = [bearer(cloud.member, cloud.project), bearer(cloud.member, cloud.other_project)] * 5
    outcomes = race(tokens, [{"name": f"k{n}", "public_key": PUBLIC_KEY} for n in range(10)])
    assert sorted(outcomes, key=str) == [201] * 5 + [413] * 5, outcomes
    assert KeyPair.objects.filter(user=cloud.member).count() == 5
