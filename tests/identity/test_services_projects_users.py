"""identity.services: projects and users, called as the API and dashboard call them."""

import pytest
from django.conf import settings

from identity import services
from identity.errors import Conflict, InvalidInput, PolicyDenied
from identity.models import ApiToken, KeyPair, Project, User
from tests.factories import PASSWORD, KeyPairFactory

# --- projects ----------------------------------------------------------------------------------


def test_admin_creates_project(cloud):
    project = services.create_project(cloud.ctx(cloud.admin), name="  gamma  ", description="third")
    assert Project.objects.get(pk=project.pk).name == "gamma"
    assert project.description == "third"
    assert project.enabled is True


@pytest.mark.parametrize(
    "name",
    ["", "   ", "-leading-dash", "has/slash", "semi;colon", "x" * 65, "tab\tname", "é-accent"],
)
def test_project_name_is_validated(cloud, name):
    before = Project.objects.count()
    with pytest.raises(InvalidInput, match="name must be 1-64 characters"):
        services.create_project(cloud.ctx(cloud.admin), name=name)
    assert Project.objects.count() == before


@pytest.mark.parametrize("name", ["a", "Team A.1", "ops@site-2", "x" * 64])
def test_project_names_that_are_accepted(cloud, name):
    assert services.create_project(cloud.ctx(cloud.admin), name=name).name == name


@pytest.mark.parametrize("name", ["alpha", "ALPHA", "Alpha"])
def test_duplicate_project_name_is_a_conflict_case_insensitively(cloud, name):
    with pytest.raises(Conflict, match="already exists"):
        services.create_project(cloud.ctx(cloud.admin), name=name)
    assert Project.objects.filter(name__iexact="alpha").count() == 1


@pytest.mark.parametrize("who", ["member", "reader", "other_member"])
def test_only_admins_create_projects(cloud, who):
    with pytest.raises(PolicyDenied):
        services.create_project(cloud.ctx(getattr(cloud, who)), name="gamma")
    assert not Project.objects.filter(name="gamma").exists()


def test_admin_renames_describes_and_disables_project(cloud):
    ctx = cloud.ctx(cloud.admin)
    services.update_project(ctx, cloud.project, name="alpha-2", description="renamed", enabled=False)
    cloud.project.refresh_from_db()
    assert (cloud.project.name, cloud.project.description, cloud.project.enabled) == (
        "alpha-2",
        "renamed",
        False,
    )


def test_renaming_onto_an_existing_name_is_a_conflict(cloud):
    with pytest.raises(Conflict):
        services.update_project(cloud.ctx(cloud.admin), cloud.project, name="Beta")
    cloud.project.refresh_from_db()
    assert cloud.project.name == "alpha"


def test_renaming_project_to_itself_is_allowed(cloud):
    services.update_project(cloud.ctx(cloud.admin), cloud.project, name="alpha", description="same name")
    cloud.project.refresh_from_db()
    assert cloud.project.description == "same name"


def test_member_cannot_update_their_project(cloud):
    with pytest.raises(PolicyDenied):
        services.update_project(cloud.ctx(cloud.member), cloud.project, description="mine now")
    cloud.project.refresh_from_db()
    assert cloud.project.description == "test project"


@pytest.mark.parametrize(
    "change, message",
    [({"name": "root"}, "cannot be renamed"), ({"enabled": False}, "cannot be disabled")],
)
def test_admin_project_cannot_be_renamed_or_disabled(cloud, change, message):
    with pytest.raises(Conflict, match=message):
        services.update_project(cloud.ctx(cloud.admin), cloud.admin_project, **change)
    cloud.admin_project.refresh_from_db()
    assert cloud.admin_project.name == settings.ZENITH_ADMIN_PROJECT
    assert cloud.admin_project.enabled is True


def test_admin_project_description_can_change(cloud):
    services.update_project(cloud.ctx(cloud.admin), cloud.admin_project, description="ops", enabled=True)
    cloud.admin_project.refresh_from_db()
    assert cloud.admin_project.description == "ops"


def test_admin_project_cannot_be_deleted(cloud):
    with pytest.raises(Conflict, match="cannot be deleted"):
        services.delete_project(cloud.ctx(cloud.admin), cloud.admin_project)
    assert Project.objects.filter(pk=cloud.admin_project.pk).exists()


def test_admin_deletes_empty_project_and_its_assignments(cloud):
    services.delete_project(cloud.ctx(cloud.admin), cloud.other_project)
    assert not Project.objects.filter(pk=cloud.other_project.pk).exists()
    assert not cloud.other_member.role_assignments.exists()


def test_member_cannot_delete_their_project(cloud):
    with pytest.raises(PolicyDenied):
        services.delete_project(cloud.ctx(cloud.member), cloud.project)
    assert Project.objects.filter(pk=cloud.project.pk).exists()


# --- users -------------------------------------------------------------------------------------


def test_admin_creates_user_who_can_log_in(cloud):
    user = services.create_user(
        cloud.ctx(cloud.admin), username="carol", password="a-long-password", email="c@example.test"
    )
    user.refresh_from_db()
    assert user.check_password("a-long-password")
    assert "a-long-password" not in user.password
    assert (user.email, user.is_superuser, user.is_staff) == ("c@example.test", False, False)


