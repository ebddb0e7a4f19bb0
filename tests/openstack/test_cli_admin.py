"""The stock ``openstack`` CLI for what needs no host agents: a cloud admin's identity work (projects,
users, role grants and assignments), quotas, private flavors shared with projects, and a member's
image tags and sharing with another project's consent; each command checked in the database.

Fewer commands than checks: every CLI start costs a second or two, so each flow runs once."""

from __future__ import annotations

import pytest
from django.conf import settings

from compute import services
from compute.models import Flavor, FlavorAccess, Image, ImageMember
from identity import quotas
from identity.models import Project, RoleAssignment, User

from .conftest import Cli, client_env, os_vars, require_clients

pytestmark = [pytest.mark.openstack, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

STRONG = "correct-horse-battery-staple-42"


@pytest.fixture
def live_cloud(cloud, live_server, settings):
    """The cloud's users and the seeded flavors behind a live portal (no host agents: nothing here
    launches a server)."""
    require_clients()
    settings.ZENITH_PORTAL_URL = live_server.url
    services.seed_flavors()
    return cloud


def cli_for(live_server, tmp_path, username: str, project: str) -> Cli:
    home = tmp_path / username
    home.mkdir()
    return Cli(client_env(home, **os_vars(live_server, username, project)))


def test_an_admin_manages_projects_users_roles_and_quotas(live_cloud, live_server, tmp_path):
    cli = cli_for(live_server, tmp_path, "cloudadmin", settings.ZENITH_ADMIN_PROJECT)

    created = cli.json("project", "create", "--description", "the gamma team", "gamma")
    assert Project.objects.get(pk=created["id"]).description == "the gamma team"
    cli.run("project", "set", "--name", "gamma2", "--disable", "gamma")
    project = Project.objects.get(pk=created["id"])
    assert (project.name, project.enabled) == ("gamma2", False)
    cli.run("project", "set", "--enable", "gamma2")

    user = cli.json(
        "user", "create", "--password", STRONG, "--email", "c@example.org", "--project", "gamma2", "carol"
    )
    carol = User.objects.get(pk=user["id"])
    assert (carol.email, carol.default_project_id, carol.check_password(STRONG)) == (
        "c@example.org",
        project.pk,
        True,
    )
    cli.run("role", "add", "--project", "gamma2", "--user", "carol", "member")
    assert RoleAssignment.objects.filter(user=carol, project=project, role__name="member").exists()
    listed = cli.json("role", "assignment", "list", "--project", "gamma2", "--names")
    assert [(a["Role"], a["User"], a["Project"]) for a in listed] == [
        ("member", "carol@Default", "gamma2@Default")
    ]

    # carol signs in to her project with the stock CLI and sees its quota, as set by the admin.
    cli.run("quota", "set", "--instances", "3", "--cores", "6", "--ram", "4096", "gamma2")
    assert {k: quotas.limits(project)[k] for k in ("instances", "cores", "ram")} == {
        "instances": 3,
        "cores": 6,
        "ram": 4096,
    }
    carol_cli = Cli(
        client_env(
            tmp_path / "cloudadmin", **{**os_vars(live_server, "carol", "gamma2"), "OS_PASSWORD": STRONG}
        )
    )
    shown = {row["Resource"]: row["Limit"] for row in carol_cli.json("quota", "show")}
    assert (shown["instances"], shown["cores"], shown["ram"]) == (3, 6, 4096)
    refused = carol_cli.run("quota", "set", "--instances", "99", "gamma2", check=False)
    assert refused.returncode == 1 and "403" in refused.stderr

    cli.run("role", "remove", "--project", "gamma2", "--user", "carol", "member")
    assert not RoleAssignment.objects.filter(user=carol, project=project).exists()
    cli.run("user", "set", "--email", "carol@example.org", "--disable", "carol")
    carol.refresh_from_db()
    assert (carol.email, carol.is_active) == ("carol@example.org", False)
    cli.run("user", "delete", "carol")
    cli.run("project", "delete", "gamma2")
    assert (
        not User.objects.filter(username="carol").exists()
        and not Project.objects.filter(name="gamma2").exists()
    )
    gone = cli.run("project", "show", "gamma2", check=False)
    assert gone.returncode == 1


def test_private_flavors_shared_with_projects(live_cloud, live_server, tmp_path):
    admin = cli_for(live_server, tmp_path, "cloudadmin", settings.ZENITH_ADMIN_PROJECT)
    member = cli_for(live_server, tmp_path, "alice", "alpha")

    created = admin.json(
        "flavor",
        "create",
        "--private",
        "--project",
        "alpha",
        "--ram",
        "256",
        "--disk",
        "1",
        "--vcpus",
        "1",
        "--property",
        "hw:cpu_policy=shared",
        "p.nano",
    )
    flavor = Flavor.objects.get(pk=created["id"])
    assert not flavor.is_public and flavor.extra_specs == {"hw:cpu_policy": "shared"}
    assert list(FlavorAccess.objects.filter(flavor=flavor).values_list("project__name", flat=True)) == [
        "alpha"
    ]
    admin.run("flavor", "set", "--project", "beta", "p.nano")
    shown = admin.json("flavor", "show", "p.nano")
    assert sorted(shown["access_project_ids"]) == sorted(
        [str(live_cloud.project.pk), str(live_cloud.other_project.pk)]
    )
    assert shown["properties"] == {"hw:cpu_policy": "shared"}
    admin.run("flavor", "unset", "--project", "beta", "p.nano")
    assert [f["Name"] for f in member.json("flavor", "list", "--all")].count("p.nano") == 1
    assert member.json("flavor", "show", "p.nano")["id"] == str(flavor.pk)


def test_image_tags_and_sharing_with_consent(live_cloud, live_server, tmp_path, image_file):
    alice = cli_for(live_server, tmp_path, "alice", "alpha")
    bob = cli_for(live_server, tmp_path, "bob", "beta")
    image = alice.json(
        "image",
        "create",
        "--file",
        str(image_file),
        "--disk-format",
        "qcow2",
        "--shared",
        "--tag",
        "blue",
        "shared-img",
    )
    assert Image.objects.get(pk=image["id"]).tags == ["blue"]
    alice.run("image", "set", "--tag", "green", "--property", "os_distro=cirros", "shared-img")
    alice.run("image", "unset", "--tag", "blue", "shared-img")
    row = Image.objects.get(pk=image["id"])
    assert (row.tags, row.properties.get("os_distro")) == (["green"], "cirros")

    beta = str(live_cloud.other_project.pk)
    member = alice.json("image", "add", "project", "shared-img", beta)
    assert (member["member_id"], member["status"]) == (beta, "pending")
    assert "shared-img" not in [i["Name"] for i in bob.json("image", "list")]
    bob.run("image", "set", "--accept", image["id"])
    assert ImageMember.objects.get(image_id=image["id"], project_id=beta).status == "accepted"
    assert "shared-img" in [i["Name"] for i in bob.json("image", "list")]
    members = alice.json("image", "member", "list", "shared-img")
    assert [(m["Member ID"], m["Status"]) for m in members] == [(beta, "accepted")]
    alice.run("image", "remove", "project", "shared-img", beta)
    assert not ImageMember.objects.filter(image_id=image["id"]).exists()
