"""Dashboard pages of identity: key pair forms, role-dependent buttons, admin pages, project switcher."""

import pytest
from django.contrib.messages import get_messages

from identity import services
from identity.middleware import SESSION_PROJECT_KEY
from identity.models import KeyPair, Project, Role, RoleAssignment, User
from tests.factories import KeyPairFactory, ProjectFactory

from .helpers import ssh_fingerprint

KEYPAIRS = "/dashboard/identity/keypairs/"


@pytest.fixture
def browser(client, cloud):
    """A logged-in browser; ``browser(user)`` switches who is logged in."""

    def login(user):
        client.force_login(user)
        return client

    return login


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- key pairs -----------------------------------------------------------------------------------


def test_member_generates_a_key_pair_and_sees_the_private_key_once(cloud, browser):
    client = browser(cloud.member)
    response = client.post(KEYPAIRS, {"name": "laptop", "key_type": "ed25519", "public_key": ""})

    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="private-key-once"' in page
    assert "-----BEGIN OPENSSH PRIVATE KEY-----" in page
    assert "Key pair laptop created." in page
    keypair = KeyPair.objects.get(user=cloud.member, name="laptop")
    assert f'data-name="{keypair.name}"' in page
    assert keypair.fingerprint in page
    # The form is blank again, ready for another key, not pre-filled with "laptop".
    assert 'name="name" id="id_name" value=""' in page

    reloaded = client.get(KEYPAIRS).content.decode()
    assert "PRIVATE KEY" not in reloaded
    assert 'id="private-key-once"' not in reloaded
    assert 'data-name="laptop"' in reloaded


def test_member_imports_a_key_pair_and_is_redirected(cloud, browser, ed25519_public_key):
    client = browser(cloud.member)
    response = client.post(
        KEYPAIRS, {"name": "imported", "key_type": "ed25519", "public_key": ed25519_public_key}
    )
    assert response.status_code == 302
    assert response["Location"] == KEYPAIRS
    page = client.get(KEYPAIRS).content.decode()
    assert "Key pair imported created." in page
    assert ssh_fingerprint(ed25519_public_key) in page
    assert "PRIVATE KEY" not in page


