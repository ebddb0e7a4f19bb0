"""Fixed SQL query counts: every list endpoint and dashboard page costs the same with 1 row or 20.

Each figure is pinned (a regression in either direction shows up) and measured after one warm-up
request, so per-process caches (content types, guardian's permission lookups) are not counted.
"""

import pytest

from identity import services
from identity.models import Role
from tests.factories import KeyPairFactory, ProjectFactory, UserFactory

from .helpers import make_operation

MANY = 20


def assert_fixed_queries(django_assert_num_queries, fetch, expected, grow, rows):
    """``fetch`` costs ``expected`` queries with the starting rows and again after ``grow()``."""
    fetch()
    with django_assert_num_queries(expected):
        small = fetch()
    assert small.status_code == 200
    assert rows(small) < MANY
    grow()
    fetch()
    with django_assert_num_queries(expected):
        large = fetch()
    assert large.status_code == 200
    assert rows(large) >= MANY


def api_rows(response) -> int:
    return len(response.json()["results"])


def page_rows(marker: bytes):
    return lambda response: response.content.count(marker)


def more_projects_for(cloud, user, n):
    ctx = cloud.ctx(cloud.admin)
    member = Role.objects.get(name=Role.MEMBER)
    for _ in range(n):
        services.assign_role(ctx, user=user, project=ProjectFactory(), role=member)


def more_users(n):
    for _ in range(n):
        UserFactory()


# --- API ---------------------------------------------------------------------------------------------

API_LIST_QUERIES = 4  # token, caller's roles, COUNT, page


def test_projects_list_as_member(cloud, clients, django_assert_num_queries):
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: clients["member"].get("/api/v1/identity/projects/"),
        API_LIST_QUERIES,
        grow=lambda: more_projects_for(cloud, cloud.member, MANY - 1),
        rows=api_rows,
    )


def test_projects_list_as_admin(cloud, clients, django_assert_num_queries):
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: clients["admin"].get("/api/v1/identity/projects/"),
        API_LIST_QUERIES,
        grow=lambda: [ProjectFactory() for _ in range(MANY)],
        rows=api_rows,
    )


def test_users_list_as_admin(cloud, clients, django_assert_num_queries):
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: clients["admin"].get("/api/v1/identity/users/"),
        API_LIST_QUERIES,
        grow=lambda: more_users(MANY),
        rows=api_rows,
    )


def test_role_assignments_list_as_member(cloud, clients, django_assert_num_queries):
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: clients["member"].get("/api/v1/identity/role-assignments/"),
        API_LIST_QUERIES,
        grow=lambda: more_projects_for(cloud, cloud.member, MANY - 1),
        rows=api_rows,
    )


def test_role_assignments_list_as_admin(cloud, clients, django_assert_num_queries):
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: clients["admin"].get("/api/v1/identity/role-assignments/"),
        API_LIST_QUERIES,
        grow=lambda: more_projects_for(cloud, UserFactory(), MANY),
        rows=api_rows,
    )


def test_keypairs_list(cloud, clients, django_assert_num_queries):
    KeyPairFactory(user=cloud.member)
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: clients["member"].get("/api/v1/identity/keypairs/"),
        API_LIST_QUERIES,
        grow=lambda: [KeyPairFactory(user=cloud.member) for _ in range(MANY - 1)],
        rows=api_rows,
    )


def test_operations_list(cloud, clients, django_assert_num_queries):
    make_operation(cloud.project, cloud.member)
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: clients["member"].get("/api/v1/operations/"),
        API_LIST_QUERIES,
        grow=lambda: [make_operation(cloud.project, cloud.member) for _ in range(MANY - 1)],
        rows=api_rows,
    )


def test_roles_list(cloud, clients, django_assert_num_queries):
    clients["reader"].get("/api/v1/identity/roles/")
    with django_assert_num_queries(API_LIST_QUERIES):
        assert clients["reader"].get("/api/v1/identity/roles/").status_code == 200


