"""Policy as data: the rule grammar, the defaults, and the YAML override named in settings."""

import os
from types import SimpleNamespace

import pytest
import yaml

from identity import policy
from identity.context import Context
from identity.errors import PolicyDenied

KEYPAIRS = "/api/v1/identity/keypairs/"


def ctx(*roles: str, is_admin: bool = False, user_id: int | None = 1) -> Context:
    user = SimpleNamespace(pk=user_id) if user_id is not None else None
    return Context(user=user, project=None, roles=frozenset(roles), is_admin=is_admin)


# --- grammar -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule, roles, expected",
    [
        ("role:reader", {"reader"}, True),
        ("role:reader", {"member"}, True),
        ("role:reader", {"admin"}, True),
        ("role:member", {"reader"}, False),
        ("role:member", {"member"}, True),
        ("role:member", {"admin"}, True),
        ("role:admin", {"member"}, False),
        ("role:admin", {"reader"}, False),
        ("role:admin", {"admin"}, True),
        ("role:member", set(), False),
        ("role:auditor", {"auditor"}, True),  # a custom role implies only itself
        ("role:reader", {"auditor"}, False),
        ("role:member", {"reader", "auditor"}, False),
    ],
)
def test_roles_imply_each_other_admin_member_reader(rule, roles, expected):
    assert policy.evaluate(rule, ctx(*roles)) is expected


@pytest.mark.parametrize(
    "rule, expected",
    [
        ("@", True),
        ("!", False),
        ("", False),
        ("@ and !", False),
        ("! or @", True),
        ("! and @ or @", True),  # (! and @) or @
        ("@ or ! and !", True),  # @ or (! and !): `and` binds tighter
        ("! or @ and !", False),  # ! or (@ and !)
        ("role:reader and role:member", False),
        ("role:reader or role:member", True),
        ("role:admin or role:reader and !", False),
        ("role:reader and @ or !", True),
        ("unknown_term", False),
        ("unknown_term or @", True),
    ],
)
def test_and_binds_tighter_than_or(rule, expected):
    assert policy.evaluate(rule, ctx("reader")) is expected


def test_precedence_differs_from_left_to_right_reading():
    admin = ctx("admin")
    # Left to right, "(role:admin or role:reader) and !" would be False for an admin.
    assert policy.evaluate("role:admin or role:reader and !", admin) is True


def test_is_admin_and_authenticated():
    assert policy.evaluate("is_admin", ctx(is_admin=True)) is True
    assert policy.evaluate("is_admin", ctx("admin")) is False  # admin of a project is not a cloud admin
    assert policy.evaluate("authenticated", ctx()) is True
    assert policy.evaluate("authenticated", ctx(user_id=None)) is False
    assert policy.evaluate(policy.MEMBER, ctx(is_admin=True)) is True
    assert policy.evaluate(policy.MEMBER, ctx("reader")) is False


def test_owner_compares_the_targets_user_with_the_caller():
    mine, theirs = SimpleNamespace(user_id=1), SimpleNamespace(user_id=2)
    assert policy.evaluate("owner", ctx(user_id=1), mine) is True
    assert policy.evaluate("owner", ctx(user_id=1), theirs) is False
    assert policy.evaluate("owner", ctx(user_id=1), None) is False
    assert policy.evaluate("owner", ctx(user_id=None), SimpleNamespace(user_id=None)) is False
    assert policy.evaluate("owner", ctx(user_id=1), SimpleNamespace()) is False
    assert policy.evaluate(policy.OWNER, ctx(is_admin=True), theirs) is True


def test_unknown_action_is_denied_even_for_a_cloud_admin():
    admin = ctx("admin", is_admin=True)
    assert policy.check(admin, "identity:unicorn:create") is False
    with pytest.raises(PolicyDenied) as exc:
        policy.enforce(admin, "identity:unicorn:create")
    assert exc.value.status == 403
    assert "identity:unicorn:create" in exc.value.message


@pytest.mark.parametrize(
    "action, reader, member, admin",
    [
        ("identity:keypair:create", False, True, True),
        ("identity:keypair:list", True, True, True),
        ("identity:project:create", False, False, True),
        ("identity:quota:show", True, True, True),
        ("identity:quota:update", False, False, True),
        ("identity:role_assignment:create", False, False, True),
    ],
)
def test_default_rules(action, reader, member, admin):
    assert policy.check(ctx("reader"), action) is reader
    assert policy.check(ctx("member"), action) is member
    assert policy.check(ctx(is_admin=True), action) is admin


# --- YAML override -------------------------------------------------------------------------------


def test_yaml_override_makes_key_pair_creation_admin_only(cloud, clients, policy_file):
    policy_file({"identity:keypair:create": "is_admin"})
    response = clients["member"].post(KEYPAIRS, {"name": "k"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "policy_denied"
    assert clients["admin"].post(KEYPAIRS, {"name": "k"}, format="json").status_code == 201
    # Rules the file does not name keep their defaults.
    assert clients["member"].get(KEYPAIRS).status_code == 200


def test_yaml_override_can_open_an_action_to_readers(cloud, clients, policy_file):
    assert clients["reader"].post(KEYPAIRS, {"name": "k"}, format="json").status_code == 403
    policy_file({"identity:keypair:create": "@"})
    response = clients["reader"].post(KEYPAIRS, {"name": "k"}, format="json")
    assert response.status_code == 201
    assert response.json()["private_key"]


def test_editing_the_policy_file_takes_effect_without_restart(cloud, clients, policy_file):
    path = policy_file({"identity:keypair:create": "!"})
    assert clients["member"].post(KEYPAIRS, {"name": "a"}, format="json").status_code == 403
    path.write_text(yaml.safe_dump({"identity:keypair:create": "role:member"}), encoding="utf-8")
    mtime = path.stat().st_mtime
    os.utime(path, (mtime + 1, mtime + 1))  # the cache keys on mtime; do not rely on its resolution
    assert clients["member"].post(KEYPAIRS, {"name": "a"}, format="json").status_code == 201


def test_yaml_override_applies_to_the_dashboard_too(cloud, client, policy_file):
    policy_file({"identity:keypair:create": "is_admin"})
    client.force_login(cloud.member)
    page = client.get("/dashboard/identity/keypairs/")
    assert page.status_code == 200
    assert b'id="keypair-form"' not in page.content
    assert (
        client.post("/dashboard/identity/keypairs/", {"name": "k", "key_type": "ed25519"}).status_code == 403
    )


def test_missing_policy_file_falls_back_to_defaults(cloud, clients, settings, tmp_path):
    settings.ZENITH_POLICY_FILE = str(tmp_path / "absent.yaml")
    assert clients["member"].post(KEYPAIRS, {"name": "k"}, format="json").status_code == 201
    assert clients["reader"].post(KEYPAIRS, {"name": "k"}, format="json").status_code == 403


def test_effective_rules_overlay_defaults(policy_file):
    policy_file({"identity:keypair:create": "is_admin", "custom:thing:do": "role:member"})
    rules = policy.effective_rules()
    assert rules["identity:keypair:create"] == "is_admin"
    assert rules["custom:thing:do"] == "role:member"
    assert rules["identity:project:create"] == policy.ADMIN