def test_invalid_public_key_shows_the_error_on_the_form(cloud, browser):
    client = browser(cloud.member)
    response = client.post(
        KEYPAIRS, {"name": "bad", "key_type": "ed25519", "public_key": "ssh-ed25519 nonsense"}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "not a valid OpenSSH public key" in page
    assert "form-error" in page
    assert "ssh-ed25519 nonsense" in page  # what the user typed is kept for correction
    assert not KeyPair.objects.filter(name="bad").exists()


def test_rsa_1024_and_duplicate_names_are_shown_as_form_errors(cloud, browser, rsa_1024_public_key):
    client = browser(cloud.member)
    weak = client.post(KEYPAIRS, {"name": "weak", "key_type": "ed25519", "public_key": rsa_1024_public_key})
    assert weak.status_code == 200
    assert "at least 2048 bits" in weak.content.decode()
    KeyPairFactory(user=cloud.member, name="taken")
    dup = client.post(KEYPAIRS, {"name": "taken", "key_type": "ed25519"})
    assert dup.status_code == 200
    assert "already have a key pair named" in dup.content.decode()


def test_key_pair_quota_is_shown_as_a_form_error(cloud, browser):
    services.set_quotas(cloud.ctx(cloud.admin), cloud.project, {"key_pairs": 0})
    response = browser(cloud.member).post(KEYPAIRS, {"name": "k", "key_type": "ed25519"})
    assert response.status_code == 200
    assert "Quota exceeded for key_pairs" in response.content.decode()
    assert not KeyPair.objects.exists()


def test_reader_sees_no_create_form_and_a_post_is_403(cloud, browser):
    client = browser(cloud.reader)
    page = client.get(KEYPAIRS)
    assert page.status_code == 200
    assert b'id="keypair-form"' not in page.content
    assert b"Create key pair" not in page.content
    response = client.post(KEYPAIRS, {"name": "sneaky", "key_type": "ed25519"})
    assert response.status_code == 403
    assert not KeyPair.objects.exists()


def test_member_sees_the_create_form(cloud, browser):
    assert b'id="keypair-form"' in browser(cloud.member).get(KEYPAIRS).content


def test_keypair_page_lists_only_my_keys(cloud, browser):
    KeyPairFactory(user=cloud.member, name="alices-key")
    KeyPairFactory(user=cloud.other_member, name="bobs-key")
    page = browser(cloud.member).get(KEYPAIRS).content.decode()
    assert "alices-key" in page and "bobs-key" not in page


def test_owner_deletes_key_pair_from_the_dashboard(cloud, browser):
    keypair = KeyPairFactory(user=cloud.member, name="old")
    response = browser(cloud.member).post(f"/dashboard/identity/keypairs/{keypair.pk}/delete/")
    assert response.status_code == 302
    assert not KeyPair.objects.filter(pk=keypair.pk).exists()


def test_someone_elses_key_pair_is_404_on_the_dashboard(cloud, browser):
    keypair = KeyPairFactory(user=cloud.member, name="alices-key")
    for user in (cloud.other_member, cloud.reader, cloud.admin):
        response = browser(user).post(f"/dashboard/identity/keypairs/{keypair.pk}/delete/")
        assert response.status_code == 404
        assert b"alices-key" not in response.content
    assert KeyPair.objects.filter(pk=keypair.pk).exists()


def test_anonymous_is_sent_to_login(client, cloud):
    response = client.get(KEYPAIRS)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


# --- admin pages ---------------------------------------------------------------------------------

ADMIN_PAGES = [
    "/dashboard/identity/admin/projects/",
    "/dashboard/identity/admin/users/",
    "/dashboard/identity/admin/role-assignments/",
]


@pytest.mark.parametrize("path", ADMIN_PAGES)
@pytest.mark.parametrize("who", ["member", "reader", "other_member"])
def test_non_admins_get_403_on_admin_pages(cloud, browser, path, who):
    client = browser(getattr(cloud, who))
    assert client.get(path).status_code == 403
    assert client.post(path, {"name": "x"}).status_code == 403


def test_non_admin_cannot_create_a_project_by_posting(cloud, browser):
    response = browser(cloud.member).post(
        "/dashboard/identity/admin/projects/", {"name": "gamma", "enabled": "on"}
    )
    assert response.status_code == 403
    assert not Project.objects.filter(name="gamma").exists()


@pytest.mark.parametrize("who", ["member", "reader"])
def test_admin_menu_is_hidden_from_non_admins(cloud, browser, who):
    page = browser(getattr(cloud, who)).get("/dashboard/overview/").content.decode()
    assert "/dashboard/identity/admin/projects/" not in page
    assert "/dashboard/identity/admin/users/" not in page


def test_admin_sees_admin_menu_and_pages(cloud, browser):
    client = browser(cloud.admin)
    page = client.get("/dashboard/overview/").content.decode()
    for path in ADMIN_PAGES:
        assert path in page
        assert client.get(path).status_code == 200


def test_admin_creates_project_user_and_assignment_from_the_dashboard(cloud, browser):
    client = browser(cloud.admin)
    response = client.post(
        "/dashboard/identity/admin/projects/", {"name": "gamma", "description": "g", "enabled": "on"}
    )
    assert response.status_code == 302
    assert Project.objects.get(name="gamma").enabled

    response = client.post(
        "/dashboard/identity/admin/users/", {"username": "carol", "password": "long-enough-pw"}
    )
    assert response.status_code == 302
    assert User.objects.get(username="carol").check_password("long-enough-pw")

    response = client.post(
        "/dashboard/identity/admin/role-assignments/", {"user": "carol", "project": "gamma", "role": "member"}
    )
    assert response.status_code == 302
    assert RoleAssignment.objects.filter(
        user__username="carol", project__name="gamma", role__name="member"
    ).exists()
    assert "carol is now member on gamma." in messages_of(
        client.get("/dashboard/identity/admin/role-assignments/")
    )


def test_admin_form_errors_are_shown_not_raised(cloud, browser):
    client = browser(cloud.admin)
    duplicate = client.post("/dashboard/identity/admin/projects/", {"name": "alpha", "enabled": "on"})
    assert duplicate.status_code == 200
    assert "already exists" in duplicate.content.decode()
    short = client.post("/dashboard/identity/admin/users/", {"username": "carol", "password": "short"})
    assert short.status_code == 200
    assert "too short" in short.content.decode()
    again = client.post(
        "/dashboard/identity/admin/role-assignments/", {"user": "alice", "project": "alpha", "role": "member"}
    )
    assert again.status_code == 200
    assert "already holds member on alpha" in again.content.decode()


def test_admin_cannot_delete_admin_project_or_self_from_the_dashboard(cloud, browser):
    client = browser(cloud.admin)
    response = client.post(
        f"/dashboard/identity/admin/projects/{cloud.admin_project.pk}/delete/", follow=True
    )
    assert "cannot be deleted" in response.content.decode()
    assert Project.objects.filter(pk=cloud.admin_project.pk).exists()
    response = client.post(f"/dashboard/identity/admin/users/{cloud.admin.pk}/delete/", follow=True)
    assert "your own account" in response.content.decode()
    assert User.objects.filter(pk=cloud.admin.pk).exists()


def test_admin_revokes_assignment_from_the_dashboard(cloud, browser):
    assignment = RoleAssignment.objects.get(user=cloud.reader, project=cloud.project)
    response = browser(cloud.admin).post(
        f"/dashboard/identity/admin/role-assignments/{assignment.pk}/revoke/"
    )
    assert response.status_code == 302
    assert not RoleAssignment.objects.filter(pk=assignment.pk).exists()


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/identity/admin/projects/{project}/delete/",
        "/dashboard/identity/admin/users/{user}/delete/",
        "/dashboard/identity/admin/role-assignments/{assignment}/revoke/",
    ],
)
def test_non_admin_delete_posts_are_403_and_change_nothing(cloud, browser, path):
    assignment = RoleAssignment.objects.get(user=cloud.reader, project=cloud.project)
    url = path.format(project=cloud.project.pk, user=cloud.reader.pk, assignment=assignment.pk)
    assert browser(cloud.member).post(url).status_code == 403
    assert Project.objects.filter(pk=cloud.project.pk).exists()
    assert RoleAssignment.objects.filter(pk=assignment.pk).exists()


