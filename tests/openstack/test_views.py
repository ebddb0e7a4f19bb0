"""The OpenStack-compatible views with Django's test client: shapes, each service's errors (400, 401,
403, 404, 409 in its own form), cross-project isolation, no redirects, no 500 on malformed input,
and a fixed query count for the server list."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from compute.models import Image, Instance
from identity import services as identity_services
from identity.models import ApiToken
from tests.compute.conftest import make_flavor, make_host
from tests.compute.instance_helpers import in_state, launch, make_image
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

NOVA = "/compute/v2.1"
GLANCE = "/image/v2"
KEYSTONE = "/identity/v3"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def auth_body(username, project=None, password=PASSWORD, **project_ref):
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": username, "domain": {"name": "Default"}, "password": password}},
            }
        }
    }
    if project or project_ref:
        body["auth"]["scope"] = {"project": {"name": project, "domain": {"name": "Default"}, **project_ref}}
    return body


def post(client, path, body, **headers):
    return client.post(path, json.dumps(body), content_type="application/json", headers=headers)


def issue(client, user, project) -> str:
    response = post(client, f"{KEYSTONE}/auth/tokens", auth_body(user.username, project.name))
    assert response.status_code == 201, response.content
    return response["X-Subject-Token"]


@pytest.fixture
def member(client, cloud):
    return {"X-Auth-Token": issue(client, cloud.member, cloud.project)}


@pytest.fixture
def other(client, cloud):
    return {"X-Auth-Token": issue(client, cloud.other_member, cloud.other_project)}


@pytest.fixture
def admin(client, cloud):
    return {"X-Auth-Token": issue(client, cloud.admin, cloud.admin_project)}


# --- identity ---------------------------------------------------------------------------------------


def test_discovery_is_unauthenticated_and_points_at_v3(client):
    for path in ("/identity", "/identity/"):
        response = client.get(path)
        assert response.status_code == 300
        (version,) = response.json()["versions"]["values"]
        assert (
            version["id"].startswith("v3") and version["links"][0]["href"] == "http://testserver/identity/v3/"
        )
        assert response["x-openstack-request-id"].startswith("req-")
    assert client.get("/identity/v3").json()["version"]["status"] == "stable"


def test_a_keystone_token_is_a_native_api_token(client, cloud):
    response = post(client, f"{KEYSTONE}/auth/tokens", auth_body("alice", "alpha"))
    assert response.status_code == 201
    raw = response["X-Subject-Token"]
    token = response.json()["token"]
    assert token["project"] == {
        "id": str(cloud.project.pk),
        "name": "alpha",
        "domain": {"id": "default", "name": "Default"},
    }
    assert token["user"]["id"] == str(cloud.member.pk) and [r["name"] for r in token["roles"]] == ["member"]
    assert token["expires_at"].endswith("Z")
    assert {s["type"]: s["endpoints"][0]["url"] for s in token["catalog"]} == {
        "identity": "http://testserver/identity",
        "compute": "http://testserver/compute/v2.1",
        "image": "http://testserver/image",
        "block-storage": "http://testserver/volume/v3",
        "network": "http://testserver/network",
    }
    record = ApiToken.objects.get(digest=identity_services.token_digest(raw))
    assert record.project == cloud.project and record.revoked_at is None
    # The same token works on the native API.
    assert client.get("/api/v1/compute/instances/", headers={"X-Auth-Token": raw}).status_code == 200


def test_scope_by_project_id_and_user_id(client, cloud):
    body = auth_body("alice", id=str(cloud.project.pk))
    del body["auth"]["scope"]["project"]["name"]
    body["auth"]["identity"]["password"]["user"] = {"id": str(cloud.member.pk), "password": PASSWORD}
    response = post(client, f"{KEYSTONE}/auth/tokens", body)
    assert response.status_code == 201 and response.json()["token"]["project"]["id"] == str(cloud.project.pk)


@pytest.mark.parametrize(
    "body",
    [
        auth_body("alice", "alpha", password="wrong"),
        auth_body("alice", "beta"),  # no role there
        auth_body("nobody", "alpha"),
        {"auth": {"identity": {"methods": ["token"], "token": {"id": "x"}}}},
    ],
    ids=["password", "foreign-project", "unknown-user", "token-method"],
)
def test_failed_authentication_is_keystones_401(client, cloud, body):
    response = post(client, f"{KEYSTONE}/auth/tokens", body)
    assert response.status_code == 401
    error = response.json()["error"]
    assert (error["code"], error["title"]) == (401, "Unauthorized") and error["message"]


def test_another_domain_is_refused(client, cloud):
    body = auth_body("alice", "alpha")
    body["auth"]["identity"]["password"]["user"]["domain"] = {"name": "Elsewhere"}
    assert post(client, f"{KEYSTONE}/auth/tokens", body).status_code == 401


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'{"auth": []}', b'{"auth": {"identity": 5}}', b"\xff"])
def test_malformed_auth_is_keystones_400(client, cloud, raw):
    response = client.post(f"{KEYSTONE}/auth/tokens", raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 400


def test_validate_and_revoke(client, cloud, member):
    subject = issue(client, cloud.member, cloud.project)
    checked = client.get(f"{KEYSTONE}/auth/tokens", headers={**member, "X-Subject-Token": subject})
    assert checked.status_code == 200 and checked["X-Subject-Token"] == subject
    assert checked.json()["token"]["project"]["name"] == "alpha"
    # Another user cannot see (nor revoke) it.
    stranger = {
        "X-Auth-Token": issue(client, cloud.other_member, cloud.other_project),
        "X-Subject-Token": subject,
    }
    assert client.get(f"{KEYSTONE}/auth/tokens", headers=stranger).status_code == 404
    assert (
        client.delete(f"{KEYSTONE}/auth/tokens", headers={**member, "X-Subject-Token": subject}).status_code
        == 204
    )
    assert client.get(f"{NOVA}/servers", headers={"X-Auth-Token": subject}).status_code == 401
    assert (
        client.get(f"{KEYSTONE}/auth/tokens", headers={**member, "X-Subject-Token": subject}).status_code
        == 404
    )


def test_projects(client, cloud, member, admin):
    assert [p["name"] for p in client.get(f"{KEYSTONE}/projects", headers=member).json()["projects"]] == [
        "alpha"
    ]
    names = {p["name"] for p in client.get(f"{KEYSTONE}/projects", headers=admin).json()["projects"]}
    assert names >= {"alpha", "beta", "admin"}
    mine = client.get(f"{KEYSTONE}/users/{cloud.member.pk}/projects", headers=member).json()["projects"]
    assert [p["id"] for p in mine] == [str(cloud.project.pk)]
    assert client.get(f"{KEYSTONE}/users/{cloud.other_member.pk}/projects", headers=member).status_code == 404
    # Another project is 403 (Keystone's policy), a missing one 404: the clients then use the id given.
    assert client.get(f"{KEYSTONE}/projects/{cloud.other_project.pk}", headers=member).status_code == 403
    assert client.get(f"{KEYSTONE}/projects/{cloud.member.pk}", headers=member).status_code == 404
    assert client.get(f"{KEYSTONE}/projects/beta", headers=member).status_code == 404
    assert client.get(f"{KEYSTONE}/users", headers=member).status_code == 403


def test_no_token_is_401_in_each_shape(client, cloud):
    assert client.get(f"{KEYSTONE}/projects").json()["error"]["code"] == 401
    assert client.get(f"{NOVA}/servers").json() == {
        "unauthorized": {"code": 401, "message": "Authentication required: send a token in X-Auth-Token."}
    }
    response = client.get(f"{GLANCE}/images", headers={"X-Auth-Token": "zt_not-a-token"})
    assert response.status_code == 401 and response.content.startswith(b"401 Unauthorized")


# --- compute ----------------------------------------------------------------------------------------


def test_version_and_microversion_headers(client, cloud, member):
    for path in (NOVA, f"{NOVA}/"):
        version = client.get(path).json()["version"]
        assert (version["id"], version["version"], version["min_version"]) == ("v2.1", "2.53", "2.1")
    response = client.get(f"{NOVA}/flavors", headers=member)  # no microversion asked: the minimum
    assert response["OpenStack-API-Version"] == "compute 2.1"
    assert response["X-OpenStack-Nova-API-Version"] == "2.1"
    assert response["x-openstack-request-id"].startswith("req-")


def test_flavor_lookup_by_name_is_404_then_the_list_finds_it(client, cloud, member):
    tiny = make_flavor("m1.tiny")
    private = make_flavor("secret", is_public=False)
    missing = client.get(f"{NOVA}/flavors/m1.tiny", headers=member)
    assert missing.status_code == 404 and missing.json()["itemNotFound"]["code"] == 404
    listed = client.get(f"{NOVA}/flavors/detail?is_public=None", headers=member).json()["flavors"]
    assert [f["name"] for f in listed] == ["m1.tiny"]  # not the private flavor shared with nobody
    shown = client.get(f"{NOVA}/flavors/{tiny.pk}", headers=member).json()["flavor"]
    assert (shown["ram"], shown["vcpus"], shown["disk"], shown["os-flavor-access:is_public"]) == (
        512,
        1,
        1,
        True,
    )
    assert client.get(f"{NOVA}/flavors/{tiny.pk}/os-extra_specs", headers=member).json() == {
        "extra_specs": {}
    }
    assert client.get(f"{NOVA}/flavors/{private.pk}", headers=member).status_code == 404


def test_flavor_create_is_for_admins(client, cloud, member, admin):
    body = {
        "flavor": {
            "name": "x1",
            "ram": 256,
            "vcpus": 1,
            "disk": 1,
            "swap": 0,
            "id": None,
            "OS-FLV-EXT-DATA:ephemeral": 0,
            "os-flavor-access:is_public": True,
        }
    }
    denied = post(client, f"{NOVA}/flavors", body, **member)
    assert denied.status_code == 403 and "forbidden" in denied.json()
    created = post(client, f"{NOVA}/flavors", body, **admin)
    assert created.status_code == 200 and created.json()["flavor"]["name"] == "x1"
    again = post(client, f"{NOVA}/flavors", body, **admin)
    assert again.status_code == 409 and again.json()["conflictingRequest"]["code"] == 409
    bad = post(
        client, f"{NOVA}/flavors", {"flavor": {**body["flavor"], "name": "x2", "ram": "lots"}}, **admin
    )
    assert bad.status_code == 400 and "badRequest" in bad.json()


def test_server_create_show_and_list(client, cloud, member):
    flavor, image = make_flavor("m1.tiny"), make_image("cirros")
    body = {
        "server": {
            "name": "vm-1",
            "imageRef": str(image.pk),
            "flavorRef": "m1.tiny",
            "min_count": 1,
            "max_count": 1,
            "block_device_mapping_v2": [
                {
                    "uuid": str(image.pk),
                    "boot_index": 0,
                    "source_type": "image",
                    "destination_type": "local",
                    "delete_on_termination": True,
                }
            ],
        }
    }
    response = post(client, f"{NOVA}/servers", body, **member)
    assert response.status_code == 202, response.content
    server_id = response.json()["server"]["id"]
    instance = Instance.objects.get(pk=server_id)
    assert (instance.project, instance.flavor, instance.image) == (cloud.project, flavor, image)
    shown = client.get(f"{NOVA}/servers/{server_id}", headers=member).json()["server"]
    assert (shown["status"], shown["tenant_id"], shown["image"]["id"], shown["flavor"]["id"]) == (
        "BUILD",
        str(cloud.project.pk),
        str(image.pk),
        str(flavor.pk),
    )
    assert shown["addresses"] == {} and "OS-EXT-SRV-ATTR:host" not in shown
    listed = client.get(f"{NOVA}/servers?name=vm&deleted=False&fields=id&fields=name", headers=member).json()
    assert [s["id"] for s in listed["servers"]] == [server_id]
    assert client.get(f"{NOVA}/servers?name=nothing", headers=member).json()["servers"] == []


@pytest.mark.parametrize(
    ("server", "says"),
    [
        ({"name": "vm", "flavorRef": "nope", "imageRef": "cirros"}, "No flavor"),
        (
            {"name": "vm", "flavorRef": "m1.tiny", "imageRef": "cirros", "networks": [{"uuid": "n"}]},
            "networking",
        ),
        ({"name": "vm", "flavorRef": "m1.tiny", "imageRef": "cirros", "max_count": 3}, "max_count"),
        ({"name": "vm", "flavorRef": "m1.tiny", "imageRef": "cirros", "user_data": "not base64!"}, "base64"),
        (
            {"name": "vm", "flavorRef": "m1.tiny", "block_device_mapping_v2": [{"source_type": "volume"}]},
            "image",
        ),
        ({"name": 5, "flavorRef": [], "imageRef": {}}, "name"),
        (
            {"name": "vm", "flavorRef": "m1.tiny", "imageRef": "cirros", "availability_zone": 5},
            "availability_zone",
        ),
        ({"name": "vm", "flavorRef": "m1.tiny", "imageRef": "cirros", "key_name": []}, "key_name"),
        ({"name": "vm", "flavorRef": "m1.tiny", "imageRef": "cirros", "metadata": [1]}, "Metadata"),
    ],
    ids=["flavor", "networks", "count", "user-data", "bdm", "types", "zone", "key", "metadata"],
)
def test_a_refused_create_is_novas_400(client, cloud, member, server, says):
    make_flavor("m1.tiny"), make_image("cirros")
    response = post(client, f"{NOVA}/servers", {"server": server}, **member)
    assert response.status_code == 400, response.content
    assert says in response.json()["badRequest"]["message"]
    assert not Instance.objects.exists()


def test_actions_and_their_refusals(client, cloud, member):
    instance = launch(cloud, name="vm-a")
    action = f"{NOVA}/servers/{instance.pk}/action"
    building = post(client, action, {"reboot": {"type": "SOFT"}}, **member)
    assert building.status_code == 409 and building.json()["conflictingRequest"]["code"] == 409
    in_state(instance, Instance.ACTIVE)
    assert post(client, action, {"reboot": {"type": "HARD"}}, **member).status_code == 202
    assert (
        client.get(f"{NOVA}/servers/{instance.pk}", headers=member).json()["server"]["status"]
        == "HARD_REBOOT"
    )
    for body in (
        {"reboot": {"type": "SIDEWAYS"}},
        {"os-stop": None, "os-start": None},
        {"explode": {}},
        [],
        "x",
    ):
        response = post(client, action, body, **member)
        assert response.status_code == 400 and "badRequest" in response.json(), body
    in_state(instance, Instance.ACTIVE)
    assert post(client, action, {"os-stop": None}, **member).status_code == 202
    assert Instance.objects.get(pk=instance.pk).task_state == Instance.POWERING_OFF
    log = client.get(f"{NOVA}/servers/{instance.pk}/os-instance-actions", headers=member).json()
    assert [a["action"] for a in log["instanceActions"]][:2] == ["stop", "reboot_hard"]


def test_another_projects_server_is_404(client, cloud, member, other):
    instance = in_state(launch(cloud, name="mine"), Instance.ACTIVE)
    for method, path, body in [
        ("get", f"{NOVA}/servers/{instance.pk}", None),
        ("delete", f"{NOVA}/servers/{instance.pk}", None),
        ("post", f"{NOVA}/servers/{instance.pk}/action", {"os-stop": None}),
        ("get", f"{NOVA}/servers/{instance.pk}/os-instance-actions", None),
    ]:
        kwargs = {"data": json.dumps(body), "content_type": "application/json"} if body else {}
        response = getattr(client, method)(path, headers=other, **kwargs)
        assert response.status_code == 404 and response.json()["itemNotFound"]["code"] == 404, (method, path)
    assert client.get(f"{NOVA}/servers/detail", headers=other).json()["servers"] == []
    assert Instance.objects.get(pk=instance.pk).task_state == ""


def test_delete_then_404(client, cloud, member):
    instance = launch(cloud, name="gone")
    assert client.delete(f"{NOVA}/servers/{instance.pk}", headers=member).status_code == 204
    Instance.objects.filter(pk=instance.pk).update(vm_state=Instance.DELETED)
    assert client.get(f"{NOVA}/servers/{instance.pk}", headers=member).status_code == 404


def test_server_detail_list_has_a_fixed_query_count(client, cloud, member):
    make_host("h-1")
    launch(cloud, name="first")

    def count() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"{NOVA}/servers/detail?deleted=False", headers=member)
        assert response.status_code == 200
        return len(response.json()["servers"]), len(queries)

    few, few_queries = count()
    for i in range(8):
        in_state(launch(cloud, name=f"vm-{i}"), Instance.ACTIVE)
    many, many_queries = count()
    assert (few, many) == (1, 9)
    assert few_queries == many_queries <= 4  # token, roles, the page (one join), and nothing per server


def test_pagination_markers(client, cloud, member):
    ids = [str(launch(cloud, name=f"p-{i}").pk) for i in range(3)]
    first = client.get(f"{NOVA}/servers?limit=2", headers=member).json()
    assert [s["id"] for s in first["servers"]] == ids[::-1][:2]
    next_href = first["servers_links"][0]["href"]
    rest = client.get(next_href.replace("http://testserver", ""), headers=member).json()
    assert [s["id"] for s in rest["servers"]] == [ids[0]]
    assert client.get(f"{NOVA}/servers?marker=nope", headers=member).status_code == 400
    assert client.get(f"{NOVA}/servers?limit=x", headers=member).status_code == 400


@pytest.mark.parametrize(
    "keypair", [{"name": 5}, {"name": "k", "public_key": ["x"]}, {"name": "k", "public_key": "junk"}]
)
def test_a_refused_keypair_is_novas_400(client, cloud, member, keypair):
    response = post(client, f"{NOVA}/os-keypairs", {"keypair": keypair}, **member)
    assert response.status_code == 400 and "badRequest" in response.json()


def test_keypairs(client, cloud, member, other):
    created = post(client, f"{NOVA}/os-keypairs", {"keypair": {"name": "k1"}}, **member)
    assert created.status_code == 200 and "PRIVATE KEY" in created.json()["keypair"]["private_key"]
    again = post(client, f"{NOVA}/os-keypairs", {"keypair": {"name": "k1"}}, **member)
    assert again.status_code == 409 and "conflictingRequest" in again.json()
    listed = client.get(f"{NOVA}/os-keypairs", headers=member).json()["keypairs"]
    assert [k["keypair"]["name"] for k in listed] == ["k1"]  # wrapped twice, as Nova does
    assert client.get(f"{NOVA}/os-keypairs/k1", headers=other).status_code == 404
    assert client.delete(f"{NOVA}/os-keypairs/k1", headers=other).status_code == 404
    assert client.delete(f"{NOVA}/os-keypairs/k1", headers=member).status_code == 202
    assert client.get(f"{NOVA}/os-keypairs/k1", headers=member).status_code == 404


def test_hypervisors_and_quotas(client, cloud, member, admin):
    make_host("h-1", hypervisor_type="QEMU")
    assert client.get(f"{NOVA}/os-hypervisors/detail", headers=member).status_code == 403
    (hypervisor,) = client.get(f"{NOVA}/os-hypervisors/detail", headers=admin).json()["hypervisors"]
    assert (hypervisor["hypervisor_hostname"], hypervisor["state"], hypervisor["status"]) == (
        "h-1",
        "up",
        "enabled",
    )
    quota = client.get(f"{NOVA}/os-quota-sets/{cloud.project.pk}", headers=member).json()["quota_set"]
    assert (quota["instances"], quota["cores"], quota["ram"]) == (10, 20, 51200)
    used = client.get(f"{NOVA}/os-quota-sets/{cloud.project.pk}?usage=True", headers=member).json()
    assert used["quota_set"]["instances"] == {"limit": 10, "in_use": 0, "reserved": 0}
    assert client.get(f"{NOVA}/os-quota-sets/{cloud.other_project.pk}", headers=member).status_code == 403
    assert client.get(f"{NOVA}/os-quota-sets/{cloud.other_project.pk}", headers=admin).status_code == 200


@pytest.mark.parametrize(
    "path", [f"{NOVA}/servers/", f"{NOVA}/flavors/detail/", f"{NOVA}/nothing", f"{GLANCE}/images/"]
)
def test_no_trailing_slash_redirects(client, cloud, member, path):
    response = client.get(path, headers=member)
    assert response.status_code == 404 and "Location" not in response


def test_a_wrong_method_is_405_in_the_services_shape(client, cloud, member):
    response = client.put(f"{NOVA}/servers/detail", headers=member)
    assert response.status_code == 405 and response.json()["HTTPMethodNotAllowed"]["code"] == 405


# --- images -----------------------------------------------------------------------------------------


def test_image_create_upload_show_download_patch_delete(client, cloud, member, other):
    assert client.get("/image").status_code == 300
    body = {
        "name": "disk",
        "disk_format": "qcow2",
        "container_format": "bare",
        "visibility": "private",
        "owner_specified.openstack.sha256": "",
    }
    created = post(client, f"{GLANCE}/images", body, **member)
    assert created.status_code == 201, created.content
    image = created.json()
    assert (image["status"], image["owner"], image["owner_specified.openstack.sha256"]) == (
        "queued",
        str(cloud.project.pk),
        "",
    )
    data = b"QFI\xfb" + b"x" * 5000
    uploaded = client.put(
        f"{GLANCE}/images/{image['id']}/file", data, content_type="application/octet-stream", headers=member
    )
    assert uploaded.status_code == 204
    shown = client.get(f"{GLANCE}/images/{image['id']}", headers=member).json()
    assert (shown["status"], shown["size"], shown["os_hash_algo"]) == ("active", len(data), "sha256")
    downloaded = client.get(f"{GLANCE}/images/{image['id']}/file", headers=member)
    assert b"".join(downloaded.streaming_content) == data
    again = client.put(
        f"{GLANCE}/images/{image['id']}/file", data, content_type="application/octet-stream", headers=member
    )
    assert again.status_code == 409 and again.content.startswith(b"409 Conflict")
    patch = [
        {"op": "replace", "path": "/min_ram", "value": 64},
        {"op": "add", "path": "/os_distro", "value": "x"},
    ]
    patched = client.patch(
        f"{GLANCE}/images/{image['id']}",
        json.dumps(patch),
        content_type="application/openstack-images-v2.1-json-patch",
        headers=member,
    )
    assert patched.status_code == 200 and (patched.json()["min_ram"], patched.json()["os_distro"]) == (
        64,
        "x",
    )
    listed = client.get(f"{GLANCE}/images?id=in:{image['id']},nope", headers=member).json()["images"]
    assert [i["id"] for i in listed] == [image["id"]]
    assert client.get(f"{GLANCE}/images?name=disk", headers=other).json()["images"] == []
    assert client.get(f"{GLANCE}/images/{image['id']}", headers=other).status_code == 404
    assert client.delete(f"{GLANCE}/images/{image['id']}", headers=member).status_code == 204
    assert Image.objects.get(pk=image["id"]).status == Image.DELETED
    assert client.get(f"{GLANCE}/images/{image['id']}", headers=member).status_code == 404


def test_image_lookup_by_name_is_404(client, cloud, member):
    make_image("cirros")
    missing = client.get(f"{GLANCE}/images/cirros", headers=member)
    assert missing.status_code == 404 and missing["Content-Type"].startswith("text/plain")
    assert [
        i["name"] for i in client.get(f"{GLANCE}/images?name=cirros", headers=member).json()["images"]
    ] == ["cirros"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "disk_format": "vmdk"},
        {"disk_format": "raw"},
        {"name": "x", "tags": ["a/b"]},
        [],
        {"name": "x", "min_ram": "lots"},
    ],
)
def test_a_refused_image_is_glances_400(client, cloud, member, body):
    response = post(client, f"{GLANCE}/images", body, **member)
    assert response.status_code == 400 and response.content.startswith(b"400 Bad Request")


# --- no 500 -----------------------------------------------------------------------------------------

GARBAGE = [
    b"",
    b"null",
    b"[]",
    b'"x"',
    b"{",
    b'{"server": "x", "flavor": 5, "keypair": [], "auth": 1}',
    b"\xff\xfe",
]
POSTS = [
    f"{KEYSTONE}/auth/tokens",
    f"{NOVA}/servers",
    f"{NOVA}/flavors",
    f"{NOVA}/os-keypairs",
    f"{GLANCE}/images",
    f"{NOVA}/servers/00000000-0000-0000-0000-000000000000/action",
]


@pytest.mark.parametrize("path", POSTS)
def test_garbage_bodies_are_4xx(client, cloud, admin, path):
    for raw in GARBAGE:
        response = client.post(path, raw, content_type="application/json", headers=admin)
        assert 400 <= response.status_code < 500, (path, raw, response.status_code)


def test_image_pagination(client, cloud, member):
    ids = [str(make_image(f"img-{i}").pk) for i in range(3)]
    first = client.get(f"{GLANCE}/images?limit=2", headers=member).json()
    assert [i["id"] for i in first["images"]] == ids[::-1][:2]
    rest = client.get("/image" + first["next"], headers=member).json()
    assert [i["id"] for i in rest["images"]] == [ids[0]] and "next" not in rest
    bad = client.get(f"{GLANCE}/images?marker=nope", headers=member)
    assert bad.status_code == 400 and b"marker nope" in bad.content
