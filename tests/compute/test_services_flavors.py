"""compute.services for flavors: policy, validation, immutable sizes, access to private flavors, seeding."""

import pytest
from django.core.management import call_command

from compute import services
from compute.models import Flavor, FlavorAccess
from identity.context import system_context
from identity.errors import Conflict, InvalidInput, NotFound, PolicyDenied

VALID = {"name": "c1.custom", "vcpus": 2, "ram_mb": 4096, "disk_gb": 40}


def test_admin_creates_a_flavor_with_every_field(cloud):
    flavor = services.create_flavor(
        cloud.ctx(cloud.admin),
        **VALID,
        ephemeral_gb=10,
        swap_mb=512,
        is_public=False,
        extra_specs={"hw:cpu_policy": "dedicated"},
        description="pinned",
    )
    flavor = Flavor.objects.get(pk=flavor.pk)
    assert (flavor.vcpus, flavor.ram_mb, flavor.disk_gb, flavor.ephemeral_gb, flavor.swap_mb) == (
        2,
        4096,
        40,
        10,
        512,
    )
    assert flavor.extra_specs == {"hw:cpu_policy": "dedicated"}
    assert not flavor.is_public and not flavor.disabled and flavor.description == "pinned"


@pytest.mark.parametrize("who", ["member", "reader", "other_member"])
def test_only_admins_create_flavors(cloud, who):
    with pytest.raises(PolicyDenied):
        services.create_flavor(cloud.ctx(getattr(cloud, who)), **VALID)
    assert not Flavor.objects.exists()


@pytest.mark.parametrize(
    "field, value",
    [
        ("name", ""),
        ("name", " "),
        ("name", "-starts-with-dash"),
        ("name", "x" * 65),
        ("name", "bad/slash"),
        ("vcpus", 0),
        ("vcpus", 1025),
        ("vcpus", True),
        ("vcpus", "2"),
        ("ram_mb", 63),
        ("ram_mb", 2**31),
        ("disk_gb", -1),
        ("ephemeral_gb", -1),
        ("swap_mb", -1),
        ("extra_specs", ["a"]),
        ("extra_specs", {"key": 1}),
        ("extra_specs", {"": "v"}),
        ("extra_specs", {"k": "v" * 256}),
        ("is_public", "yes"),
        ("description", "d" * 1025),
    ],
)
def test_create_rejects_bad_input(cloud, field, value):
    with pytest.raises(InvalidInput):
        services.create_flavor(cloud.ctx(cloud.admin), **{**VALID, field: value})
    assert not Flavor.objects.exists()


def test_bounds_are_inclusive(cloud):
    ctx = cloud.ctx(cloud.admin)
    services.create_flavor(ctx, name="smallest", vcpus=1, ram_mb=64, disk_gb=0)
    services.create_flavor(ctx, name="widest", vcpus=1024, ram_mb=64, disk_gb=0)
    assert Flavor.objects.count() == 2


def test_duplicate_name_is_a_conflict_whatever_the_case(cloud):
    ctx = cloud.ctx(cloud.admin)
    services.create_flavor(ctx, **VALID)
    with pytest.raises(Conflict):
        services.create_flavor(ctx, **{**VALID, "name": "C1.CUSTOM"})
    assert Flavor.objects.count() == 1


def test_update_changes_description_visibility_specs_and_disabled(cloud):
    ctx = cloud.ctx(cloud.admin)
    flavor = services.create_flavor(ctx, **VALID)
    services.update_flavor(
        ctx, flavor, description="new", is_public=False, extra_specs={"a": "b"}, disabled=True
    )
    flavor.refresh_from_db()
    assert (flavor.description, flavor.is_public, flavor.extra_specs, flavor.disabled) == (
        "new",
        False,
        {"a": "b"},
        True,
    )


@pytest.mark.parametrize(
    "field, value",
    [
        ("name", "renamed"),
        ("vcpus", 4),
        ("ram_mb", 8192),
        ("disk_gb", 80),
        ("ephemeral_gb", 1),
        ("swap_mb", 1),
    ],
)
def test_sizes_and_name_are_immutable(cloud, field, value):
    ctx = cloud.ctx(cloud.admin)
    flavor = services.create_flavor(ctx, **VALID)
    with pytest.raises(InvalidInput) as refused:
        services.update_flavor(ctx, flavor, **{field: value}, description="ignored")
    assert refused.value.code == "immutable" and field in refused.value.message
    flavor.refresh_from_db()
    assert getattr(flavor, field) != value and flavor.description == ""


def test_sending_the_same_sizes_back_is_accepted(cloud):
    ctx = cloud.ctx(cloud.admin)
    flavor = services.create_flavor(ctx, **VALID)
    services.update_flavor(ctx, flavor, **VALID, description="same sizes")
    flavor.refresh_from_db()
    assert flavor.description == "same sizes"