# --- project switcher ----------------------------------------------------------------------------


def current_project(client) -> str:
    page = client.get("/dashboard/overview/").content.decode()
    start = page.index('id="current-project">') + len('id="current-project">')
    return page[start : page.index("<", start)]


def test_switching_to_a_project_without_a_role_keeps_the_current_one(cloud, browser):
    client = browser(cloud.member)
    assert current_project(client) == "alpha"
    response = client.post(
        "/dashboard/switch-project/", {"project": str(cloud.other_project.pk)}, follow=True
    )
    assert response.status_code == 200
    assert "You have no role on that project." in response.content.decode()
    assert current_project(client) == "alpha"
    assert client.session[SESSION_PROJECT_KEY] == str(cloud.project.pk)


@pytest.mark.parametrize("value", ["", "not-a-uuid", "0" * 32, "../../etc"])
def test_switching_to_garbage_is_an_error_message_not_a_crash(cloud, browser, value):
    client = browser(cloud.member)
    response = client.post("/dashboard/switch-project/", {"project": value}, follow=True)
    assert response.status_code == 200
    assert "You have no role on that project." in response.content.decode()
    assert current_project(client) == "alpha"


def test_switching_to_a_project_with_a_role_changes_the_overview(cloud, browser):
    gamma = ProjectFactory(name="gamma", description="the third")
    services.assign_role(
        cloud.ctx(cloud.admin), user=cloud.member, project=gamma, role=Role.objects.get(name="reader")
    )
    client = browser(cloud.member)
    response = client.post("/dashboard/switch-project/", {"project": str(gamma.pk), "next": KEYPAIRS})
    assert response.status_code == 302
    assert response["Location"] == KEYPAIRS
    assert current_project(client) == "gamma"
    # Roles follow the project: alice is only a reader on gamma, so no create form there.
    assert b'id="keypair-form"' not in client.get(KEYPAIRS).content
    client.post("/dashboard/switch-project/", {"project": str(cloud.project.pk)})
    assert current_project(client) == "alpha"
    assert b'id="keypair-form"' in client.get(KEYPAIRS).content