def test_admin_creates_cloud_admin(cloud):
    user = services.create_user(
        cloud.ctx(cloud.admin), username="root2", password=PASSWORD, is_superuser=True
    )
    assert user.is_superuser and user.is_staff


@pytest.mark.parametrize("password", ["", "short", "1234567"])
def test_password_too_short_is_invalid(cloud, password):
    with pytest.raises(InvalidInput, match="too short"):
        services.create_user(cloud.ctx(cloud.admin), username="carol", password=password)
    assert not User.objects.filter(username="carol").exists()


@pytest.mark.parametrize("username", ["alice", "ALICE"])
def test_duplicate_username_is_a_conflict(cloud, username):
    with pytest.raises(Conflict, match="already exists"):
        services.create_user(cloud.ctx(cloud.admin), username=username, password=PASSWORD)


@pytest.mark.parametrize("username", ["", "bad/name", "-dash"])
def test_username_is_validated(cloud, username):
    with pytest.raises(InvalidInput):
        services.create_user(cloud.ctx(cloud.admin), username=username, password=PASSWORD)


@pytest.mark.parametrize("who", ["member", "reader"])
def test_only_admins_create_users(cloud, who):
    with pytest.raises(PolicyDenied):
        services.create_user(cloud.ctx(getattr(cloud, who)), username="carol", password=PASSWORD)
    assert not User.objects.filter(username="carol").exists()


def test_admin_changes_email_password_and_active_flag(cloud):
    services.update_user(
        cloud.ctx(cloud.admin), cloud.member, email="new@example.test", password="another-password"
    )
    cloud.member.refresh_from_db()
    assert cloud.member.email == "new@example.test"
    assert cloud.member.check_password("another-password")
    services.update_user(cloud.ctx(cloud.admin), cloud.member, is_active=False)
    cloud.member.refresh_from_db()
    assert cloud.member.is_active is False


def test_update_with_too_short_password_keeps_the_old_one(cloud):
    with pytest.raises(InvalidInput):
        services.update_user(cloud.ctx(cloud.admin), cloud.member, password="short")
    cloud.member.refresh_from_db()
    assert cloud.member.check_password(PASSWORD)


def test_admin_cannot_disable_themselves(cloud):
    with pytest.raises(Conflict, match="your own account"):
        services.update_user(cloud.ctx(cloud.admin), cloud.admin, is_active=False)
    cloud.admin.refresh_from_db()
    assert cloud.admin.is_active


def test_member_cannot_change_users(cloud):
    with pytest.raises(PolicyDenied):
        services.update_user(cloud.ctx(cloud.member), cloud.reader, email="x@example.test")


def test_admin_deletes_user_with_their_keys_and_tokens(cloud):
    services.issue_token(username="alice", password=PASSWORD, project="alpha")
    KeyPairFactory(user=cloud.member)
    services.delete_user(cloud.ctx(cloud.admin), cloud.member)
    assert not User.objects.filter(pk=cloud.member.pk).exists()
    assert not ApiToken.objects.filter(user_id=cloud.member.pk).exists()
    assert not KeyPair.objects.filter(user_id=cloud.member.pk).exists()


def test_admin_cannot_delete_themselves(cloud):
    with pytest.raises(Conflict, match="your own account"):
        services.delete_user(cloud.ctx(cloud.admin), cloud.admin)
    assert User.objects.filter(pk=cloud.admin.pk).exists()


@pytest.mark.parametrize("who", ["member", "reader"])
def test_non_admins_cannot_delete_users(cloud, who):
    with pytest.raises(PolicyDenied):
        services.delete_user(cloud.ctx(getattr(cloud, who)), cloud.other_member)
    assert User.objects.filter(pk=cloud.other_member.pk).exists()


def test_admin_promotes_and_demotes_a_user_but_not_themselves(cloud, clients):
    url = f"/api/v1/identity/users/{cloud.member.pk}/"
    response = clients["admin"].patch(url, {"is_admin": True}, format="json")
    assert response.status_code == 200 and response.json()["is_admin"] is True
    cloud.member.refresh_from_db()
    assert cloud.member.is_superuser and cloud.member.is_staff
    response = clients["admin"].patch(url, {"is_admin": False}, format="json")
    assert response.status_code == 200 and response.json()["is_admin"] is False
    cloud.admin.is_superuser = True
    cloud.admin.save()
    own = clients["admin"].patch(
        f"/api/v1/identity/users/{cloud.admin.pk}/", {"is_admin": False}, format="json"
    )
    assert own.status_code == 409
    assert own.json()["error"]["message"] == "You cannot remove your own cloud-admin status."


def test_member_cannot_promote_themselves(cloud, clients):
    response = clients["member"].patch(
        f"/api/v1/identity/users/{cloud.member.pk}/", {"is_admin": True}, format="json"
    )
    assert response.status_code == 403
    cloud.member.refresh_from_db()
    assert not cloud.member.is_superuser
