"""The flavors API, per role: list, retrieve, create, update, delete and access, with the statuses each gets.

Roles: ``admin`` (cloud admin), ``member`` and ``reader`` of project alpha, ``other`` (member of
project beta) and ``anonymous``. The public flavor is m1.small; the private one, secret.big, is
shared with no project until a test grants it.
"""

import pytest

from compute import services
from compute.models import Flavor, FlavorAccess
from tests.identity.helpers import error_of

ROLES = ("admin", "member", "reader", "other", "anonymous")
BASE = "/api/v1/compute/flavors/"
NEW = {"name": "c1.custom", "vcpus": 2, "ram_mb": 4096, "disk_gb": 40}


def per_role(admin: int, member: int, reader: int, other: int, anonymous: int = 401) -> dict[str, int]:
    return dict(zip(ROLES, (admin, member, reader, other, anonymous), strict=True))


def url(flavor, suffix="") -> str:
    return f"{BASE}{flavor.pk}/{suffix}"


OPERATIONS = {
    "list": (lambda c, f, cloud: c.get(BASE), per_role(200, 200, 200, 200)),
    "retrieve-public": (lambda c, f, cloud: c.get(url(f.public)), per_role(200, 200, 200, 200)),
    "retrieve-private": (lambda c, f, cloud: c.get(url(f.private)), per_role(200, 404, 404, 404)),
    "create": (lambda c, f, cloud: c.post(BASE, NEW, format="json"), per_role(201, 403, 403, 403)),
    "update-public": (
        lambda c, f, cloud: c.patch(url(f.public), {"description": "x"}, format="json"),
        per_role(200, 403, 403, 403),
    ),
    "update-private": (
        lambda c, f, cloud: c.patch(url(f.private), {"description": "x"}, format="json"),
        per_role(200, 404, 404, 404),
    ),
    "put": (lambda c, f, cloud: c.put(url(f.public), NEW, format="json"), per_role(405, 405, 405, 405)),
    "delete-public": (lambda c, f, cloud: c.delete(url(f.public)), per_role(204, 403, 403, 403)),
    "delete-private": (lambda c, f, cloud: c.delete(url(f.private)), per_role(204, 404, 404, 404)),
    "access-list": (lambda c, f, cloud: c.get(url(f.private, "access/")), per_role(200, 403, 403, 403)),
    "access-add": (
        lambda c, f, cloud: c.post(
            url(f.private, "access/"), {"project": str(cloud.project.pk)}, format="json"
        ),
        per_role(201, 403, 403, 403),
    ),
    "access-remove": (
        lambda c, f, cloud: c.delete(
            url(f.private, "access/"), {"project": str(cloud.project.pk)}, format="json"
        ),
        per_role(404, 403, 403, 403),  # nothing granted yet: 404 for the admin
    ),
}

CASES = [
    pytest.param(op, role, status, id=f"{op}-{role}")
    for op, (_, statuses) in OPERATIONS.items()
    for role, status in statuses.items()
]


@pytest.mark.parametrize("op, role, status", CASES)
def test_status_per_role(cloud, clients, flavors, op, role, status):
    call, _ = OPERATIONS[op]
    response = call(clients[role], flavors, cloud)
    assert response.status_code == status, response.content
    if status >= 400 and status != 405:
        error = error_of(response)
        if status == 404 and role != "admin":
            assert "secret" not in error["message"]  # nothing about a hidden flavor leaks


def test_member_lists_public_flavors_only(cloud, clients, flavors):
    body = clients["member"].get(BASE).json()
    assert body["count"] == 1
    flavor = body["results"][0]
    assert set(flavor) == {
        "id",
        "name",
        "vcpus",
        "ram_mb",
        "disk_gb",
        "ephemeral_gb",
        "swap_mb",
        "is_public",
        "extra_specs",
        "description",
        "disabled",
        "created",
    }
    assert (flavor["name"], flavor["vcpus"], flavor["ram_mb"], flavor["disk_gb"]) == ("m1.small", 1, 2048, 20)