def test_switcher_lists_only_my_projects(cloud, browser):
    page = browser(cloud.member).get("/dashboard/overview/").content.decode()
    assert ">alpha</option>" in page
    assert ">beta</option>" not in page
    assert ">admin</option>" not in page


def test_switch_does_not_redirect_off_site(cloud, browser):
    response = browser(cloud.member).post(
        "/dashboard/switch-project/", {"project": str(cloud.project.pk), "next": "https://evil.example/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/overview/"


def test_switch_is_post_only(cloud, browser):
    assert browser(cloud.member).get("/dashboard/switch-project/").status_code == 405


def test_losing_the_role_on_the_current_project_falls_back_to_another(cloud, browser):
    gamma = ProjectFactory(name="gamma")
    services.assign_role(
        cloud.ctx(cloud.admin), user=cloud.member, project=gamma, role=Role.objects.get(name="member")
    )
    client = browser(cloud.member)
    client.post("/dashboard/switch-project/", {"project": str(gamma.pk)})
    assert current_project(client) == "gamma"
    services.revoke_role(cloud.ctx(cloud.admin), RoleAssignment.objects.get(user=cloud.member, project=gamma))
    assert current_project(client) == "alpha"


def test_overview_shows_quota_usage(cloud, browser):
    services.set_quotas(cloud.ctx(cloud.admin), cloud.project, {"key_pairs": 4})
    KeyPairFactory(user=cloud.member)
    page = browser(cloud.member).get("/dashboard/overview/").content.decode()
    start = page.index('data-resource="key_pairs"')
    assert "1 of 4" in page[start : start + 600]


def test_user_without_any_project_sees_a_hint_not_an_error(cloud, browser):
    from tests.factories import UserFactory

    response = browser(UserFactory(username="loner")).get("/dashboard/overview/")
    assert response.status_code == 200
    assert "You hold no role on any project yet" in response.content.decode()
    assert browser(User.objects.get(username="loner")).get(KEYPAIRS).status_code == 200


# --- pagination ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, shown",
    [
        ({}, 25),
        ({"per_page": "10"}, 10),
        ({"per_page": "-1"}, 1),  # was a 500 (EmptyPage), found by tests/fuzz
        ({"per_page": "0"}, 1),
        ({"per_page": "1000000"}, 100),  # at most 100 rows a page
        ({"per_page": "ten"}, 25),
        ({"page": "99"}, 20),  # past the end: the last page (120 rows, 25 a page)
        ({"page": "-3"}, 25),
        ({"page": "x"}, 25),
    ],
)
def test_lists_page_within_bounds_whatever_the_query(cloud, browser, query, shown):
    KeyPair.objects.bulk_create(
        KeyPair(user=cloud.member, name=f"k{n:03}", public_key="ssh-ed25519 AAAA", fingerprint=f"f{n}")
        for n in range(120)
    )
    response = browser(cloud.member).get(KEYPAIRS, query)
    assert response.status_code == 200
    assert len(response.context["table"].page.object_list) == shown
