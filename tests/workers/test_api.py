"""GET /api/v1/operations/: the ledger as the caller's project sees it."""

import uuid

import pytest

from workers.models import Operation

from .conftest import make_operation

pytestmark = pytest.mark.django_db

FIELDS = {"id", "kind", "state", "progress", "message", "resource", "created", "updated"}


def url(op_or_id=None) -> str:
    if op_or_id is None:
        return "/api/v1/operations/"
    return f"/api/v1/operations/{getattr(op_or_id, 'pk', op_or_id)}/"


@pytest.fixture
def operation(cloud):
    return make_operation(
        kind="instance.create",
        project=cloud.project,
        user=cloud.member,
        state=Operation.RUNNING,
        progress=42,
        message="fetching image",
        resource_type="instance",
        resource_id=uuid.uuid4(),
        payload={"secret": "not for the API"},
    )


@pytest.mark.parametrize("who", ["member", "reader"])
def test_project_members_and_readers_read_an_operation(clients, operation, who):
    response = clients[who].get(url(operation))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == FIELDS
    assert body["id"] == str(operation.pk)
    assert body["kind"] == "instance.create"
    assert body["state"] == "running"
    assert body["progress"] == 42
    assert body["message"] == "fetching image"
    assert body["resource"] == {"type": "instance", "id": str(operation.resource_id)}
    assert body["created"] and body["updated"]


def test_operation_without_resource_has_null_resource(cloud, clients):
    op = make_operation(project=cloud.project)
    assert clients["reader"].get(url(op)).json()["resource"] is None


def test_another_projects_operation_is_404(clients, operation):
    response = clients["other"].get(url(operation))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_cloud_admin_in_the_admin_project_does_not_see_other_projects_operations(clients, operation):
    assert clients["admin"].get(url(operation)).status_code == 404


def test_system_operations_are_in_no_project(clients):
    op = make_operation(kind="host.ping", project=None)
    for who in ("admin", "member", "reader"):
        assert clients[who].get(url(op)).status_code == 404


def test_unknown_and_malformed_ids_are_404(clients):
    assert clients["member"].get(url(uuid.uuid4())).status_code == 404
    assert clients["member"].get(url("not-a-uuid")).status_code == 404


def test_anonymous_is_401(clients, operation):
    response = clients["anonymous"].get(url(operation))
    assert response.status_code == 401
    assert "error" in response.json()


def test_list_shows_only_the_callers_project_and_filters_by_state(cloud, clients, operation):
    done = make_operation(project=cloud.project, state=Operation.SUCCEEDED)
    make_operation(project=cloud.other_project)
    make_operation(project=None)

    body = clients["reader"].get(url()).json()
    assert {row["id"] for row in body["results"]} == {str(operation.pk), str(done.pk)}

    body = clients["member"].get(url(), {"state": "succeeded"}).json()
    assert [row["id"] for row in body["results"]] == [str(done.pk)]

    body = clients["other"].get(url()).json()
    assert str(operation.pk) not in {row["id"] for row in body["results"]}


def test_operations_are_read_only(clients, operation):
    client = clients["member"]
    assert client.post(url(), {"kind": "x"}, format="json").status_code == 405
    assert client.delete(url(operation)).status_code == 405
    assert client.patch(url(operation), {"state": "succeeded"}, format="json").status_code == 405
    assert Operation.objects.get(pk=operation.pk).state == Operation.RUNNING
