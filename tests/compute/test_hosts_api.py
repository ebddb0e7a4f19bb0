"""The hosts API per role (admins only: 403 on the list, 404 on a host for everyone else), disable and
enable with their validation, and fixed query counts of the list."""

import itertools

import pytest

from compute import services
from tests.identity.helpers import error_of
from tests.identity.test_query_counts import MANY, api_rows, assert_fixed_queries
from workers.models import Host

from .conftest import make_host

ROLES = ("admin", "member", "reader", "other", "anonymous")
BASE = "/api/v1/compute/hosts/"
FIELDS = {
    "id",
    "name",
    "roles",
    "state",
    "enabled",
    "disabled_reason",
    "vcpus",
    "vcpus_used",
    "memory_mb",
    "memory_mb_used",
    "disk_gb",
    "disk_gb_used",
    "cpu_allocation_ratio",
    "ram_allocation_ratio",
    "availability_zone",
    "hypervisor_type",
    "hypervisor_version",
    "last_heartbeat",
    "domains_running",
    "domains_total",
    "domains_reported_at",
}


def per_role(admin: int, member: int, reader: int, other: int, anonymous: int = 401) -> dict[str, int]:
    return dict(zip(ROLES, (admin, member, reader, other, anonymous), strict=True))


def url(host, suffix="") -> str:
    return f"{BASE}{host.pk}/{suffix}"


@pytest.fixture
def host(cloud):
    return make_host("sim-1")


OPERATIONS = {
    "list": (lambda c, h: c.get(BASE), per_role(200, 403, 403, 403)),
    "retrieve": (lambda c, h: c.get(url(h)), per_role(200, 404, 404, 404)),
    "disable": (
        lambda c, h: c.post(url(h, "disable/"), {"reason": "maintenance"}, format="json"),
        per_role(200, 404, 404, 404),
    ),
    "enable": (lambda c, h: c.post(url(h, "enable/")), per_role(409, 404, 404, 404)),
    "delete": (lambda c, h: c.delete(url(h)), per_role(405, 405, 405, 405)),
    "patch": (lambda c, h: c.patch(url(h), {"enabled": False}, format="json"), per_role(405, 405, 405, 405)),
    "create": (lambda c, h: c.post(BASE, {"name": "x"}, format="json"), per_role(405, 405, 405, 405)),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("operation", OPERATIONS)
def test_statuses_per_role(cloud, clients, host, role, operation):
    call, expected = OPERATIONS[operation]
    response = call(clients[role], host)
    assert response.status_code == expected[role], (operation, role, response.content)
    if response.status_code >= 400 and response.status_code != 405:
        error_of(response)
    if operation in ("disable", "delete", "patch") and role != "admin":
        assert Host.objects.get(pk=host.pk).enabled


def test_admin_lists_and_reads_hosts(cloud, clients, host):
    make_host("sim-2", last_heartbeat=None)
    body = clients["admin"].get(BASE).json()
    assert body["count"] == 2
    rows = {row["name"]: row for row in body["results"]}
    assert set(rows["sim-1"]) == FIELDS
    assert (rows["sim-1"]["state"], rows["sim-2"]["state"]) == ("up", "down")
    assert rows["sim-1"]["roles"] == ["compute"]
    assert rows["sim-1"]["cpu_allocation_ratio"] == 4.0 and rows["sim-1"]["ram_allocation_ratio"] == 1.0
    detail = clients["admin"].get(url(host)).json()
    assert detail["name"] == "sim-1" and detail["vcpus"] == 16 and detail["memory_mb"] == 65536
    assert clients["admin"].get(BASE, {"name": "SIM-2"}).json()["count"] == 1
    assert (detail["domains_running"], detail["domains_total"], detail["domains_reported_at"]) == (None,) * 3


def test_hosts_show_the_domains_their_agent_reported(cloud, clients, host):
    services.sync_power_states(
        "sim-1",
        [
            {"name": "zenith-a", "uuid": "a", "power_state": "running", "instance_id": None},
            {"name": "zenith-b", "uuid": "b", "power_state": "shutdown", "instance_id": None},
            {"name": "zenith-c", "uuid": "c", "power_state": "running", "instance_id": None},
        ],
    )
    detail = clients["admin"].get(url(host)).json()
    assert (detail["domains_running"], detail["domains_total"]) == (2, 3)
    assert detail["domains_reported_at"] is not None


def test_disable_then_enable(cloud, clients, host):
    admin = clients["admin"]
    response = admin.post(url(host, "disable/"), {"reason": "bad DIMM"}, format="json")
    assert response.status_code == 200
    assert (response.json()["enabled"], response.json()["disabled_reason"]) == (False, "bad DIMM")
    again = admin.post(url(host, "disable/"), {"reason": "again"}, format="json")
    assert again.status_code == 409 and "already disabled" in error_of(again)["message"]
    response = admin.post(url(host, "enable/"))
    assert response.status_code == 200
    assert (response.json()["enabled"], response.json()["disabled_reason"]) == (True, "")


@pytest.mark.parametrize(
    "body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 256}, {"reason": 5.5}]
)
def test_disable_needs_a_reason(cloud, clients, host, body):
    response = clients["admin"].post(url(host, "disable/"), body, format="json")
    assert response.status_code == 400, response.content
    error_of(response)
    assert Host.objects.get(pk=host.pk).enabled


def test_unknown_host_is_404(cloud, clients):
    assert clients["admin"].get(f"{BASE}00000000-0000-0000-0000-000000000000/").status_code == 404
    missing = clients["admin"].post(f"{BASE}00000000-0000-0000-0000-000000000000/enable/")
    assert missing.status_code == 404


# --- query counts -------------------------------------------------------------------------------

API_LIST_QUERIES = 4  # token, caller's roles, COUNT, page
API_DETAIL_QUERIES = 3  # token, caller's roles, the row
_names = itertools.count()


def more_hosts(n):
    for _ in range(n):
        make_host(f"grown-{next(_names)}")


def test_hosts_list_queries(cloud, clients, django_assert_num_queries):
    make_host("first")
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: clients["admin"].get(BASE),
        API_LIST_QUERIES,
        grow=lambda: more_hosts(MANY),
        rows=api_rows,
    )


def test_host_detail_queries(cloud, clients, django_assert_num_queries, host):
    clients["admin"].get(url(host))
    with django_assert_num_queries(API_DETAIL_QUERIES):
        assert clients["admin"].get(url(host)).status_code == 200


def test_disable_uses_the_service(cloud, clients, host):
    """The API is a thin layer: what it did is what the service does."""
    clients["admin"].post(url(host, "disable/"), {"reason": "r"}, format="json")
    with pytest.raises(Exception, match="already disabled"):
        services.disable_host(cloud.ctx(cloud.admin), Host.objects.get(pk=host.pk), "r")
