"""Compute beyond 2.1, with Django's test client: microversion negotiation and the shapes each
version changes, server metadata, flavor access, key pair and hypervisor pages, quota sets (read and
set), limits; Nova's error shape and fixed query counts throughout."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from compute.models import FlavorAccess, Instance
from identity import quotas
from tests.compute.conftest import make_flavor, make_host
from tests.compute.instance_helpers import in_state, launch

from .test_views import issue, post

pytestmark = pytest.mark.django_db

NOVA = "/compute/v2.1"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def member(client, cloud):
    return {"X-Auth-Token": issue(client, cloud.member, cloud.project)}


@pytest.fixture
def admin(client, cloud):
    return {"X-Auth-Token": issue(client, cloud.admin, cloud.admin_project)}


def at(headers: dict, version: str, legacy: bool = False) -> dict:
    if legacy:
        return {**headers, "X-OpenStack-Nova-API-Version": version}
    return {**headers, "OpenStack-API-Version": f"compute {version}"}


def put(client, path, body, **headers):
    return client.put(path, json.dumps(body), content_type="application/json", headers=headers)


# --- negotiation ------------------------------------------------------------------------------------


def test_the_microversion_asked_is_echoed_in_either_header(client, cloud, member):
    for headers, echoed in (
        (member, "2.1"),
        (at(member, "2.47"), "2.47"),
        (at(member, "2.10", legacy=True), "2.10"),
        (at(member, "latest"), "2.53"),
        ({**member, "OpenStack-API-Version": "volume 3.0, compute 2.26"}, "2.26"),
    ):
        response = client.get(f"{NOVA}/flavors", headers=headers)
        assert response.status_code == 200
        assert response["OpenStack-API-Version"] == f"compute {echoed}"
        assert response["X-OpenStack-Nova-API-Version"] == echoed
        assert response["x-openstack-request-id"].startswith("req-")


def test_a_version_outside_the_range_is_406_and_garbage_400(client, cloud, member):
    for version in ("2.54", "3.0", "2.0"):
        response = client.get(f"{NOVA}/flavors", headers=at(member, version))
        assert response.status_code == 406
        assert "maximum is 2.53" in response.json()["computeFault"]["message"]
        assert response["OpenStack-API-Version"] == "compute 2.1"
    response = client.get(f"{NOVA}/flavors", headers=at(member, "two"))
    assert response.status_code == 400 and "invalid format" in response.json()["badRequest"]["message"]
    assert client.get(f"{NOVA}/nothing", headers=at(member, "9.9")).status_code == 406


# --- servers at each version ------------------------------------------------------------------------


def test_server_shapes_by_microversion(client, cloud, member, admin):
    flavor = make_flavor("m1.spec", extra_specs={"hw:cpu_policy": "shared"}, swap_mb=16)
    instance = in_state(launch(cloud, name="Web Server 1", flavor=flavor), Instance.ACTIVE)
    path = f"{NOVA}/servers/{instance.pk}"

    old = client.get(path, headers=member).json()["server"]
    assert old["flavor"]["id"] == str(flavor.pk)
    assert not {"locked", "description", "tags", "host_status"} & set(old)

    new = client.get(path, headers=at(member, "2.47")).json()["server"]
    assert new["flavor"] == {
        "vcpus": 1,
        "ram": 512,
        "disk": 1,
        "ephemeral": 0,
        "swap": 16,
        "original_name": "m1.spec",
        "extra_specs": {"hw:cpu_policy": "shared"},
    }
    assert (new["locked"], new["description"], new["tags"]) == (False, None, [])
    assert "host_status" not in new and "OS-EXT-SRV-ATTR:hostname" not in new  # admins only

    shown = client.get(f"{path}", headers=at(admin, "2.53"))
    assert shown.status_code == 404  # another project's server, even for an admin's show
    listed = client.get(f"{NOVA}/servers/detail?all_tenants=1", headers=at(admin, "2.53")).json()
    (row,) = listed["servers"]
    assert row["host_status"] == "UP" and row["OS-EXT-SRV-ATTR:hostname"] == "web-server-1"
    assert row["OS-EXT-SRV-ATTR:root_device_name"] == "/dev/vda"
    assert row["OS-EXT-SRV-ATTR:user_data"] is None and row["OS-EXT-SRV-ATTR:kernel_id"] == ""
    at21 = client.get(f"{NOVA}/servers/detail?all_tenants=1", headers=admin).json()["servers"][0]
    assert "OS-EXT-SRV-ATTR:host" in at21 and "OS-EXT-SRV-ATTR:hostname" not in at21


def test_an_admins_detail_list_at_the_maximum_has_a_fixed_query_count(client, cloud, admin):
    make_host("h-1")
    in_state(launch(cloud, name="first", user_data="#cloud-config"), Instance.ACTIVE)

    def count() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"{NOVA}/servers/detail?all_tenants=True", headers=at(admin, "2.53"))
        assert response.status_code == 200
        return len(response.json()["servers"]), len(queries)

    few, few_queries = count()
    for i in range(6):
        in_state(launch(cloud, name=f"vm-{i}"), Instance.ACTIVE)
    many, many_queries = count()
    assert (few, many) == (1, 7) and few_queries == many_queries <= 4


def test_admins_narrow_a_cloud_wide_list(client, cloud, member, admin):
    mine = launch(cloud, name="mine")
    theirs = launch(cloud, user=cloud.other_member, name="theirs")
    everyone = f"{NOVA}/servers?all_tenants=True"
    assert {s["name"] for s in client.get(everyone, headers=admin).json()["servers"]} == {"mine", "theirs"}
    for query, names in (
        (f"&project_id={cloud.other_project.pk}", ["theirs"]),
        (f"&tenant_id={cloud.project.pk}", ["mine"]),
        (f"&user_id={cloud.member.pk}", ["mine"]),
        ("&project_id=nope", []),
    ):
        assert [s["name"] for s in client.get(everyone + query, headers=admin).json()["servers"]] == names
    # A member's filter by another project shows nothing of it (and all_tenants is refused).
    assert [
        s["id"]
        for s in client.get(f"{NOVA}/servers?project_id={cloud.other_project.pk}", headers=member).json()[
            "servers"
        ]
    ] == [str(mine.pk)]
    assert client.get(everyone, headers=member).status_code == 403
    assert theirs.project == cloud.other_project


def test_status_filters_refuse_unknown_statuses_from_238(client, cloud, member):
    in_state(launch(cloud, name="on"), Instance.ACTIVE)
    assert client.get(f"{NOVA}/servers?status=BOGUS", headers=member).json()["servers"] == []
    refused = client.get(f"{NOVA}/servers?status=BOGUS", headers=at(member, "2.38"))
    assert refused.status_code == 400 and "BOGUS" in refused.json()["badRequest"]["message"]
    assert len(client.get(f"{NOVA}/servers?status=active", headers=at(member, "2.38")).json()["servers"]) == 1


def test_networks_auto_and_none_from_237_description_from_219_tags_from_252(client, cloud, member):
    make_flavor("m1.tiny")
    from tests.compute.instance_helpers import make_image

    image = make_image("cirros")
    for networks in ("auto", "none"):
        body = {"server": {"name": f"vm-{networks}", "imageRef": str(image.pk), "flavorRef": "m1.tiny"}}
        body["server"]["networks"] = networks
        response = post(client, f"{NOVA}/servers", body, **at(member, "2.37"))
        assert response.status_code == 202, response.content
    described = {
        "server": {"name": "d", "imageRef": str(image.pk), "flavorRef": "m1.tiny", "description": "x"}
    }
    refused = post(client, f"{NOVA}/servers", described, **at(member, "2.18"))
    assert refused.status_code == 400 and "2.19" in refused.json()["badRequest"]["message"]
    made = post(client, f"{NOVA}/servers", described, **at(member, "2.19"))
    assert made.status_code == 202, made.content
    shown = client.get(f"{NOVA}/servers/{made.json()['server']['id']}", headers=at(member, "2.19")).json()
    assert shown["server"]["description"] == "x"
    tagged = {"server": {"name": "t", "imageRef": str(image.pk), "flavorRef": "m1.tiny", "tags": ["web"]}}
    refused = post(client, f"{NOVA}/servers", tagged, **at(member, "2.51"))
    assert refused.status_code == 400 and "2.52" in refused.json()["badRequest"]["message"]
    made = post(client, f"{NOVA}/servers", tagged, **at(member, "2.52"))
    assert made.status_code == 202, made.content
    assert Instance.objects.get(pk=made.json()["server"]["id"]).tags == ["web"]
    bad = {"server": {"name": "b", "imageRef": str(image.pk), "flavorRef": "m1.tiny", "tags": ["a,b"]}}
    refused = post(client, f"{NOVA}/servers", bad, **at(member, "2.52"))
    assert refused.status_code == 400 and "tag" in refused.json()["badRequest"]["message"]
    assert Instance.objects.count() == 4


def test_server_update_renames_and_describes(client, cloud, member):
    instance = launch(cloud, name="old")
    path = f"{NOVA}/servers/{instance.pk}"
    renamed = put(client, path, {"server": {"name": "new", "description": "db"}}, **at(member, "2.19"))
    assert renamed.status_code == 200, renamed.content
    assert (renamed.json()["server"]["name"], renamed.json()["server"]["description"]) == ("new", "db")
    before_219 = put(client, path, {"server": {"description": "x"}}, **member)
    assert before_219.status_code == 400 and "description" in before_219.json()["badRequest"]["message"]
    for body in ({"server": {"name": ""}}, {"server": {"name": 5}}, {"server": {"flavor": "x"}}, ["x"]):
        response = put(client, path, body, **at(member, "2.19"))
        assert response.status_code == 400 and "badRequest" in response.json(), body
    instance.refresh_from_db()
    assert (instance.name, instance.description) == ("new", "db")


# --- server metadata and tags -----------------------------------------------------------------------


def test_server_metadata(client, cloud, member, admin):
    instance = in_state(launch(cloud, name="meta", metadata={"a": "1"}), Instance.ACTIVE)
    path = f"{NOVA}/servers/{instance.pk}/metadata"
    assert client.get(path, headers=member).json() == {"metadata": {"a": "1"}}
    merged = post(client, path, {"metadata": {"b": "2"}}, **member)
    assert merged.status_code == 200 and merged.json() == {"metadata": {"a": "1", "b": "2"}}
    replaced = put(client, path, {"metadata": {"c": "3"}}, **member)
    assert replaced.json() == {"metadata": {"c": "3"}}
    item = put(client, f"{path}/d", {"meta": {"d": "4"}}, **member)
    assert item.status_code == 200 and item.json() == {"meta": {"d": "4"}}
    assert client.get(f"{path}/d", headers=member).json() == {"meta": {"d": "4"}}
    assert client.delete(f"{path}/c", headers=member).status_code == 204
    instance.refresh_from_db()
    assert instance.metadata == {"d": "4"}
    assert "set_metadata" in [
        a["action"]
        for a in client.get(f"{NOVA}/servers/{instance.pk}/os-instance-actions", headers=member).json()[
            "instanceActions"
        ]
    ]

    for response in (
        client.delete(f"{path}/nope", headers=member),
        client.get(f"{path}/nope", headers=member),
        client.get(f"{NOVA}/servers/{instance.pk}/metadata", headers=admin),  # another project's
    ):
        assert response.status_code == 404 and "itemNotFound" in response.json()
    for body in ({"metadata": {"k": 5}}, {"metadata": ["x"]}, {"meta": {"k": "v"}}, {"metadata": {"": "v"}}):
        response = post(client, path, body, **member)
        assert response.status_code == 400 and "badRequest" in response.json(), body
    mismatch = put(client, f"{path}/d", {"meta": {"e": "5"}}, **member)
    assert mismatch.status_code == 400
    too_many = post(client, path, {"metadata": {f"k{i}": "v" for i in range(200)}}, **member)
    assert too_many.status_code == 400

    Instance.objects.filter(pk=instance.pk).update(locked=True, locked_by="owner")
    locked = post(client, path, {"metadata": {"x": "y"}}, **member)
    assert locked.status_code == 409 and "locked" in locked.json()["conflictingRequest"]["message"]


def test_server_tags(client, cloud, member, admin):
    instance = launch(cloud, name="tagged")
    other = launch(cloud, name="plain")
    path = f"{NOVA}/servers/{instance.pk}/tags"
    v = at(member, "2.26")
    assert client.get(path, headers=member).status_code == 404  # before 2.26 there is no such API
    assert client.get(path, headers=v).json() == {"tags": []}
    assert client.get(f"{path}/t1", headers=v).status_code == 404
    added = client.put(f"{path}/t1", headers=v)
    assert added.status_code == 201 and added["Location"].endswith(f"/servers/{instance.pk}/tags/t1")
    assert client.put(f"{path}/t1", headers=v).status_code == 204  # already there
    assert client.get(f"{path}/t1", headers=v).status_code == 204
    replaced = put(client, path, {"tags": ["a", "b", "a"]}, **v)
    assert replaced.status_code == 200 and replaced.json() == {"tags": ["a", "b"]}
    assert client.delete(f"{path}/a", headers=v).status_code == 204
    assert client.delete(f"{path}/a", headers=v).status_code == 404
    put(client, f"{NOVA}/servers/{other.pk}/tags", {"tags": ["a", "c"]}, **v)

    def listed(query):
        response = client.get(f"{NOVA}/servers?{query}", headers=v)
        assert response.status_code == 200, response.content
        return sorted(s["name"] for s in response.json()["servers"])

    assert listed("tags=b") == ["tagged"]
    assert listed("tags=a,c") == ["plain"]
    assert listed("tags-any=b,c") == ["plain", "tagged"]
    assert listed("not-tags=a,c") == ["tagged"]
    assert listed("not-tags-any=b") == ["plain"]
    assert client.get(f"{NOVA}/servers?tags=b", headers=member).status_code == 400  # needs 2.26
    assert client.get(f"{NOVA}/servers/{instance.pk}", headers=v).json()["server"]["tags"] == ["b"]

    for body in (
        {"tags": "a"},
        {"tags": ["x/y"]},
        {"tags": ["x" * 61]},
        {"tags": [f"t{i}" for i in range(51)]},
        {},
    ):
        response = put(client, path, body, **v)
        assert response.status_code == 400 and "badRequest" in response.json(), body
    assert client.put(f"{path}/a,b", headers=v).status_code == 400
    assert client.get(path, headers=at(admin, "2.26")).status_code == 404  # another project's
    assert client.delete(path, headers=v).status_code == 204
    instance.refresh_from_db()
    assert instance.tags == []
    Instance.objects.filter(pk=instance.pk).update(locked=True, locked_by="owner")
    locked = client.put(f"{path}/z", headers=v)
    assert locked.status_code == 409


# --- flavors ----------------------------------------------------------------------------------------


def test_flavor_access(client, cloud, member, admin):
    private = make_flavor("p1.small", is_public=False)
    public = make_flavor("m1.tiny")
    access = f"{NOVA}/flavors/{private.pk}/os-flavor-access"
    action = f"{NOVA}/flavors/{private.pk}/action"
    tenant = str(cloud.project.pk)
    assert client.get(f"{NOVA}/flavors/{private.pk}", headers=member).status_code == 404
    assert client.get(access, headers=admin).json() == {"flavor_access": []}

    added = post(client, action, {"addTenantAccess": {"tenant": tenant}}, **admin)
    assert added.status_code == 200
    assert added.json() == {"flavor_access": [{"flavor_id": str(private.pk), "tenant_id": tenant}]}
    assert FlavorAccess.objects.filter(flavor=private, project=cloud.project).exists()
    assert client.get(f"{NOVA}/flavors/{private.pk}", headers=member).status_code == 200
    again = post(client, action, {"addTenantAccess": {"tenant": tenant}}, **admin)
    assert again.status_code == 409 and "conflictingRequest" in again.json()

    denied = post(client, action, {"removeTenantAccess": {"tenant": tenant}}, **member)
    assert denied.status_code == 403 and "forbidden" in denied.json()
    removed = post(client, action, {"removeTenantAccess": {"tenant": tenant}}, **admin)
    assert removed.json() == {"flavor_access": []}
    assert post(client, action, {"removeTenantAccess": {"tenant": tenant}}, **admin).status_code == 404

    public_action = f"{NOVA}/flavors/{public.pk}/action"
    assert post(client, public_action, {"addTenantAccess": {"tenant": tenant}}, **admin).status_code == 409
    assert client.get(f"{NOVA}/flavors/{public.pk}/os-flavor-access", headers=admin).status_code == 404
    for body in ({"addTenantAccess": {}}, {"addTenantAccess": {"tenant": "nope"}}, {"frobnicate": {}}, []):
        response = post(client, action, body, **admin)
        assert response.status_code in (400, 404) and set(response.json()) <= {"badRequest", "itemNotFound"}


def test_one_extra_spec_by_put(client, cloud, admin):
    flavor = make_flavor("m1.tiny")
    path = f"{NOVA}/flavors/{flavor.pk}/os-extra_specs/hw:numa_nodes"
    assert put(client, path, {"hw:numa_nodes": "1"}, **admin).json() == {"hw:numa_nodes": "1"}
    assert client.get(path, headers=admin).json() == {"hw:numa_nodes": "1"}
    assert put(client, path, {"other": "1"}, **admin).status_code == 400


# --- key pairs and hypervisors ----------------------------------------------------------------------


def test_keypairs_by_microversion(client, cloud, member, admin):
    for name in ("k1", "k2", "k3"):
        assert post(client, f"{NOVA}/os-keypairs", {"keypair": {"name": name}}, **member).status_code == 200
    old = client.get(f"{NOVA}/os-keypairs", headers=member).json()["keypairs"]
    assert "type" not in old[0]["keypair"]
    page = client.get(f"{NOVA}/os-keypairs?limit=2", headers=at(member, "2.35")).json()
    assert [k["keypair"]["name"] for k in page["keypairs"]] == ["k1", "k2"]
    assert page["keypairs"][0]["keypair"]["type"] == "ssh"
    rest = client.get(
        page["keypairs_links"][0]["href"].replace("http://testserver", ""), headers=at(member, "2.35")
    )
    assert [k["keypair"]["name"] for k in rest.json()["keypairs"]] == ["k3"]
    assert client.get(f"{NOVA}/os-keypairs?marker=nope", headers=at(member, "2.35")).status_code == 400

    theirs = f"{NOVA}/os-keypairs?user_id={cloud.member.pk}"
    assert len(client.get(theirs, headers=at(admin, "2.10")).json()["keypairs"]) == 3
    assert client.get(theirs, headers=admin).json()["keypairs"] == []  # before 2.10: the caller's own
    mine = f"{NOVA}/os-keypairs?user_id={cloud.admin.pk}"
    assert client.get(mine, headers=at(member, "2.10")).status_code == 403
    x509 = post(
        client, f"{NOVA}/os-keypairs", {"keypair": {"name": "x", "type": "x509"}}, **at(member, "2.2")
    )
    assert x509.status_code == 400


def test_hypervisors_by_microversion(client, cloud, admin):
    hosts = [make_host(f"h-{i}") for i in range(3)]
    instance = in_state(launch(cloud, name="on-h0"), Instance.ACTIVE, host=hosts[0])
    detail = client.get(f"{NOVA}/os-hypervisors/detail", headers=admin).json()["hypervisors"]
    assert detail[0]["cpu_info"] == "{}" and len(detail) == 3
    page = client.get(f"{NOVA}/os-hypervisors/detail?limit=2", headers=at(admin, "2.53")).json()
    assert [h["hypervisor_hostname"] for h in page["hypervisors"]] == ["h-0", "h-1"]
    assert page["hypervisors"][0]["cpu_info"] == {} and "servers" not in page["hypervisors"][0]
    rest = client.get(
        page["hypervisors_links"][0]["href"].replace("http://testserver", ""), headers=at(admin, "2.53")
    )
    assert [h["hypervisor_hostname"] for h in rest.json()["hypervisors"]] == ["h-2"]

    def servers() -> tuple[list, int]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"{NOVA}/os-hypervisors?with_servers=true", headers=at(admin, "2.53"))
        return response.json()["hypervisors"], len(queries)

    listed, few = servers()
    assert (
        listed[0]["servers"] == [{"name": "on-h0", "uuid": str(instance.pk)}] and listed[1]["servers"] == []
    )
    for i in range(4):
        in_state(launch(cloud, name=f"more-{i}"), Instance.ACTIVE, host=hosts[1])
    _, many = servers()
    assert few == many
    pattern = client.get(f"{NOVA}/os-hypervisors?hypervisor_hostname_pattern=h-2", headers=at(admin, "2.53"))
    assert [h["hypervisor_hostname"] for h in pattern.json()["hypervisors"]] == ["h-2"]
    assert client.get(f"{NOVA}/os-hypervisors?marker=nope", headers=at(admin, "2.33")).status_code == 400


# --- quotas and limits ------------------------------------------------------------------------------


def test_quota_sets_by_microversion_and_set_by_admins(client, cloud, member, admin):
    path = f"{NOVA}/os-quota-sets/{cloud.project.pk}"
    old = client.get(path, headers=member).json()["quota_set"]
    assert old["floating_ips"] == 0 and old["security_group_rules"] == 0 and old["injected_files"] == 0
    new = client.get(path, headers=at(member, "2.53")).json()["quota_set"]
    assert "floating_ips" not in new and "security_groups" not in new and new["instances"] == 10

    denied = put(client, path, {"quota_set": {"instances": 3}}, **member)
    assert denied.status_code == 403 and "forbidden" in denied.json()
    changed = put(
        client, path, {"quota_set": {"instances": 3, "cores": 6, "ram": 4096, "force": True}}, **admin
    )
    assert changed.status_code == 200, changed.content
    body = changed.json()["quota_set"]
    assert (body["instances"], body["cores"], body["ram"]) == (3, 6, 4096) and "id" not in body
    assert quotas.limits(cloud.project)["instances"] == 3
    for bad in ({"instances": "many"}, {"widgets": 1}, {"server_groups": 5}, {"instances": -5}):
        response = put(client, path, {"quota_set": bad}, **admin)
        assert response.status_code == 400 and "badRequest" in response.json(), bad
    assert put(client, path, {"quota_set": {"server_groups": 0}}, **admin).status_code == 200
    assert (
        put(client, f"{NOVA}/os-quota-sets/nope", {"quota_set": {"instances": 1}}, **admin).status_code == 404
    )

    assert client.delete(path, headers=admin).status_code == 202
    assert quotas.limits(cloud.project)["instances"] == 10


def test_limits_by_microversion(client, cloud, member, admin):
    old = client.get(f"{NOVA}/limits", headers=member).json()["limits"]["absolute"]
    assert {"maxImageMeta", "maxSecurityGroups", "maxTotalFloatingIps"} <= set(old)
    new = client.get(f"{NOVA}/limits", headers=at(member, "2.53")).json()["limits"]["absolute"]
    assert not {"maxImageMeta", "maxSecurityGroups", "maxTotalFloatingIps"} & set(new)
    launch(cloud, name="counted")
    theirs = client.get(f"{NOVA}/limits?tenant_id={cloud.project.pk}", headers=admin).json()
    assert theirs["limits"]["absolute"]["totalInstancesUsed"] == 1
    assert client.get(f"{NOVA}/limits?tenant_id={cloud.admin_project.pk}", headers=member).status_code == 403


def test_keypair_and_flavor_access_lists_have_fixed_query_counts(client, cloud, member, admin):
    from identity import services as identity_services
    from identity.models import Project

    private = make_flavor("p1.small", is_public=False)
    paths = (
        (member, f"{NOVA}/os-keypairs"),
        (admin, f"{NOVA}/flavors/{private.pk}/os-flavor-access"),
        (admin, f"{NOVA}/flavors/detail?is_public=None"),
    )

    def counts() -> list[int]:
        result = []
        for headers, path in paths:
            with CaptureQueriesContext(connection) as queries:
                assert client.get(path, headers=at(headers, "2.53")).status_code == 200
            result.append(len(queries))
        return result

    few = counts()
    for i in range(4):
        identity_services.create_keypair(cloud.ctx(cloud.member), name=f"k{i}", public_key=None)
        FlavorAccess.objects.create(flavor=private, project=Project.objects.create(name=f"p-{i}"))
        make_flavor(f"m{i}.x", extra_specs={"k": "v"})
    assert counts() == few and max(few) <= 4


def test_create_image_and_rebuild_server_actions(client, cloud, member):
    from compute.models import Image
    from tests.compute.instance_helpers import make_image

    make_flavor("m1.tiny", vcpus=1, ram_mb=512, disk_gb=1)
    base, other = make_image("cirros"), make_image("other")
    instance = in_state(launch(cloud, name="vm-s", image=base), Instance.ACTIVE)
    action = f"{NOVA}/servers/{instance.pk}/action"
    response = post(client, action, {"createImage": {"name": "vm-s-snap"}}, **member)
    assert response.status_code == 202, response.content
    image = Image.objects.get(pk=response.json()["image_id"])
    assert response["Location"].endswith(f"/image/v2/images/{image.pk}")
    assert (image.status, image.properties["image_type"]) == ("queued", "snapshot")
    busy = post(client, action, {"rebuild": {"imageRef": str(other.pk)}}, **member)
    assert busy.status_code == 409 and "image_snapshot" in busy.json()["conflictingRequest"]["message"]
    in_state(instance, Instance.ACTIVE)
    rebuilt = post(client, action, {"rebuild": {"imageRef": str(other.pk)}}, **member)
    assert rebuilt.status_code == 202, rebuilt.content
    assert rebuilt.json()["server"]["status"] == "REBUILD"
    in_state(instance, Instance.ACTIVE)
    for body in (
        {"createImage": {}},
        {"createImage": {"name": "x", "metadata": {"a": "b"}}},
        {"rebuild": {}},
    ):
        refused = post(client, action, body, **member)
        assert refused.status_code == 400 and "badRequest" in refused.json(), body
