"""Strict request bodies everywhere: an unknown (or read-only) key is a 400 naming it, a JSON value of
the wrong type is a 400 instead of being coerced, and every writable serializer of identity, compute and
workers derives from the one strict base (identity.api.strict)."""

import importlib
import inspect

import pytest
from rest_framework import serializers

from compute.models import Instance
from identity.api.strict import RefusesUnknownKeys
from identity.models import Role
from tests.compute.conftest import make_flavor, make_host
from tests.compute.instance_helpers import in_state, launch
from tests.identity.helpers import error_of

API = "/api/v1"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def objects(cloud):
    flavor = make_flavor("strict.small", is_public=False)
    host = make_host("strict-1")
    instance = in_state(launch(cloud, flavor=make_flavor("strict.vm")), Instance.ACTIVE)
    return {"flavor": flavor.pk, "host": host.pk, "instance": instance.pk, "project": cloud.project.pk}


# (role, method, path, a body that is valid but for the unknown key "bogus")
CASES = [
    ("admin", "post", "/compute/flavors/", {"name": "s1", "vcpus": 1, "ram_mb": 512, "disk_gb": 1}),
    ("admin", "patch", "/compute/flavors/{flavor}/", {"description": "x"}),
    ("admin", "post", "/compute/flavors/{flavor}/access/", {"project": "{project}"}),
    ("admin", "post", "/compute/hosts/{host}/disable/", {"reason": "maintenance"}),
    ("admin", "post", "/compute/hosts/{host}/enable/", {}),
    ("admin", "post", "/compute/hosts/report/", {}),
    ("admin", "post", "/compute/scheduler/explain/", {"flavor": "strict.small"}),
    ("member", "post", "/compute/images/", {"name": "img", "disk_format": "raw"}),
    ("member", "post", "/compute/instances/", {"name": "vm2", "flavor": "strict.vm", "image": "cirros"}),
    ("member", "post", "/compute/instances/{instance}/reboot/", {"type": "soft"}),
    ("member", "post", "/compute/instances/{instance}/stop/", {}),
    ("member", "post", "/compute/instances/{instance}/lock/", {}),
    ("admin", "post", "/identity/projects/", {"name": "strict-project"}),
    ("admin", "patch", "/identity/projects/{project}/", {"description": "x"}),
    ("admin", "post", "/identity/users/", {"username": "strict", "password": "a long pass phrase 42"}),
    ("member", "post", "/identity/keypairs/", {"name": "k1"}),
    ("anonymous", "post", "/auth/tokens", {"username": "alice", "password": "x"}),
]


@pytest.mark.parametrize(("role", "method", "path", "body"), CASES, ids=[f"{c[1]} {c[2]}" for c in CASES])
def test_an_unknown_key_is_a_400_naming_it(cloud, clients, objects, role, method, path, body):
    body = {k: v.format(**objects) if isinstance(v, str) else v for k, v in body.items()}
    response = getattr(clients[role], method)(
        API + path.format(**objects), {**body, "bogus": 1}, format="json"
    )
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert "bogus" in error["message"], error


def test_a_role_assignment_with_an_unknown_key_is_refused(cloud, clients):
    body = {"user": str(cloud.reader.pk), "project": str(cloud.other_project.pk), "role": Role.MEMBER}
    response = clients["admin"].post(f"{API}/identity/role-assignments/", {**body, "bogus": 1}, format="json")
    assert response.status_code == 400 and "bogus" in error_of(response)["message"]
    assert clients["admin"].post(f"{API}/identity/role-assignments/", body, format="json").status_code == 201


def test_a_read_only_field_sent_back_is_named(cloud, clients, objects):
    response = clients["admin"].patch(
        f"{API}/compute/flavors/{objects['flavor']}/",
        {"description": "x", "created": "2020-01-01"},
        format="json",
    )
    assert response.status_code == 400 and "created" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/compute/flavors/", {"name": "t1", "vcpus": "2", "ram_mb": 512, "disk_gb": 1}, "vcpus"),
        (
            "/compute/flavors/",
            {"name": "t2", "vcpus": 2, "ram_mb": 512, "disk_gb": 1, "is_public": 1},
            "is_public",
        ),
        ("/compute/flavors/", {"name": 7, "vcpus": 2, "ram_mb": 512, "disk_gb": 1}, "name"),
        ("/identity/projects/", {"name": "p1", "enabled": "yes"}, "enabled"),
        (
            "/identity/users/",
            {"username": "u1", "password": "a long pass phrase 42", "is_admin": 0},
            "is_admin",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_not_coerced(cloud, clients, path, body, field):
    response = clients["admin"].post(API + path, body, format="json")
    assert response.status_code == 400, response.content
    assert field in error_of(response)["message"]


def test_an_image_body_is_typed_strictly(cloud, clients):
    response = clients["member"].post(
        f"{API}/compute/images/", {"name": "i", "disk_format": "raw", "min_disk": "1"}, format="json"
    )
    assert response.status_code == 400 and "min_disk" in error_of(response)["message"]
    response = clients["member"].post(
        f"{API}/compute/images/", {"name": "i", "disk_format": "raw", "protected": "true"}, format="json"
    )
    assert response.status_code == 400 and "protected" in error_of(response)["message"]


def test_a_body_that_is_no_object_is_a_400(cloud, clients):
    response = clients["admin"].post(f"{API}/identity/projects/", ["name"], format="json")
    assert response.status_code == 400
    error_of(response)


def test_form_encoded_bodies_still_work(cloud, clients):
    """Forms carry every value as text: the strict types read it as DRF does; unknown keys still fail."""
    response = clients["admin"].post(f"{API}/identity/projects/", {"name": "formed", "enabled": "false"})
    assert response.status_code == 201, response.content
    assert response.json()["enabled"] is False
    response = clients["admin"].post(f"{API}/identity/projects/", {"name": "formed2", "bogus": "1"})
    assert response.status_code == 400 and "bogus" in error_of(response)["message"]


# Bodies whose keys are the data, checked by name in the service instead; and shapes only ever answered.
KEYED_BY_DATA = {"QuotaSetSerializer"}
RESPONSES_ONLY = {
    "QuotaRowSerializer",
    "RefSerializer",
    "RoleSerializer",
    "FlavorAccessSerializer",
    "ImageMemberSerializer",
    "ConsoleLogSerializer",
    "FlavorSummarySerializer",
    "OperationSummarySerializer",
    "OperationSerializer",
}


def test_every_writable_serializer_refuses_unknown_keys():
    found, lax = [], []
    for module_name in (
        "identity.api.serializers",
        "compute.api.serializers",
        "compute.api.images",
        "compute.api.instances",
        "workers.api.serializers",
    ):
        module = importlib.import_module(module_name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if not issubclass(cls, serializers.Serializer) or cls.__module__ != module_name:
                continue
            if name in KEYED_BY_DATA | RESPONSES_ONLY or cls.__name__.endswith("ResponseSerializer"):
                continue
            try:
                fields = cls().fields
            except Exception:  # needs context to build its fields: not a request body
                continue
            if any(not field.read_only for field in fields.values()):
                found.append(name)
                if not issubclass(cls, RefusesUnknownKeys):
                    lax.append(f"{module_name}.{name}")
    assert lax == [], f"these request bodies accept unknown keys: {lax}"
    assert {
        "FlavorSerializer",
        "InstanceCreateSerializer",
        "ProjectSerializer",
        "ImageUpdateSerializer",
    } <= set(found)
