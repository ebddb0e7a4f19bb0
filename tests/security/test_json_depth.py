"""Deeply nested JSON (issue 16, item 5): 1000+ levels made the JSON parser recurse until Python's
limit and answered 500, even unauthenticated on /auth/tokens. Now a 400 with the JSON error shape."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.identity.helpers import error_of


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


@pytest.mark.parametrize("depth", [100, 1000, 100_000])
@pytest.mark.parametrize("kind", [("[", "]"), ('{"a":', "}")])
def test_deep_json_on_the_unauthenticated_token_endpoint_is_a_400(db, depth, kind):
    body = nested(depth, *kind) if kind[0] == "[" else '{"a":' * depth + "1" + "}" * depth
    response = APIClient().post("/api/v1/auth/tokens", body, content_type="application/json")
    assert response.status_code == 400, response.content[:200]
    assert error_of(response)["code"] == "parse_error"


def test_deep_json_on_an_authenticated_endpoint_is_a_400(cloud, clients):
    body = '{"name": "k", "public_key": ' + nested(5000) + "}"
    response = clients["member"].post("/api/v1/identity/keypairs/", body, content_type="application/json")
    assert response.status_code == 400
    assert "nested" in error_of(response)["message"]


def test_reasonable_nesting_still_parses(cloud, clients):
    body = {"name": "vm", "flavor": "none", "image": "none", "metadata": {"a": "b"}}
    response = clients["member"].post("/api/v1/compute/instances/", body, format="json")
    assert response.status_code == 400  # no such flavor: parsed, then refused by the service
    assert error_of(response)["code"] != "parse_error"