def test_members_cannot_update_or_delete(cloud):
    flavor = services.create_flavor(cloud.ctx(cloud.admin), **VALID)
    with pytest.raises(PolicyDenied):
        services.update_flavor(cloud.ctx(cloud.member), flavor, description="mine")
    with pytest.raises(PolicyDenied):
        services.delete_flavor(cloud.ctx(cloud.member), flavor)
    assert Flavor.objects.get(pk=flavor.pk).description == ""


def test_delete_removes_the_flavor_and_its_access(cloud, flavors):
    ctx = cloud.ctx(cloud.admin)
    services.add_flavor_access(ctx, flavors.private, cloud.project)
    services.delete_flavor(ctx, flavors.private)
    assert not Flavor.objects.filter(pk=flavors.private.pk).exists()
    assert not FlavorAccess.objects.exists()


# --- visibility and access ---------------------------------------------------------------------------


def visible_names(ctx) -> set[str]:
    return set(Flavor.objects.visible_to(ctx).values_list("name", flat=True))


def test_private_flavors_are_visible_to_admins_and_to_projects_given_access(cloud, flavors):
    admin = cloud.ctx(cloud.admin)
    assert visible_names(admin) == {"m1.small", "secret.big"}
    assert visible_names(system_context()) == {"m1.small", "secret.big"}
    for user in (cloud.member, cloud.reader, cloud.other_member):
        assert visible_names(cloud.ctx(user)) == {"m1.small"}

    services.add_flavor_access(admin, flavors.private, cloud.project)
    assert visible_names(cloud.ctx(cloud.member)) == {"m1.small", "secret.big"}
    assert visible_names(cloud.ctx(cloud.reader)) == {"m1.small", "secret.big"}
    assert visible_names(cloud.ctx(cloud.other_member)) == {"m1.small"}

    services.remove_flavor_access(admin, flavors.private, cloud.project)
    assert visible_names(cloud.ctx(cloud.member)) == {"m1.small"}


def test_a_public_flavor_is_listed_once_whatever_its_access_rows(cloud, flavors):
    admin = cloud.ctx(cloud.admin)
    services.add_flavor_access(admin, flavors.private, cloud.project)
    services.add_flavor_access(admin, flavors.private, cloud.other_project)
    services.update_flavor(admin, flavors.private, is_public=True)
    names = list(Flavor.objects.visible_to(cloud.ctx(cloud.member)).values_list("name", flat=True))
    assert sorted(names) == ["m1.small", "secret.big"]
    # Making it public dropped the access rows: they could no longer be removed.
    assert not FlavorAccess.objects.exists()


def test_anonymous_context_sees_nothing(cloud, flavors):
    from identity.context import build_context

    assert visible_names(build_context(None, None)) == set()


def test_access_rules(cloud, flavors):
    admin = cloud.ctx(cloud.admin)
    with pytest.raises(Conflict):
        services.add_flavor_access(admin, flavors.public, cloud.project)
    with pytest.raises(Conflict):
        services.remove_flavor_access(admin, flavors.public, cloud.project)
    with pytest.raises(NotFound):
        services.remove_flavor_access(admin, flavors.private, cloud.project)
    services.add_flavor_access(admin, flavors.private, cloud.project)
    with pytest.raises(Conflict):
        services.add_flavor_access(admin, flavors.private, cloud.project)
    with pytest.raises(PolicyDenied):
        services.add_flavor_access(cloud.ctx(cloud.member), flavors.private, cloud.other_project)
    with pytest.raises(PolicyDenied):
        services.remove_flavor_access(cloud.ctx(cloud.member), flavors.private, cloud.project)
    assert list(FlavorAccess.objects.values_list("project__name", flat=True)) == ["alpha"]


# --- seeding -----------------------------------------------------------------------------------------

OPENSTACK_DEFAULTS = {
    "m1.tiny": (1, 512, 1),
    "m1.small": (1, 2048, 20),
    "m1.medium": (2, 4096, 40),
    "m1.large": (4, 8192, 80),
    "m1.xlarge": (8, 16384, 160),
}


def test_seed_flavors_is_idempotent(db):
    assert len(services.seed_flavors()) == 5
    assert services.seed_flavors() == []
    seeded = {f.name: (f.vcpus, f.ram_mb, f.disk_gb) for f in Flavor.objects.all()}
    assert seeded == OPENSTACK_DEFAULTS
    assert all(f.is_public and not f.disabled for f in Flavor.objects.all())


def test_seed_keeps_existing_flavors(cloud, flavors):
    # m1.small exists (with the default sizes): only the four others are added.
    assert sorted(f.name for f in services.seed_flavors()) == [
        "m1.large",
        "m1.medium",
        "m1.tiny",
        "m1.xlarge",
    ]
    assert Flavor.objects.count() == 6


def test_seed_flavors_command_twice(db, capsys):
    call_command("seed_flavors")
    call_command("seed_flavors")
    assert Flavor.objects.count() == 5
    out = capsys.readouterr().out
    assert "m1.tiny" in out and "none (all present)" in out
