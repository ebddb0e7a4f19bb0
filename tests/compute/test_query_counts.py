"""Fixed SQL query counts for the flavor list and detail endpoints and the flavors admin page.

Pinned (a regression in either direction shows up) and measured after one warm-up request, with 1
flavor and again with more than 20, as in tests/identity/test_query_counts.py.
"""

import itertools

import pytest

from compute import services
from compute.models import Flavor
from tests.identity.test_query_counts import MANY, api_rows, assert_fixed_queries, page_rows

from .conftest import make_flavor

API_LIST_QUERIES = 4  # token, caller's roles, COUNT, page
API_DETAIL_QUERIES = 3  # token, caller's roles, the row
# session, user, current project, roles, the table's COUNT and rows, the project switcher's list
PAGE_QUERIES = 7

_names = itertools.count()


def more_flavors(cloud, n, shared_with=None):
    """``n`` public flavors, and ``n`` private ones shared with ``shared_with`` when given."""
    for _ in range(n):
        make_flavor(f"pub-{next(_names)}")
        private = make_flavor(f"priv-{next(_names)}", is_public=False)
        if shared_with is not None:
            services.add_flavor_access(cloud.ctx(cloud.admin), private, shared_with)


@pytest.mark.parametrize("role", ["admin", "member"])
def test_flavors_list(cloud, clients, django_assert_num_queries, role):
    make_flavor("first")
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: clients[role].get("/api/v1/compute/flavors/"),
        API_LIST_QUERIES,
        grow=lambda: more_flavors(cloud, MANY, shared_with=cloud.project),
        rows=api_rows,
    )


def test_flavors_list_counts_only_what_the_member_sees(cloud, clients):
    make_flavor("first")
    more_flavors(cloud, MANY, shared_with=cloud.other_project)
    assert clients["member"].get("/api/v1/compute/flavors/").json()["count"] == MANY + 1
    assert clients["admin"].get("/api/v1/compute/flavors/").json()["count"] == 2 * MANY + 1


@pytest.mark.parametrize("role", ["admin", "member"])
def test_flavor_detail(cloud, clients, django_assert_num_queries, role):
    flavor = make_flavor("first")
    url = f"/api/v1/compute/flavors/{flavor.pk}/"
    clients[role].get(url)
    with django_assert_num_queries(API_DETAIL_QUERIES):
        assert clients[role].get(url).status_code == 200


def test_flavor_access_list(cloud, clients, django_assert_num_queries):
    flavor = make_flavor("private", is_public=False)
    url = f"/api/v1/compute/flavors/{flavor.pk}/access/"
    services.add_flavor_access(cloud.ctx(cloud.admin), flavor, cloud.project)
    clients["admin"].get(url)
    with django_assert_num_queries(API_DETAIL_QUERIES + 1):  # + the access rows with their projects
        assert len(clients["admin"].get(url).json()) == 1
    services.add_flavor_access(cloud.ctx(cloud.admin), flavor, cloud.other_project)
    with django_assert_num_queries(API_DETAIL_QUERIES + 1):
        assert len(clients["admin"].get(url).json()) == 2


def test_admin_flavors_page(cloud, client, django_assert_num_queries):
    client.force_login(cloud.admin)
    make_flavor("first")

    def grow():
        more_flavors(cloud, MANY, shared_with=cloud.project)
        assert Flavor.objects.count() > MANY

    assert_fixed_queries(
        django_assert_num_queries,
        lambda: client.get("/dashboard/compute/admin/flavors/"),
        PAGE_QUERIES,
        grow=grow,
        rows=page_rows(b'data-confirm="Delete flavor '),
    )