@pytest.mark.parametrize(
    "role, path",
    [
        ("admin", "/api/v1/identity/projects/{project}/"),
        ("member", "/api/v1/identity/projects/{project}/"),
        ("member", "/api/v1/identity/users/{member}/"),
        ("member", "/api/v1/identity/role-assignments/{assignment}/"),
        ("member", "/api/v1/identity/keypairs/{keypair}/"),
        ("member", "/api/v1/operations/{operation}/"),
    ],
)
def test_detail_endpoints(targets, clients, django_assert_num_queries, role, path):
    operation = make_operation(targets.project, targets.cloud.member)
    url = path.format(
        project=targets.project.pk,
        member=targets.cloud.member.pk,
        assignment=targets.assignment.pk,
        keypair=targets.keypair.pk,
        operation=operation.pk,
    )
    clients[role].get(url)
    with django_assert_num_queries(3):  # token, caller's roles, the row
        assert clients[role].get(url).status_code == 200


def test_quotas_detail(targets, clients, django_assert_num_queries):
    url = f"/api/v1/identity/projects/{targets.project.pk}/quotas/"
    clients["member"].get(url)
    # token, caller's roles, the project, roles on it for the policy check, limits, key pairs in use,
    # instances/cores/RAM in use (one aggregate), volumes/gigabytes/snapshots in use (one query),
    # networks/ports/floating IPs/security groups/rules in use (one query)
    with django_assert_num_queries(9):
        assert clients["member"].get(url).status_code == 200


# --- dashboard ---------------------------------------------------------------------------------------

# session, user, current project, roles, [page's COUNT and rows], the project switcher's list
PAGE_QUERIES = 7


@pytest.fixture
def member_browser(client, cloud):
    client.force_login(cloud.member)
    return client


@pytest.fixture
def admin_browser(client, cloud):
    client.force_login(cloud.admin)
    return client


def test_overview_page(cloud, member_browser, django_assert_num_queries):
    KeyPairFactory(user=cloud.member)

    def grow():
        more_projects_for(cloud, cloud.member, MANY - 1)
        for _ in range(MANY):
            KeyPairFactory(user=cloud.member)

    assert_fixed_queries(
        django_assert_num_queries,
        lambda: member_browser.get("/dashboard/overview/"),
        # the quota table's usage: key pairs, instances/cores/RAM (one aggregate), volumes/GiB/snapshots,
        # networks/ports/floating IPs/security groups/rules (one query)
        PAGE_QUERIES + 3,
        grow=grow,
        rows=page_rows(b"<option value="),
    )


def test_keypairs_page(cloud, member_browser, django_assert_num_queries):
    KeyPairFactory(user=cloud.member)
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: member_browser.get("/dashboard/identity/keypairs/"),
        PAGE_QUERIES,
        grow=lambda: [KeyPairFactory(user=cloud.member) for _ in range(MANY - 1)],
        rows=page_rows(b"<tr data-name="),
    )


def test_operations_page(cloud, member_browser, django_assert_num_queries):
    make_operation(cloud.project, cloud.member)
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: member_browser.get("/dashboard/operations/"),
        PAGE_QUERIES,
        grow=lambda: [make_operation(cloud.project, cloud.member) for _ in range(MANY - 1)],
        rows=page_rows(b"host.ping"),
    )


def test_admin_projects_page(cloud, admin_browser, django_assert_num_queries):
    def grow():
        for _ in range(MANY):
            more_projects_for(cloud, UserFactory(), 1)

    assert_fixed_queries(
        django_assert_num_queries,
        lambda: admin_browser.get("/dashboard/identity/admin/projects/"),
        PAGE_QUERIES,
        grow=grow,
        rows=page_rows(b"Delete project "),
    )


def test_admin_users_page(cloud, admin_browser, django_assert_num_queries):
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: admin_browser.get("/dashboard/identity/admin/users/"),
        PAGE_QUERIES,
        grow=lambda: more_users(MANY),
        rows=page_rows(b"Delete user "),
    )


def test_admin_role_assignments_page(cloud, admin_browser, django_assert_num_queries):
    # 6 more than a plain page: the assignment form lists users, projects and roles (COUNT + rows each).
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: admin_browser.get("/dashboard/identity/admin/role-assignments/"),
        PAGE_QUERIES + 6,
        grow=lambda: more_projects_for(cloud, UserFactory(), MANY),
        rows=page_rows(b'data-confirm="Remove '),
    )
