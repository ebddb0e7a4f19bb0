"""The instances API (DESIGN.md section 10): 202 with the operation, 409 naming the state, every
role, cross-project 404s, bad input 400 (never 500), Idempotency-Key, fixed query counts."""

import pytest

from compute.models import Instance
from identity import quotas
from identity.models import ResourceAction
from tests.identity.test_query_counts import MANY, api_rows, assert_fixed_queries

from .conftest import make_flavor, make_host
from .instance_helpers import in_state, launch, make_image

pytestmark = pytest.mark.django_db
URL = "/api/v1/compute/instances/"


@pytest.fixture
def setup(cloud):
    make_flavor("m1.tiny", vcpus=1, ram_mb=512, disk_gb=1)
    make_image()


def body(**fields):
    return {"name": "web-1", "flavor": "m1.tiny", "image": "cirros", **fields}


class TestCreate:
    def test_member_creates_and_gets_202_with_the_operation(self, setup, clients):
        response = clients["member"].post(URL, body(metadata={"a": "b"}), format="json")
        assert response.status_code == 202, response.content
        data = response.json()
        assert (
            data["status"] == "BUILD"
            and data["vm_state"] == "building"
            and data["task_state"] == "scheduling"
        )
        assert data["flavor"]["name"] == "m1.tiny" and data["image"]["name"] == "cirros"
        assert data["operation"]["kind"] == "instance.create" and data["operation"]["state"] == "pending"
        assert data["host"] is None and data["addresses"] == {} and data["metadata"] == {"a": "b"}

    @pytest.mark.parametrize("role, code", [("reader", 403), ("anonymous", 401)])
    def test_reader_and_anonymous_cannot(self, setup, clients, role, code):
        assert clients[role].post(URL, body(), format="json").status_code == code
        assert not Instance.objects.exists()

    @pytest.mark.parametrize(
        "payload",
        [
            {},
            body(name=""),
            body(flavor="nope"),
            body(image=123),
            body(metadata=[1]),
            body(metadata={"k": {"x": 1}}),
            body(networks=["n1"]),
            body(user_data=5),
            body(name=["x"]),
            body(flavor=None),
            "not json",
        ],
    )
    def test_bad_input_is_400_and_nothing_is_created(self, setup, clients, payload):
        response = clients["member"].post(URL, payload, format="json")
        assert response.status_code == 400, response.content
        assert "message" in response.json()["error"]
        assert not Instance.objects.exists()

    def test_quota_exceeded_is_413(self, setup, clients, cloud):
        quotas.set_limits(cloud.project, {"instances": 1})
        assert clients["member"].post(URL, body(), format="json").status_code == 202
        response = clients["member"].post(URL, body(name="b"), format="json")
        assert response.status_code == 413
        assert "instances (limit 1, in use 1, requested 1)" in response.json()["error"]["message"]

    def test_idempotency_key(self, setup, clients):
        headers = {"HTTP_IDEMPOTENCY_KEY": "abc"}
        first = clients["member"].post(URL, body(), format="json", **headers)
        again = clients["member"].post(URL, body(), format="json", **headers)
        assert (first.status_code, again.status_code) == (202, 200)
        assert first.json()["id"] == again.json()["id"]
        clash = clients["member"].post(URL, body(name="other"), format="json", **headers)
        assert clash.status_code == 409
        assert Instance.objects.count() == 1


