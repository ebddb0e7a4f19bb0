"""No input gives a 500 in the dashboard either: every page of it, as a cloud admin and as a project
member, is sent generated requests (Hypothesis): GET or POST, its ids real objects of the right kind
or made up, its action names real or not, query strings and form fields named as the dashboard's
forms and filters name them (and a few it does not know), with any text in them.

Django's test client raises what a view raises, so a crash fails the test with its traceback; a
response of 500 or more fails it too.
"""

from __future__ import annotations

import os
import re
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compute.services.lifecycle import ACTIONS
from portal.views import moved

pytestmark = pytest.mark.django_db

# Per page and role: about 2,500 requests, ~30 s; ZENITH_FUZZ_EXAMPLES=500 for a deeper run.
EXAMPLES = int(os.environ.get("ZENITH_FUZZ_EXAMPLES", 40))

SKIPPED = ("api/", "django-admin/", "logout/")  # the API has its own fuzz; Django's admin is Django's


def _routes(patterns, prefix="") -> list[str]:
    found = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            found += _routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern) and entry.callback is not moved:
            # An old path only redirects to a page fuzzed here (tests/test_urls.py checks each one).
            found.append(prefix + str(entry.pattern))
    return found


ROUTES = sorted(r for r in _routes(get_resolver().url_patterns) if not r.startswith(SKIPPED))

# What the dashboard's forms and filters read, and a few names nothing reads.
FIELDS = [
    "name", "description", "email", "enabled", "is_superuser", "username", "password", "project",
    "role", "user", "public_key", "key_type", "flavor", "image", "key_name", "user_data", "metadata",
    "availability_zone", "hypervisor_type", "idempotency_key", "vcpus", "ram_mb", "disk_gb",
    "ephemeral_gb", "swap_mb", "is_public", "extra_specs", "disk_format", "visibility", "min_disk",
    "min_ram", "protected", "reason", "step", "q", "status", "sort", "page", "per_page", "lines",
    "fragment", "next", "all", "back", "admin", "type", "hard", "confirm", "unknown",
]  # fmt: skip

# The kind of object a path's <uuid:pk> names, by the segment before it.
KINDS = {
    "keypairs": "keypair",
    "projects": "project",
    "users": "user",
    "role-assignments": "role_assignment",
    "images": "image",
    "instances": "instance",
    "flavors": "flavor",
    "hosts": "host",
}

texts = st.one_of(
    st.sampled_from(
        ["", " ", "0", "-1", "1", "2147483648", "true", "on", "m1.tiny", "fuzz-image", "x" * 300]
    ),
    st.text(max_size=40),
)


def _path(route: str, data: st.DataObject, world) -> str:
    def fill(match: re.Match) -> str:
        converter, name = match.group(1), match.group(2)
        if converter == "uuid":
            kind = KINDS.get(route[: match.start()].rstrip("/").rsplit("/", 1)[-1])
            real = [world.ids[kind]] if kind else []
            return data.draw(st.sampled_from([*real, str(uuid.uuid4())]), label=name)
        if name == "action":
            return data.draw(st.sampled_from([*ACTIONS, "reboot_hard", "console", "nope"]), label=name)
        return data.draw(st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True), label=name)

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, route)


@pytest.fixture
def logged_in(client, cloud):
    def as_(who: str):
        client.force_login({"admin": cloud.admin, "member": cloud.member}[who])
        return client

    return as_


@pytest.mark.parametrize("who", ["admin", "member"])
@pytest.mark.parametrize("route", ROUTES)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests every run: a failure here reproduces
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_no_input_gives_a_server_error(world, logged_in, route, who, data):
    client = logged_in(who)
    path = _path(route, data, world)
    fields = data.draw(st.dictionaries(st.sampled_from(FIELDS), texts, max_size=8), label="fields")
    if data.draw(st.booleans(), label="post"):
        if data.draw(st.booleans(), label="with a file"):
            fields["file"] = SimpleUploadedFile(
                "disk.qcow2", data.draw(st.binary(max_size=64), label="bytes")
            )
        headers = {"HTTP_HX_REQUEST": "true"} if data.draw(st.booleans(), label="htmx") else {}
        response = client.post(path, fields, **headers)
    else:
        response = client.get(path, fields)
    assert response.status_code < 500, f"{response.request['REQUEST_METHOD']} {path} {fields}"
