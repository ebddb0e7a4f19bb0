"""identity.services: role assignments (with their guardian grants and token revocation) and quotas."""

import pytest
from django.conf import settings

from identity import quotas, services
from identity.errors import Conflict, InvalidInput, NotAuthenticated, PolicyDenied, QuotaExceeded
from identity.models import ApiToken, Project, Quota, Role, RoleAssignment
from tests.factories import PASSWORD, ProjectFactory, UserFactory


def role(name: str) -> Role:
    return Role.objects.get(name=name)


# --- role assignments ----------------------------------------------------------------------------


def test_assign_role_grants_view_permission_on_the_project(cloud):
    carol = UserFactory(username="carol")
    assert not carol.has_perm("identity.view_project", cloud.project)

    assignment = services.assign_role(
        cloud.ctx(cloud.admin), user=carol, project=cloud.project, role=role("reader")
    )

    carol = type(carol).objects.get(pk=carol.pk)  # a fresh object: guardian caches permissions per instance
    assert carol.has_perm("identity.view_project", cloud.project)
    assert not carol.has_perm("identity.view_project", cloud.other_project)
    assert not carol.has_perm("identity.change_project", cloud.project)
    assert assignment.role.name == "reader"
    assert carol.default_project_id == cloud.project.pk


def test_admin_role_also_grants_change_permission(cloud):
    carol = UserFactory(username="carol")
    services.assign_role(cloud.ctx(cloud.admin), user=carol, project=cloud.project, role=role("admin"))
    carol = type(carol).objects.get(pk=carol.pk)
    assert carol.has_perm("identity.change_project", cloud.project)


def test_first_assignment_sets_default_project_and_later_ones_keep_it(cloud):
    carol = UserFactory(username="carol")
    ctx = cloud.ctx(cloud.admin)
    services.assign_role(ctx, user=carol, project=cloud.other_project, role=role("member"))
    services.assign_role(ctx, user=carol, project=cloud.project, role=role("member"))
    carol.refresh_from_db()
    assert carol.default_project_id == cloud.other_project.pk


def test_duplicate_assignment_is_a_conflict(cloud):
    with pytest.raises(Conflict, match="already holds member on alpha"):
        services.assign_role(
            cloud.ctx(cloud.admin), user=cloud.member, project=cloud.project, role=role("member")
        )
    assert RoleAssignment.objects.filter(user=cloud.member, project=cloud.project).count() == 1


def test_second_role_on_the_same_project_is_allowed(cloud):
    services.assign_role(
        cloud.ctx(cloud.admin), user=cloud.member, project=cloud.project, role=role("reader")
    )
    assert RoleAssignment.objects.filter(user=cloud.member, project=cloud.project).count() == 2


@pytest.mark.parametrize("who", ["member", "reader", "other_member"])
def test_only_admins_assign_roles(cloud, who):
    with pytest.raises(PolicyDenied):
        services.assign_role(
            cloud.ctx(getattr(cloud, who)), user=cloud.other_member, project=cloud.project, role=role("admin")
        )
    assert not RoleAssignment.objects.filter(user=cloud.other_member, project=cloud.project).exists()


def test_revoke_removes_permission_and_revokes_tokens_for_that_project(cloud):
    alpha_token = services.issue_token(username="alice", password=PASSWORD, project="alpha")
    gamma = ProjectFactory(name="gamma")
    services.assign_role(cloud.ctx(cloud.admin), user=cloud.member, project=gamma, role=role("member"))
    gamma_token = services.issue_token(username="alice", password=PASSWORD, project="gamma")

    assignment = RoleAssignment.objects.get(user=cloud.member, project=cloud.project)
    services.revoke_role(cloud.ctx(cloud.admin), assignment)

    member = type(cloud.member).objects.get(pk=cloud.member.pk)
    assert not member.has_perm("identity.view_project", cloud.project)
    assert member.has_perm("identity.view_project", gamma)
    with pytest.raises(NotAuthenticated) as exc:
        services.authenticate_token(alpha_token.token)
    assert exc.value.code == "token_revoked"
    assert services.authenticate_token(gamma_token.token).project == gamma
    with pytest.raises(NotAuthenticated):
        services.issue_token(username="alice", password=PASSWORD, project="alpha")


def test_revoking_one_of_two_roles_keeps_access_and_tokens(cloud):
    services.assign_role(
        cloud.ctx(cloud.admin), user=cloud.member, project=cloud.project, role=role("reader")
    )
    token = services.issue_token(username="alice", password=PASSWORD, project="alpha")
    member_assignment = RoleAssignment.objects.get(
        user=cloud.member, project=cloud.project, role__name="member"
    )

    services.revoke_role(cloud.ctx(cloud.admin), member_assignment)

    member = type(cloud.member).objects.get(pk=cloud.member.pk)
    assert member.has_perm("identity.view_project", cloud.project)
    assert services.authenticate_token(token.token).revoked_at is None


def test_revoking_admin_keeps_view_but_drops_change_permission(cloud):
    carol = UserFactory(username="carol")
    ctx = cloud.ctx(cloud.admin)
    services.assign_role(ctx, user=carol, project=cloud.project, role=role("reader"))
    admin_assignment = services.assign_role(ctx, user=carol, project=cloud.project, role=role("admin"))
    services.revoke_role(ctx, admin_assignment)
    carol = type(carol).objects.get(pk=carol.pk)
    assert carol.has_perm("identity.view_project", cloud.project)
    assert not carol.has_perm("identity.change_project", cloud.project)


def test_admin_cannot_remove_their_own_admin_role_on_the_admin_project(cloud):
    assignment = RoleAssignment.objects.get(user=cloud.admin, project__name=settings.ZENITH_ADMIN_PROJECT)
    with pytest.raises(Conflict, match="your own admin role"):
        services.revoke_role(cloud.ctx(cloud.admin), assignment)
    assert RoleAssignment.objects.filter(pk=assignment.pk).exists()