class TestActions:
    def test_actions_answer_202_and_409_naming_the_state(self, setup, clients, cloud):
        instance = in_state(launch(cloud), "active")
        response = clients["member"].post(f"{URL}{instance.pk}/stop/")
        assert response.status_code == 202 and response.json()["task_state"] == "powering-off"
        assert response.json()["operation"]["kind"] == "instance.stop"
        busy = clients["member"].post(f"{URL}{instance.pk}/start/")
        assert busy.status_code == 409 and "busy (powering-off)" in busy.json()["error"]["message"]
        in_state(instance, "stopped")
        wrong = clients["member"].post(f"{URL}{instance.pk}/pause/")
        assert wrong.status_code == 409
        assert "while it is stopped (status SHUTOFF)" in wrong.json()["error"]["message"]

    def test_a_retried_action_with_its_idempotency_key_starts_nothing_more(self, setup, clients, cloud):
        instance = in_state(launch(cloud), "active")
        stop = f"{URL}{instance.pk}/stop/"
        key = {"HTTP_IDEMPOTENCY_KEY": "stop-1"}
        first = clients["member"].post(stop, **key)
        again = clients["member"].post(stop, **key)  # a client that lost the first answer
        assert (first.status_code, again.status_code) == (202, 202)
        assert again.json()["operation"]["id"] == first.json()["operation"]["id"]
        assert ResourceAction.objects.filter(resource_id=instance.pk, action="stop").count() == 1
        # Once the stop is done, the retry still answers (with the state now), rather than a 409.
        in_state(instance, "stopped")
        assert clients["member"].post(stop, **key).json()["status"] == "SHUTOFF"
        # The key names that stop: another action with it is refused; without a key it is a new stop.
        clash = clients["member"].post(f"{URL}{instance.pk}/start/", **key)
        assert clash.status_code == 409 and "already used for stop" in clash.json()["error"]["message"]
        assert clients["member"].post(stop).status_code == 409  # stopped: a new stop is refused
        too_long = clients["member"].post(f"{URL}{instance.pk}/start/", HTTP_IDEMPOTENCY_KEY="k" * 256)
        assert too_long.status_code == 400
        assert (
            clients["member"].post(f"{URL}{instance.pk}/start/", HTTP_IDEMPOTENCY_KEY="start-1").status_code
            == 202
        )

    def test_an_action_key_is_per_instance(self, setup, clients, cloud):
        one, two = (in_state(launch(cloud, name=n), "active") for n in ("one", "two"))
        for instance in (one, two):
            response = clients["member"].post(f"{URL}{instance.pk}/pause/", HTTP_IDEMPOTENCY_KEY="same")
            assert response.status_code == 202
        assert ResourceAction.objects.filter(action="pause").count() == 2

    @pytest.mark.parametrize("kind, task", [("soft", "rebooting"), ("hard", "rebooting_hard")])
    def test_reboot_types(self, setup, clients, cloud, kind, task):
        instance = in_state(launch(cloud), "active")
        response = clients["member"].post(f"{URL}{instance.pk}/reboot/", {"type": kind}, format="json")
        assert response.status_code == 202 and response.json()["task_state"] == task
        assert response.json()["status"] == ("REBOOT" if kind == "soft" else "HARD_REBOOT")

    def test_bad_reboot_type(self, setup, clients, cloud):
        instance = in_state(launch(cloud), "active")
        assert (
            clients["member"].post(f"{URL}{instance.pk}/reboot/", {"type": "x"}, format="json").status_code
            == 400
        )

    def test_delete_is_202(self, setup, clients, cloud):
        instance = launch(cloud)
        response = clients["member"].delete(f"{URL}{instance.pk}/")
        assert response.status_code == 202 and response.json()["task_state"] == "deleting"

    def test_lock_and_unlock(self, setup, clients, cloud):
        instance = in_state(launch(cloud), "active")
        assert clients["member"].post(f"{URL}{instance.pk}/lock/").json()["locked"] is True
        assert clients["member"].post(f"{URL}{instance.pk}/stop/").status_code == 409
        assert clients["member"].post(f"{URL}{instance.pk}/unlock/").json()["locked"] is False

    def test_reader_sees_but_cannot_act(self, setup, clients, cloud):
        instance = in_state(launch(cloud), "active")
        assert clients["reader"].get(f"{URL}{instance.pk}/").status_code == 200
        for action in ("stop", "reboot", "lock"):
            assert clients["reader"].post(f"{URL}{instance.pk}/{action}/").status_code == 403
        assert clients["reader"].delete(f"{URL}{instance.pk}/").status_code == 403

    def test_another_project_gets_404_and_changes_nothing(self, setup, clients, cloud):
        instance = in_state(launch(cloud), "active")
        for method, path in [
            ("get", ""),
            ("delete", ""),
            ("post", "stop/"),
            ("post", "lock/"),
            ("get", "console-log/"),
            ("get", "actions/"),
        ]:
            response = getattr(clients["other"], method)(f"{URL}{instance.pk}/{path}")
            assert response.status_code == 404, (method, path)
        instance.refresh_from_db()
        assert (instance.task_state, instance.locked) == ("", False)
        assert clients["other"].get(URL).json()["count"] == 0

    def test_patch_renames_describes_and_retags(self, setup, clients, cloud):
        created = clients["member"].post(URL, body(description="web", tags=["a"]), format="json").json()
        assert (created["description"], created["tags"]) == ("web", ["a"])
        path = f"{URL}{created['id']}/"
        changed = clients["member"].patch(path, {"name": "web-2", "tags": ["b", "c"]}, format="json")
        assert changed.status_code == 200, changed.content
        assert (changed.json()["name"], changed.json()["tags"]) == ("web-2", ["b", "c"])
        assert [i["name"] for i in clients["member"].get(f"{URL}?tag=b,c").json()["results"]] == ["web-2"]
        assert clients["member"].get(f"{URL}?tag=a").json()["count"] == 0
        for bad in (
            {"tags": ["x/y"]},
            {"name": ""},
            {"flavor": "m1.tiny"},
            {"tags": "a"},
            {"description": 5},
        ):
            response = clients["member"].patch(path, bad, format="json")
            assert response.status_code == 400, (bad, response.content)
        assert clients["reader"].patch(path, {"name": "x"}, format="json").status_code == 403
        assert clients["other"].patch(path, {"name": "x"}, format="json").status_code == 404
        instance = Instance.objects.get(pk=created["id"])
        assert (instance.name, instance.description, instance.tags) == ("web-2", "web", ["b", "c"])
        assert "update" in [a.action for a in ResourceAction.objects.filter(resource_id=str(instance.pk))]

    def test_action_log(self, setup, clients, cloud):
        instance = in_state(launch(cloud), "active")
        clients["member"].post(f"{URL}{instance.pk}/stop/")
        log = clients["reader"].get(f"{URL}{instance.pk}/actions/").json()
        assert [row["action"] for row in log] == ["stop", "create"]
        assert log[0]["user"] == cloud.member.username and log[0]["result"] == ""

    def test_console_log_of_a_building_instance_is_409(self, setup, clients, cloud):
        instance = launch(cloud)
        assert clients["member"].get(f"{URL}{instance.pk}/console-log/").status_code == 409

    @pytest.mark.parametrize("lines", ["x", "0", "100001"])
    def test_console_log_bad_lines_is_400(self, setup, clients, cloud, lines):
        instance = in_state(launch(cloud), "active")
        assert clients["member"].get(f"{URL}{instance.pk}/console-log/?lines={lines}").status_code == 400

    def test_console_log_of_a_down_host_is_503(self, setup, clients, cloud):
        host = make_host("gone", last_heartbeat=None)
        instance = in_state(launch(cloud), "active", host=host)
        response = clients["member"].get(f"{URL}{instance.pk}/console-log/")
        assert response.status_code == 503 and "gone is down" in response.json()["error"]["message"]


