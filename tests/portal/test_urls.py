"""The URL space: the dashboard lives under /dashboard/, each of its old paths redirects there, the
OpenStack-compatible API owns its prefixes, and the API under /api/v1/ is where it was."""

import re
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from drf_spectacular.generators import SchemaGenerator

from portal.urls import moved_pages
from portal.views import moved

pytestmark = pytest.mark.django_db

SAMPLE = {"uuid": str(uuid.UUID(int=7)), "int": "7", "slug": "sample", "str": "reboot", "path": "a/b"}


def _routes(patterns, prefix="", namespace=""):
    """(route, view name, view) of every pattern, includes walked."""
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = ":".join(filter(None, [namespace, entry.namespace]))
            yield from _routes(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), ":".join(filter(None, [namespace, entry.name])), entry.callback


def _fill(route: str) -> str:
    return "/" + re.sub(r"<(?:(\w+):)?\w+>", lambda m: SAMPLE[m.group(1) or "str"], route)


# Every page that lived at the top level before the dashboard moved, read from its URL patterns (a
# page added to identity's or compute's later is checked too): (old path, new path, view name).
PAGES = sorted(
    (_fill(route), _fill(f"dashboard/{route}"), name) for route, name, _ in _routes(moved_pages) if name
)

# The prefixes the OpenStack-compatible API owns (OPENSTACK-COMPAT.md's catalog).
OPENSTACK_PREFIXES = ("/identity/v3", "/compute/v2.1", "/image/", "/volume/", "/network/")


def test_the_moved_pages_are_the_dashboard():
    names = {name for _, _, name in PAGES}
    assert {"overview", "operations", "switch-project", "compute:instances", "identity:keypairs"} <= names
    assert len(names) == len(PAGES) > 25
    assert not any(name.startswith("api") or "auth-tokens" in name for name in names)


@pytest.mark.parametrize(("old", "new", "name"), PAGES, ids=[name for _, _, name in PAGES])
def test_each_old_dashboard_path_redirects_to_its_new_place(client, old, new, name):
    assert resolve(new).view_name == name

    response = client.get(old, QUERY_STRING="page=2&q=a%20b&q=c")
    assert response.status_code == 301
    assert response["Location"] == f"{new}?page=2&q=a%20b&q=c"

    assert client.get(old)["Location"] == new  # no stray "?"
    posted = client.post(old, {"name": "x"})  # a form from a page loaded before the move: sent again
    assert (posted.status_code, posted["Location"]) == (308, new)


def test_an_old_path_redirects_without_a_login(client, cloud):
    instance = str(uuid.uuid4())
    response = client.get(f"/compute/instances/{instance}/console/?lines=5")
    assert response["Location"] == f"/dashboard/compute/instances/{instance}/console/?lines=5"
    assert client.get(response["Location"])["Location"].startswith("/login/?next=/dashboard/")


def test_the_root_leads_to_the_overview(client, cloud):
    assert client.get("/")["Location"].startswith("/login/")
    assert client.get("/dashboard/")["Location"].startswith("/login/")
    client.force_login(cloud.member)
    assert client.get("/")["Location"] == "/dashboard/overview/"
    assert client.get("/dashboard/")["Location"] == "/dashboard/overview/"
    assert client.get("/dashboard/overview/").status_code == 200


# What the stock OpenStack clients ask for under the catalog's prefixes (docs: OPENSTACK-COMPAT.md).
OPENSTACK_PATHS = [
    "/identity",
    "/identity/",
    "/identity/v3",
    "/identity/v3/",
    "/identity/v3/auth/tokens",
    "/identity/v3/projects",
    "/identity/v3/users/1/projects",
    "/compute/v2.1",
    "/compute/v2.1/",
    "/compute/v2.1/servers/detail",
    "/compute/v2.1/servers/1/action",
    "/compute/v2.1/flavors/detail",
    "/compute/v2.1/os-keypairs",
    "/compute/v2.1/os-hypervisors/detail",
    "/image",
    "/image/",
    "/image/v2/images",
    "/image/v2/images/1/file",
    "/volume/v3",
    "/volume/v3/",
    "/volume/v3/volumes/detail",
    "/volume/v3/os-quota-sets/1",
    "/network",
    "/network/",
    "/network/v2.0/networks",
    "/network/v2.0/floatingips",
]


# Every prefix is served (identity, compute, image, block storage, network).
SERVED = OPENSTACK_PATHS


def test_no_old_path_redirect_is_under_an_openstack_prefix():
    """Also for the paths OPENSTACK_PATHS does not name: every redirect the URL patterns hold."""
    redirects = ["/" + route for route, _, view in _routes(get_resolver().url_patterns) if view is moved]
    assert len(redirects) == len(PAGES)
    assert [path for path in redirects if path.startswith(OPENSTACK_PREFIXES) or path == "/identity/"] == []


@pytest.mark.parametrize("path", SERVED)
def test_the_compatible_api_owns_its_prefixes(client, path):
    """No page, no redirect: the OpenStack API answers (unauthenticated: 401 or the version documents,
    in the service's own shape, with its request id)."""
    assert resolve(path).func is not moved
    for response in (client.get(path), client.post(path, {})):
        assert response.status_code in (200, 201, 300, 400, 401, 404, 405), (path, response.status_code)
        assert response["x-openstack-request-id"].startswith("req-")
        assert "Location" not in response


def test_the_old_paths_redirect_beside_the_compatible_api(client):
    assert client.get("/identity/keypairs/")["Location"] == "/dashboard/identity/keypairs/"
    assert client.get("/compute/instances/")["Location"] == "/dashboard/compute/instances/"


def test_every_api_operation_is_under_api_v1():
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    assert len(paths) > 20
    for path in paths:
        assert path.startswith("/api/v1/"), path
        match = resolve(re.sub(r"\{[^}]+\}", str(uuid.UUID(int=7)), path))
        assert match.func is not moved and match.route.startswith("api/v1/"), path


def test_the_api_answers_where_it_did(clients):
    member = clients["member"]
    for path in ("/api/v1/identity/projects/", "/api/v1/compute/instances/", "/api/v1/operations/"):
        response = member.get(path)
        assert response.status_code == 200, path
        assert "results" in response.json(), path
    missing = member.get("/api/v1/compute/nothing-here/")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