def test_a_superuser_cannot_remove_their_own_admin_role_either(cloud):
    """The demo's admin is a superuser too: the refusal is the same, as for deleting oneself."""
    type(cloud.admin).objects.filter(pk=cloud.admin.pk).update(is_superuser=True, is_staff=True)
    admin = type(cloud.admin).objects.get(pk=cloud.admin.pk)
    assignment = RoleAssignment.objects.get(user=admin, project__name=settings.ZENITH_ADMIN_PROJECT)
    with pytest.raises(Conflict, match="your own admin role"):
        services.revoke_role(cloud.ctx(admin), assignment)
    assert RoleAssignment.objects.filter(pk=assignment.pk).exists()


@pytest.mark.parametrize("who", ["member", "reader"])
def test_only_admins_revoke_roles(cloud, who):
    assignment = RoleAssignment.objects.get(user=cloud.reader, project=cloud.project)
    with pytest.raises(PolicyDenied):
        services.revoke_role(cloud.ctx(getattr(cloud, who)), assignment)
    assert RoleAssignment.objects.filter(pk=assignment.pk).exists()


# --- quotas ------------------------------------------------------------------------------------


def test_limits_default_to_settings_and_admin_overrides_them(cloud):
    assert quotas.limits(cloud.project) == settings.ZENITH_DEFAULT_QUOTAS
    result = services.set_quotas(cloud.ctx(cloud.admin), cloud.project, {"instances": 3, "cores": -1})
    assert result["instances"] == 3 and result["cores"] == -1
    assert result["ram"] == settings.ZENITH_DEFAULT_QUOTAS["ram"]
    assert quotas.limits(cloud.other_project) == settings.ZENITH_DEFAULT_QUOTAS
    services.set_quotas(cloud.ctx(cloud.admin), cloud.project, {"instances": 4})
    assert Quota.objects.get(project=cloud.project, resource="instances").limit == 4


def test_largest_quota_is_accepted(cloud):
    result = services.set_quotas(cloud.ctx(cloud.admin), cloud.project, {"instances": 2**31 - 1})
    assert result["instances"] == 2**31 - 1


@pytest.mark.parametrize(
    "limits, message",
    [
        ({"unicorns": 3}, "Unknown quota resource"),
        ({"instances": 3, "unicorns": 3}, "Unknown quota resource"),
        ({"instances": "ten"}, "must be an integer"),
        ({"instances": 2.5}, "must be an integer"),
        ({"instances": None}, "must be an integer"),
        ({"instances": True}, "must be an integer"),
        ({"instances": -2}, "must be an integer >= -1"),
        ({"instances": 2**31}, "<= 2147483647"),  # would overflow the column: a 500 before
        ({"instances": 10**20}, "<= 2147483647"),
    ],
)
def test_set_quotas_rejects_bad_limits_and_stores_nothing(cloud, limits, message):
    with pytest.raises(InvalidInput, match=message):
        services.set_quotas(cloud.ctx(cloud.admin), cloud.project, limits)
    assert not Quota.objects.filter(project=cloud.project).exists()


@pytest.mark.parametrize("who", ["member", "reader"])
def test_only_admins_set_quotas(cloud, who):
    with pytest.raises(PolicyDenied):
        services.set_quotas(cloud.ctx(getattr(cloud, who)), cloud.project, {"instances": 1000})
    assert not Quota.objects.filter(project=cloud.project).exists()


def test_key_pair_quota_is_enforced_with_a_message_naming_the_resource(cloud, ed25519_public_key):
    services.set_quotas(cloud.ctx(cloud.admin), cloud.project, {"key_pairs": 2})
    ctx = cloud.ctx(cloud.member)
    services.create_keypair(ctx, name="one")
    services.create_keypair(ctx, name="two", public_key=ed25519_public_key)
    with pytest.raises(QuotaExceeded) as exc:
        services.create_keypair(ctx, name="three")
    assert "key_pairs" in exc.value.message
    assert "limit 2" in exc.value.message
    assert exc.value.status == 413
    assert cloud.member.keypairs.count() == 2
    usage = {row["resource"]: row for row in quotas.summary(cloud.project, cloud.member)}
    assert usage["key_pairs"] == {"resource": "key_pairs", "limit": 2, "in_use": 2, "remaining": 0}


def test_unlimited_quota_never_refuses(cloud):
    services.set_quotas(cloud.ctx(cloud.admin), cloud.project, {"key_pairs": -1})
    ctx = cloud.ctx(cloud.member)
    for n in range(3):
        services.create_keypair(ctx, name=f"k{n}")
    row = {r["resource"]: r for r in quotas.summary(cloud.project, cloud.member)}["key_pairs"]
    assert row["remaining"] is None and row["in_use"] == 3


def test_zero_quota_refuses_the_first_key(cloud):
    services.set_quotas(cloud.ctx(cloud.admin), cloud.project, {"key_pairs": 0})
    with pytest.raises(QuotaExceeded, match="key_pairs"):
        services.create_keypair(cloud.ctx(cloud.member), name="first")


def test_deleting_a_project_removes_its_quotas(cloud):
    services.set_quotas(cloud.ctx(cloud.admin), cloud.other_project, {"instances": 1})
    services.delete_project(cloud.ctx(cloud.admin), cloud.other_project)
    assert not Quota.objects.filter(project_id=cloud.other_project.pk).exists()
    assert not Project.objects.filter(pk=cloud.other_project.pk).exists()
    assert not ApiToken.objects.filter(project_id=cloud.other_project.pk).exists()