def test_admins_see_the_host(setup, clients, cloud):
    instance = in_state(launch(cloud), "active", host=make_host("h1"))
    assert clients["member"].get(f"{URL}{instance.pk}/").json()["host"] is None
    admin_in_project = clients["admin"]
    from tests.conftest import token_client
    from tests.factories import grant

    grant(cloud.admin, cloud.project, "admin")
    admin_in_project = token_client(cloud.admin, cloud.project)
    assert admin_in_project.get(f"{URL}{instance.pk}/").json()["host"] == "h1"


def test_scheduler_explain_is_admin_only(setup, clients):
    make_host("h1")
    response = clients["admin"].post(
        "/api/v1/compute/scheduler/explain/", {"flavor": "m1.tiny"}, format="json"
    )
    assert response.status_code == 200 and response.json()["hosts"][0]["passed"] is True
    assert (
        clients["member"]
        .post("/api/v1/compute/scheduler/explain/", {"flavor": "m1.tiny"}, format="json")
        .status_code
        == 403
    )
    assert (
        clients["admin"]
        .post("/api/v1/compute/scheduler/explain/", {"flavor": "zz"}, format="json")
        .status_code
        == 400
    )


API_LIST_QUERIES = 5  # token, caller's roles, COUNT, page (flavor, image, operation, host joined), volumes
API_DETAIL_QUERIES = 4  # token, caller's roles, the row, its volumes


