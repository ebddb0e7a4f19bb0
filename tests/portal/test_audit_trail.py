"""The audit trail of flavors, hosts, images, projects, users, role assignments and quotas: every change
through the services leaves who/what/when/result, and cloud admins read a resource's trail at
``GET /api/v1/identity/actions/?resource_type=&resource_id=`` (one fixed query count)."""

import pytest

from compute import services as compute
from compute.models import Image
from identity import services as identity
from identity.errors import Conflict, InvalidInput
from identity.models import ResourceAction, Role
from tests.compute.conftest import make_flavor, make_host
from tests.compute.image_helpers import DATA, chunked
from tests.factories import ProjectFactory

URL = "/api/v1/identity/actions/"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def trail(resource_type, resource_id) -> list[tuple[str, str, str, str]]:
    """(action, who, result, message) of a resource, oldest first."""
    rows = ResourceAction.objects.filter(resource_type=resource_type, resource_id=resource_id)
    return [(r.action, r.user.username if r.user else "", r.result, r.message) for r in rows.order_by("id")]


def test_flavor_changes_are_recorded_with_who_and_result(cloud):
    admin = cloud.ctx(cloud.admin)
    flavor = compute.create_flavor(admin, name="audit.small", vcpus=1, ram_mb=512, disk_gb=1, is_public=False)
    compute.update_flavor(admin, flavor, description="for audits", disabled=True)
    compute.add_flavor_access(admin, flavor, cloud.project)
    compute.remove_flavor_access(admin, flavor, cloud.project)
    flavor_id = flavor.pk
    compute.delete_flavor(admin, flavor)
    assert trail("flavor", flavor_id) == [
        ("create", "cloudadmin", "success", "created audit.small"),
        ("update", "cloudadmin", "success", "changed description, disabled"),
        ("access_add", "cloudadmin", "success", "project alpha"),
        ("access_remove", "cloudadmin", "success", "project alpha"),
        ("delete", "cloudadmin", "success", "deleted audit.small"),
    ]
    row = ResourceAction.objects.filter(resource_type="flavor").first()
    assert row.project_id is None and row.finish_time is not None and row.operation_id is None


def test_a_refused_change_leaves_no_record(cloud):
    admin = cloud.ctx(cloud.admin)
    flavor = make_flavor("taken")
    with pytest.raises(Conflict):
        compute.create_flavor(admin, name="taken", vcpus=1, ram_mb=512, disk_gb=1)
    with pytest.raises(InvalidInput):
        compute.update_flavor(admin, flavor, vcpus=4)
    assert not ResourceAction.objects.filter(resource_type="flavor").exists()


def test_host_disable_and_enable_are_recorded(cloud):
    admin = cloud.ctx(cloud.admin)
    host = make_host("audit-1")
    compute.disable_host(admin, host, "memory errors")
    compute.enable_host(admin, host)
    assert trail("host", host.pk) == [
        ("disable", "cloudadmin", "success", "memory errors"),
        ("enable", "cloudadmin", "success", ""),
    ]


def test_image_changes_and_a_failed_upload_are_recorded(cloud):
    member = cloud.ctx(cloud.member)
    image = compute.create_image(member, name="disk", disk_format="qcow2", visibility=Image.SHARED)
    compute.upload_image_data(member, image, chunked(DATA))
    compute.update_image(member, image, min_ram=256, protected=False)
    compute.add_image_member(member, image, cloud.other_project)
    compute.set_image_member_status(cloud.ctx(cloud.other_member), image, cloud.other_project, "accepted")
    compute.remove_image_member(member, image, cloud.other_project)
    compute.delete_image(member, image)
    assert trail("image", image.pk) == [
        ("create", "alice", "success", "created disk"),
        ("upload", "alice", "success", f"{len(DATA)} bytes"),
        ("update", "alice", "success", "changed min_ram, protected"),
        ("member_add", "alice", "success", "project beta"),
        ("member_status", cloud.other_member.username, "success", "project beta: accepted"),
        ("member_remove", "alice", "success", "project beta"),
        ("delete", "alice", "success", "deleted disk"),
    ]
    assert set(ResourceAction.objects.filter(resource_id=image.pk).values_list("project", flat=True)) == {
        cloud.project.pk
    }

    broken = compute.create_image(member, name="broken", disk_format="raw")
    with pytest.raises(InvalidInput):
        compute.upload_image_data(member, broken, [b"short"], expected_size=99)
    assert trail("image", broken.pk)[-1] == (
        "upload",
        "alice",
        "error",
        "The upload ended after 5 of the 99 bytes announced.",
    )