def test_granting_access_makes_a_private_flavor_visible_to_that_project_only(cloud, clients, flavors):
    assert clients["member"].get(url(flavors.private)).status_code == 404
    grant = clients["admin"].post(
        url(flavors.private, "access/"), {"project": str(cloud.project.pk)}, format="json"
    )
    assert grant.status_code == 201
    assert grant.json()["project_name"] == "alpha"

    for role in ("member", "reader"):
        assert clients[role].get(url(flavors.private)).json()["name"] == "secret.big"
        assert [f["name"] for f in clients[role].get(BASE).json()["results"]] == ["m1.small", "secret.big"]
    assert clients["other"].get(url(flavors.private)).status_code == 404

    listed = clients["admin"].get(url(flavors.private, "access/")).json()
    assert [row["project"] for row in listed] == [str(cloud.project.pk)]

    again = clients["admin"].post(
        url(flavors.private, "access/"), {"project": str(cloud.project.pk)}, format="json"
    )
    assert again.status_code == 409

    revoke = clients["admin"].delete(f"{url(flavors.private, 'access/')}?project={cloud.project.pk}")
    assert revoke.status_code == 204
    assert clients["member"].get(url(flavors.private)).status_code == 404


def test_access_to_public_flavors_and_unknown_projects_is_refused(cloud, clients, flavors):
    public = clients["admin"].post(
        url(flavors.public, "access/"), {"project": str(cloud.project.pk)}, format="json"
    )
    assert public.status_code == 409 and error_of(public)["code"] == "conflict"
    unknown = clients["admin"].post(
        url(flavors.private, "access/"), {"project": "00000000-0000-0000-0000-000000000000"}, format="json"
    )
    assert unknown.status_code == 400
    malformed = clients["admin"].post(url(flavors.private, "access/"), {"project": "nope"}, format="json")
    assert malformed.status_code == 400
    assert not FlavorAccess.objects.exists()


def test_admin_creates_updates_and_deletes_over_the_api(cloud, clients, flavors):
    body = {**NEW, "is_public": False, "extra_specs": {"hw:cpu_policy": "dedicated"}, "swap_mb": 256}
    created = clients["admin"].post(BASE, body, format="json")
    assert created.status_code == 201, created.content
    out = created.json()
    assert (out["is_public"], out["extra_specs"], out["swap_mb"], out["ephemeral_gb"]) == (
        False,
        {"hw:cpu_policy": "dedicated"},
        256,
        0,
    )
    detail = f"{BASE}{out['id']}/"
    patched = clients["admin"].patch(detail, {"disabled": True, "description": "old"}, format="json")
    assert patched.status_code == 200 and patched.json()["disabled"] is True
    assert clients["admin"].delete(detail).status_code == 204
    assert not Flavor.objects.filter(pk=out["id"]).exists()


def test_sizes_cannot_change_over_the_api(cloud, clients, flavors):
    response = clients["admin"].patch(url(flavors.public), {"ram_mb": 4096}, format="json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "immutable"
    flavors.public.refresh_from_db()
    assert flavors.public.ram_mb == 2048


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({**NEW, "name": "m1.small"}, 409, "conflict"),
        ({**NEW, "vcpus": 0}, 400, "invalid"),
        ({**NEW, "ram_mb": 32}, 400, "invalid"),
        ({**NEW, "vcpus": "many"}, 400, "invalid"),
        ({**NEW, "extra_specs": {"k": 1}}, 400, "invalid"),
        ({**NEW, "extra_specs": "k=v"}, 400, "invalid"),
        ({"name": "no-sizes"}, 400, "invalid"),
        ({**NEW, "ram_mb": 2**40}, 400, "invalid"),
    ],
)
def test_create_errors(cloud, clients, flavors, body, status, code):
    response = clients["admin"].post(BASE, body, format="json")
    assert response.status_code == status, response.content
    assert error_of(response)["code"] == code
    assert Flavor.objects.count() == 2


@pytest.mark.parametrize(
    "query, names",
    [
        ("name=M1.SMALL", ["m1.small"]),
        ("is_public=false", ["secret.big"]),
        ("min_vcpus=2", ["secret.big"]),
        ("min_ram_mb=2048", ["m1.small", "secret.big"]),
        ("min_ram_mb=4096", ["secret.big"]),
        ("min_disk_gb=21", ["secret.big"]),
        ("ordering=-vcpus", ["secret.big", "m1.small"]),
    ],
)
def test_filters(cloud, clients, flavors, query, names):
    response = clients["admin"].get(f"{BASE}?{query}")
    assert [f["name"] for f in response.json()["results"]] == names


def test_filters_do_not_reveal_private_flavors(cloud, clients, flavors):
    assert clients["member"].get(f"{BASE}?is_public=false").json()["count"] == 0
    services.add_flavor_access(cloud.ctx(cloud.admin), flavors.private, cloud.project)
    assert clients["member"].get(f"{BASE}?is_public=false").json()["count"] == 1