def test_list_query_count_is_fixed(setup, clients, cloud, django_assert_num_queries):
    quotas.set_limits(cloud.project, {"instances": -1, "cores": -1, "ram": -1})
    host = make_host("h1")
    in_state(launch(cloud, name="first"), "active", host=host)

    def grow():
        for n in range(MANY):
            in_state(launch(cloud, name=f"vm{n}"), "active", host=host)

    assert_fixed_queries(
        django_assert_num_queries,
        lambda: clients["member"].get(URL),
        API_LIST_QUERIES,
        grow=grow,
        rows=api_rows,
    )


def test_detail_query_count(setup, clients, cloud, django_assert_num_queries):
    instance = in_state(launch(cloud), "active")
    clients["member"].get(f"{URL}{instance.pk}/")
    with django_assert_num_queries(API_DETAIL_QUERIES):
        assert clients["member"].get(f"{URL}{instance.pk}/").status_code == 200


def test_action_log_rows(setup, clients, cloud):
    instance = in_state(launch(cloud), "active")
    assert ResourceAction.objects.filter(resource_type="instance", resource_id=instance.pk).count() == 1


class TestBootFromVolume:
    @pytest.fixture
    def storage_world(self, setup):
        from storage.models import VolumeType
        from tests.storage.conftest import make_storage_host

        VolumeType.objects.get_or_create(name="default", defaults={"backend": "local", "is_default": True})
        make_host("h1")
        make_storage_host("h1")

    def test_launch_from_a_new_volume_is_202_and_its_root_volume_is_shown(self, storage_world, clients):
        from storage.models import Volume

        payload = body(boot_from_volume={"size": 1, "delete_on_termination": True})
        response = clients["member"].post(URL, payload, format="json")
        assert response.status_code == 202, response.content
        data = clients["member"].get(f"{URL}{response.json()['id']}/").json()
        assert [v["device"] for v in data["volumes"]] == ["/dev/vda"]
        assert Volume.objects.get(pk=data["volumes"][0]["id"]).status == "creating"

    @pytest.mark.parametrize(
        "payload",
        [
            {"boot_from_volume": {"size": 0}},
            {"boot_from_volume": {"size": "big"}},
            {"boot_from_volume": {"nope": 1}},
            {"boot_from_volume": "yes"},
            {"boot_volume": "no-such-volume", "image": None},
        ],
    )
    def test_bad_shapes_are_400(self, storage_world, clients, payload):
        response = clients["member"].post(URL, {**body(), **payload}, format="json")
        assert response.status_code == 400, response.content
        assert not Instance.objects.exists()

    def test_list_query_count_is_fixed_with_volume_booted_instances(
        self, storage_world, clients, cloud, django_assert_num_queries
    ):
        quotas.set_limits(
            cloud.project, {"instances": -1, "cores": -1, "ram": -1, "volumes": -1, "gigabytes": -1}
        )
        host = Instance._meta.get_field("host").related_model.objects.get(name="h1")
        spec = {"boot_from_volume": {"size": 1}}
        in_state(launch(cloud, name="first", **spec), "active", host=host)

        def grow():
            for n in range(MANY):
                in_state(launch(cloud, name=f"vm{n}", **spec), "active", host=host)

        assert_fixed_queries(
            django_assert_num_queries,
            lambda: clients["member"].get(URL),
            API_LIST_QUERIES,
            grow=grow,
            rows=api_rows,
        )