def test_projects_users_roles_and_quotas_are_recorded(cloud):
    admin = cloud.ctx(cloud.admin)
    project = identity.create_project(admin, name="audited")
    identity.update_project(admin, project, description="x", enabled=False)
    user = identity.create_user(admin, username="carol", password="a long pass phrase 42")
    identity.update_user(admin, user, password="another long phrase 43", email="c@example.org")
    role = Role.objects.get(name=Role.MEMBER)
    assignment = identity.assign_role(admin, user=user, project=project, role=role)
    identity.set_quotas(admin, project, {"instances": 3, "cores": -1})
    ids = project.pk, user.pk, assignment.pk
    identity.revoke_role(admin, assignment)
    identity.delete_user(admin, user)
    identity.delete_project(admin, project)
    project.pk, user.pk, assignment.pk = ids

    assert trail("project", project.pk) == [
        ("create", "cloudadmin", "success", "created audited"),
        ("update", "cloudadmin", "success", "changed description, enabled"),
        ("delete", "cloudadmin", "success", "deleted audited"),
    ]
    assert trail("user", user.pk) == [
        ("create", "cloudadmin", "success", "created carol"),
        ("update", "cloudadmin", "success", "changed email, password"),  # never the password itself
        ("delete", "cloudadmin", "success", "deleted carol"),
    ]
    assert trail("role_assignment", assignment.pk) == [
        ("create", "cloudadmin", "success", "member on audited for carol"),
        ("delete", "cloudadmin", "success", "member on audited for carol"),
    ]
    quota = [("update", "cloudadmin", "success", "audited: cores=-1, instances=3")]
    assert trail("quota", project.pk) == quota
    # The trail outlives the project and the user it names.
    assert ResourceAction.objects.filter(resource_id__in=[project.pk, user.pk, assignment.pk]).count() == 9


# --- the API ---------------------------------------------------------------------------------------


def test_admins_read_one_resources_trail(cloud, clients):
    admin = cloud.ctx(cloud.admin)
    flavor = compute.create_flavor(admin, name="read.me", vcpus=1, ram_mb=512, disk_gb=1)
    other = compute.create_flavor(admin, name="other", vcpus=1, ram_mb=512, disk_gb=1)
    compute.update_flavor(admin, flavor, description="d")

    response = clients["admin"].get(URL, {"resource_type": "flavor", "resource_id": str(flavor.pk)})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 2
    assert [(r["action"], r["user"], r["result"]) for r in body["results"]] == [
        ("update", "cloudadmin", "success"),
        ("create", "cloudadmin", "success"),
    ]
    first = body["results"][0]
    assert first["resource_type"] == "flavor" and first["resource_id"] == str(flavor.pk)
    assert first["finish_time"] and first["start_time"] and first["project"] is None
    assert str(other.pk) not in response.content.decode()
    assert first["message"] == "changed description"


@pytest.mark.parametrize("role", ["member", "reader", "other"])
def test_only_admins_read_the_trail(cloud, clients, role):
    flavor = compute.create_flavor(cloud.ctx(cloud.admin), name="secret", vcpus=1, ram_mb=512, disk_gb=1)
    response = clients[role].get(URL, {"resource_type": "flavor", "resource_id": str(flavor.pk)})
    assert response.status_code == 403 and "secret" not in response.content.decode()


def test_a_bad_filter_answers_400(cloud, clients):
    response = clients["admin"].get(URL, {"resource_id": "not-a-uuid"})
    assert response.status_code == 400
    assert "resource_id" in response.content.decode()


def test_the_trail_costs_the_same_queries_with_1_or_many_rows(cloud, clients, django_assert_num_queries):
    admin = cloud.ctx(cloud.admin)
    compute.create_flavor(admin, name="f0", vcpus=1, ram_mb=512, disk_gb=1)
    fetch = lambda: clients["admin"].get(URL, {"limit": 100, "resource_type": "quota"})  # noqa: E731
    identity.set_quotas(admin, cloud.project, {"instances": 5})
    fetch()
    with django_assert_num_queries(4):  # token, caller's roles, COUNT, page (with the user joined)
        assert len(fetch().json()["results"]) == 1
    for n in range(1, 25):
        identity.set_quotas(admin, ProjectFactory(), {"instances": n})
    fetch()
    with django_assert_num_queries(4):
        assert len(fetch().json()["results"]) == 25
