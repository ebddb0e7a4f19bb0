"""Instance services: create (validation, quotas, idempotency), the state machine of every action in
every state, locks, and the conductor's side (scheduling, spawn results, rescheduling, faults)."""

import itertools
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from compute import services
from compute.models import ComputeNode, Instance
from compute.services.lifecycle import ACTIONS, INSTANCE, allowed_actions
from identity import quotas
from identity.errors import Conflict, InvalidInput, PolicyDenied, QuotaExceeded
from identity.models import ResourceAction
from tests.factories import KeyPairFactory
from workers import services as ledger
from workers.models import Host, Operation

from .conftest import make_flavor, make_host, node
from .instance_helpers import in_state, launch, make_image

pytestmark = pytest.mark.django_db

VM_STATES = ["building", "active", "stopped", "paused", "suspended", "error"]
_n = itertools.count()


@pytest.fixture
def image(cloud):
    return make_image()


@pytest.fixture
def tiny(cloud):
    return make_flavor("m1.tiny", vcpus=1, ram_mb=512, disk_gb=1)


class TestCreate:
    def test_create_records_instance_operation_and_action(self, cloud, image, tiny):
        instance, created = services.create_instance(
            cloud.ctx(cloud.member), name="web-1", flavor="m1.tiny", image="cirros", metadata={"role": "web"}
        )
        assert created
        assert (instance.vm_state, instance.task_state, instance.status) == (
            "building",
            "scheduling",
            "BUILD",
        )
        assert (instance.vcpus, instance.memory_mb, instance.disk_gb) == (1, 512, 1)
        op = Operation.objects.get(pk=instance.operation_id)
        assert (op.kind, op.task_name, op.queue, op.state) == (
            "instance.create",
            "compute.tasks.build_instance",
            "conductor",
            "pending",
        )
        assert op.payload == {"instance_id": str(instance.pk)}
        action = actions_of(instance).get()
        assert (action.action, action.user, action.operation_id) == ("create", cloud.member, op.pk)

    def test_key_pair_is_copied(self, cloud, image, tiny):
        pair = KeyPairFactory(user=cloud.member, name="mykey")
        instance = launch(cloud, flavor=tiny, key_name="mykey")
        assert instance.key_name == "mykey" and instance.key_data == pair.public_key

    @pytest.mark.parametrize(
        "fields, message",
        [
            ({"name": ""}, "Instance name"),
            ({"name": "a\x00b"}, "Instance name"),
            ({"flavor": "nope"}, "No flavor 'nope'"),
            ({"image": "nope"}, "No image 'nope'"),
            ({"key_name": "missing"}, "no key pair named 'missing'"),
            ({"metadata": {"k": 1}}, "Metadata 'k'"),
            ({"metadata": "x"}, "Metadata must be an object"),
            ({"user_data": "x" * 70000}, "User data is limited"),
            ({"networks": ["abc"]}, "Networks cannot be chosen yet"),
            ({"availability_zone": "mars"}, "No availability zone 'mars'"),
        ],
    )
    def test_bad_input_is_refused_and_nothing_is_created(self, cloud, image, tiny, fields, message):
        args = {"name": "vm", "flavor": "m1.tiny", "image": "cirros", **fields}
        with pytest.raises(InvalidInput, match=message):
            services.create_instance(cloud.ctx(cloud.member), **args)
        assert not Instance.objects.exists() and not Operation.objects.exists()

    def test_private_flavor_of_another_project_and_disabled_flavor(self, cloud, image):
        make_flavor("hidden", is_public=False)
        make_flavor("old", disabled=True)
        with pytest.raises(InvalidInput, match="No flavor 'hidden'"):
            services.create_instance(cloud.ctx(cloud.member), name="x", flavor="hidden", image="cirros")
        with pytest.raises(InvalidInput, match="disabled"):
            services.create_instance(cloud.ctx(cloud.member), name="x", flavor="old", image="cirros")

    def test_image_too_big_for_the_flavor(self, cloud, tiny):
        make_image("big", min_disk=40, min_ram=4096)
        with pytest.raises(InvalidInput):
            services.create_instance(cloud.ctx(cloud.member), name="x", flavor="m1.tiny", image="big")

    def test_reader_cannot_create(self, cloud, image, tiny):
        with pytest.raises(PolicyDenied):
            services.create_instance(cloud.ctx(cloud.reader), name="x", flavor="m1.tiny", image="cirros")

    def test_quota_counts_instances_cores_and_ram(self, cloud, image):
        quotas.set_limits(cloud.project, {"instances": 3, "cores": 4, "ram": 4096})
        big = make_flavor("c2", vcpus=2, ram_mb=1024, disk_gb=1)
        launch(cloud, flavor=big, name="a")
        launch(cloud, flavor=big, name="b")
        with pytest.raises(QuotaExceeded, match="cores"):
            launch(cloud, flavor=big, name="c")
        assert Instance.objects.count() == 2
        usage = {row["resource"]: row["in_use"] for row in quotas.summary(cloud.project)}
        assert (usage["instances"], usage["cores"], usage["ram"]) == (2, 4, 2048)

    def test_deleted_instances_free_their_quota(self, cloud, image, tiny):
        quotas.set_limits(cloud.project, {"instances": 1})
        first = launch(cloud, flavor=tiny, name="a")
        Instance.objects.filter(pk=first.pk).update(vm_state="deleted")
        launch(cloud, flavor=tiny, name="b")

    def test_idempotency_key_replays_the_same_instance(self, cloud, image, tiny):
        ctx = cloud.ctx(cloud.member)
        first, created = services.create_instance(
            ctx, name="a", flavor="m1.tiny", image="cirros", idempotency_key="k1"
        )
        again, created_again = services.create_instance(
            ctx, name="a", flavor="m1.tiny", image="cirros", idempotency_key="k1"
        )
        assert created and not created_again and again.pk == first.pk
        assert Instance.objects.count() == 1 and Operation.objects.count() == 1
        with pytest.raises(Conflict, match="different request"):
            services.create_instance(ctx, name="b", flavor="m1.tiny", image="cirros", idempotency_key="k1")
        # Keys are per project: another project may use the same one.
        other, created_other = services.create_instance(
            cloud.ctx(cloud.other_member), name="a", flavor="m1.tiny", image="cirros", idempotency_key="k1"
        )
        assert created_other and other.pk != first.pk


# Nova's state machine, written out by hand (not read from the code under test): for each action,
# the vm_states it may start from, the task_state while it runs and the vm_state it ends in.
LIVE = {"building", "active", "stopped", "paused", "suspended", "error"}
EXPECTED = {
    "start": ({"stopped"}, "powering-on", "active"),
    "stop": ({"active", "error"}, "powering-off", "stopped"),
    "reboot": ({"active"}, "rebooting", "active"),
    "reboot_hard": ({"active", "stopped", "paused", "suspended", "error"}, "rebooting_hard", "active"),
    "pause": ({"active"}, "pausing", "paused"),
    "unpause": ({"paused"}, "unpausing", "active"),
    "suspend": ({"active"}, "suspending", "suspended"),
    "resume": ({"suspended"}, "resuming", "active"),
    "delete": (LIVE, "deleting", "deleted"),
}


def actions_of(instance):
    return ResourceAction.objects.filter(resource_type="instance", resource_id=instance.pk)


def test_the_declared_actions_are_the_expected_ones():
    # Snapshot and rebuild have services of their own: they take an image (test_snapshots, test_rebuild).
    assert [name for name in ACTIONS if name not in ("snapshot", "rebuild")] == list(EXPECTED)
    snapshot, rebuild = ACTIONS["snapshot"], ACTIONS["rebuild"]
    assert (snapshot.allowed, snapshot.busy, snapshot.target) == ({"active", "stopped"}, "image_snapshot", "")
    assert (rebuild.allowed, rebuild.busy, rebuild.target) == (
        {"active", "stopped", "error"},
        "rebuilding",
        "active",
    )


def test_a_snapshot_or_rebuild_is_no_bare_action(cloud, image, tiny):
    instance = in_state(launch(cloud, flavor=tiny), "active")
    with pytest.raises(InvalidInput, match="needs the image's name"):
        services.instance_action(cloud.ctx(cloud.member), instance, "snapshot")
    with pytest.raises(InvalidInput, match="needs its image"):
        services.instance_action(cloud.ctx(cloud.member), instance, "rebuild")
    assert Instance.objects.get(pk=instance.pk).task_state == ""


@pytest.mark.parametrize("vm_state", VM_STATES)
@pytest.mark.parametrize("action_name", list(EXPECTED))
def test_every_action_in_every_state(cloud, image, tiny, vm_state, action_name):
    instance = in_state(launch(cloud, flavor=tiny), vm_state)
    ctx = cloud.ctx(cloud.member)
    allowed_from, busy, _target = EXPECTED[action_name]
    if vm_state in allowed_from:
        done = services.instance_action(ctx, instance, action_name)
        assert done.task_state == busy
        op = Operation.objects.get(pk=Instance.objects.get(pk=instance.pk).operation_id)
        assert op.kind == f"instance.{action_name}" and op.task_name == "workers.tasks.run_transition"
        assert actions_of(instance).filter(action=action_name, operation_id=op.pk).exists()
        assert action_name in allowed_actions(in_state(instance, vm_state))
    else:
        with pytest.raises(Conflict, match=f"while it is {vm_state}"):
            services.instance_action(ctx, instance, action_name)
        assert Instance.objects.get(pk=instance.pk).task_state == ""
        assert action_name not in allowed_actions(instance)


@pytest.mark.parametrize("action_name", [a for a in EXPECTED if a != "delete"])
def test_a_busy_instance_refuses_everything_but_delete(cloud, image, tiny, action_name):
    instance = in_state(launch(cloud, flavor=tiny), "active", task_state="rebooting")
    with pytest.raises(Conflict, match="busy"):
        services.instance_action(cloud.ctx(cloud.member), instance, action_name)
    assert allowed_actions(instance) == ["delete"]
    services.delete_instance(cloud.ctx(cloud.member), instance)


def test_deleting_twice_is_a_conflict(cloud, image, tiny):
    instance = launch(cloud, flavor=tiny)
    services.delete_instance(cloud.ctx(cloud.member), instance)
    with pytest.raises(Conflict, match="being deleted"):
        services.delete_instance(cloud.ctx(cloud.member), instance)


def test_reader_may_not_act(cloud, image, tiny):
    instance = in_state(launch(cloud, flavor=tiny), "active")
    with pytest.raises(PolicyDenied):
        services.instance_action(cloud.ctx(cloud.reader), instance, "stop")


def test_unknown_action(cloud, image, tiny):
    with pytest.raises(InvalidInput):
        services.instance_action(cloud.ctx(cloud.member), launch(cloud, flavor=tiny), "explode")


class TestLock:
    def test_a_locked_instance_refuses_members_but_not_admins(self, cloud, image, tiny):
        instance = in_state(launch(cloud, flavor=tiny), "active")
        member = cloud.ctx(cloud.member)
        services.lock_instance(member, instance)
        with pytest.raises(Conflict, match="locked"):
            services.instance_action(member, instance, "stop")
        with pytest.raises(Conflict, match="already locked"):
            services.lock_instance(member, instance)
        services.instance_action(cloud.ctx(cloud.admin, cloud.project), instance, "stop")
        services.unlock_instance(member, instance)
        assert not Instance.objects.get(pk=instance.pk).locked
        assert list(
            actions_of(instance).filter(action__in=["lock", "unlock"]).values_list("action", "result")
        ) == [("unlock", "success"), ("lock", "success")]

    def test_an_admin_lock_is_the_admins_to_lift(self, cloud, image, tiny):
        instance = in_state(launch(cloud, flavor=tiny), "active")
        services.lock_instance(cloud.ctx(cloud.admin, cloud.project), instance)
        with pytest.raises(Conflict, match="administrator"):
            services.unlock_instance(cloud.ctx(cloud.member), instance)
        services.unlock_instance(cloud.ctx(cloud.admin, cloud.project), instance)


class TestConductor:
    def test_schedule_claims_a_host_and_describes_the_spawn(self, cloud, image, tiny):
        host = make_host("h1")
        instance = launch(cloud, flavor=tiny, key_name=None, user_data="#!/bin/sh\necho hi")
        work = services.schedule_instance(instance.operation_id, instance.pk)
        assert work["host"] == "h1"
        assert work["instance"]["domain"] == f"zenith-{instance.pk}"
        assert work["instance"]["user_data"] == "#!/bin/sh\necho hi"
        assert work["image"]["checksum"] == image.checksum
        instance.refresh_from_db()
        assert (instance.host, instance.task_state, instance.attempted_hosts) == (host, "spawning", ["h1"])
        claimed = node("h1")
        assert (claimed.vcpus_used, claimed.memory_mb_used, claimed.disk_gb_used) == (1, 512, 1)

    def test_spawn_success_makes_it_active(self, cloud, image, tiny):
        make_host("h1")
        instance = launch(cloud, flavor=tiny)
        services.schedule_instance(instance.operation_id, instance.pk)
        assert (
            services.spawn_finished(
                instance.operation_id, instance.pk, {"ok": True, "host": "h1", "power_state": "running"}
            )
            == "active"
        )
        instance.refresh_from_db()
        assert (instance.status, instance.power_state, instance.task_state) == ("ACTIVE", "running", "")
        assert instance.launched_at is not None
        assert Operation.objects.get(pk=instance.operation_id).state == "succeeded"
        assert actions_of(instance).get().result == "success"

    def test_failed_spawn_reschedules_then_errors_with_every_host_named(self, cloud, image, tiny, settings):
        settings.ZENITH_SCHEDULER_MAX_ATTEMPTS = 2
        make_host("h1")
        make_host("h2")
        instance = launch(cloud, flavor=tiny)
        op = instance.operation_id
        first = services.schedule_instance(op, instance.pk)["host"]
        assert (
            services.spawn_finished(op, instance.pk, {"ok": False, "host": first, "error": "boom"})
            == "reschedule"
        )
        assert node(first).memory_mb_used == 0  # the failed host's claim is released
        second = services.schedule_instance(op, instance.pk)["host"]
        assert second != first
        assert (
            services.spawn_finished(op, instance.pk, {"ok": False, "host": second, "error": "bang"})
            == "error"
        )
        instance.refresh_from_db()
        assert instance.status == "ERROR" and instance.host is None
        assert "every host tried" in instance.fault["message"]
        # Both attempts, each with its host's own error: in the fault, its details and the action log.
        message = instance.fault["message"]
        assert f"{first}: boom" in message and f"{second}: bang" in message
        assert instance.fault["details"]["attempts"] == [
            {"host": first, "error": "boom"},
            {"host": second, "error": "bang"},
        ]
        action = actions_of(instance).get(action="create")
        assert action.result == "error" and f"{first}: boom" in action.message and "bang" in action.message
        assert Operation.objects.get(pk=op).state == "failed"
        assert ComputeNode.objects.filter(memory_mb_used__gt=0).count() == 0

    def test_no_valid_host_after_a_failed_spawn_keeps_the_spawn_error(self, cloud, image, tiny):
        """The issue's case: h1 fails the spawn, no other host fits. The fault must not read only
        "h1: already tried for this instance": it leads with h1's own error."""
        make_host("h1")
        make_host("small", memory_mb=256)
        instance = launch(cloud, flavor=tiny)
        op = instance.operation_id
        services.schedule_instance(op, instance.pk)
        error = "Cannot access storage file '/gone/pool/disk': No such file or directory"
        assert services.spawn_finished(op, instance.pk, {"ok": False, "host": "h1", "error": error}) == (
            "reschedule"
        )
        assert actions_of(instance).get(action="create").message == (
            f"Spawning failed on h1: {error}; rescheduling"
        )
        assert services.schedule_instance(op, instance.pk) is None
        instance.refresh_from_db()
        assert instance.status == "ERROR"
        fault = instance.fault
        assert fault["code"] == "no_valid_host"
        assert fault["message"].startswith(f"Spawning failed on h1: {error}. No valid host was found.")
        assert "h1: already tried for this instance" in fault["message"]
        assert fault["details"]["attempts"] == [{"host": "h1", "error": error}]
        assert {v["host"] for v in fault["details"]["hosts"]} == {"h1", "small"}
        action = actions_of(instance).get(action="create")
        assert action.result == "error" and action.message == fault["message"]
        assert error in Operation.objects.get(pk=op).message

    def test_success_after_a_failed_spawn_logs_the_attempt(self, cloud, image, tiny):
        make_host("h1")
        make_host("h2")
        instance = launch(cloud, flavor=tiny)
        op = instance.operation_id
        first = services.schedule_instance(op, instance.pk)["host"]
        services.spawn_finished(op, instance.pk, {"ok": False, "host": first, "error": "boom"})
        second = services.schedule_instance(op, instance.pk)["host"]
        assert services.spawn_finished(op, instance.pk, {"ok": True, "host": second}) == "active"
        instance.refresh_from_db()
        assert instance.status == "ACTIVE" and instance.fault is None
        action = actions_of(instance).get(action="create")
        assert (action.result, action.message) == (
            "success",
            f"active on {second} after spawning failed on {first}: boom",
        )

    def test_no_valid_host_errors_with_reasons(self, cloud, image, tiny):
        make_host("small", memory_mb=256)
        instance = launch(cloud, flavor=tiny)
        assert services.schedule_instance(instance.operation_id, instance.pk) is None
        instance.refresh_from_db()
        assert instance.status == "ERROR"
        assert instance.fault["code"] == "no_valid_host"
        assert "small: not enough RAM: 256 MB free, 512 MB needed" in instance.fault["message"]
        assert instance.fault["details"][0]["host"] == "small"
        op = Operation.objects.get(pk=instance.operation_id)
        assert op.state == "failed" and "No valid host" in op.message

    def test_delete_while_scheduling_spawns_nothing(self, cloud, image, tiny):
        make_host("h1")
        instance = launch(cloud, flavor=tiny)
        create_op = instance.operation_id
        services.delete_instance(cloud.ctx(cloud.member), instance)
        assert services.schedule_instance(create_op, instance.pk) is None
        assert node("h1").memory_mb_used == 0

    def test_delete_of_an_unplaced_instance_finishes_at_the_conductor(self, cloud, image, tiny):
        instance = launch(cloud, flavor=tiny)
        services.delete_instance(cloud.ctx(cloud.member), instance)
        instance.refresh_from_db()
        assert INSTANCE.host_work(instance.operation_id, instance.pk, ACTIONS["delete"], {}) is None
        instance.refresh_from_db()
        assert instance.vm_state == "deleted" and instance.terminated_at is not None
        assert Operation.objects.get(pk=instance.operation_id).state == "succeeded"

    def test_delete_releases_the_claim(self, cloud, image, tiny):
        make_host("h1")
        instance = launch(cloud, flavor=tiny)
        services.schedule_instance(instance.operation_id, instance.pk)
        services.spawn_finished(instance.operation_id, instance.pk, {"ok": True, "host": "h1"})
        services.delete_instance(cloud.ctx(cloud.member), instance)
        instance.refresh_from_db()
        work = INSTANCE.host_work(instance.operation_id, instance.pk, ACTIONS["delete"], {})
        assert (work.host, work.task, work.role) == ("h1", "workers.agent.tasks.instance_action", "compute")
        assert work.kwargs == {
            "action": "delete",
            "domain": instance.domain_name,
            "instance_id": str(instance.pk),
        }
        INSTANCE.settle(instance.operation_id, instance.pk, "delete", {"ok": True})
        assert node("h1").memory_mb_used == 0
        assert Instance.objects.get(pk=instance.pk).status == "DELETED"
        assert not Instance.objects.visible_to(cloud.ctx(cloud.member)).exists()

    @pytest.mark.parametrize("action_name", [a for a in EXPECTED if a != "delete"])
    def test_action_results_settle_the_state(self, cloud, image, tiny, action_name):
        allowed_from, _busy, target = EXPECTED[action_name]
        start = sorted(allowed_from)[0]
        instance = in_state(launch(cloud, flavor=tiny), start)
        services.instance_action(cloud.ctx(cloud.member), instance, action_name)
        instance.refresh_from_db()
        INSTANCE.settle(
            instance.operation_id, instance.pk, action_name, {"ok": True, "power_state": "running"}
        )
        instance.refresh_from_db()
        assert (instance.vm_state, instance.task_state) == (target, "")
        assert Operation.objects.get(pk=instance.operation_id).state == "succeeded"

    def test_a_failed_action_falls_back_to_what_the_hypervisor_says(self, cloud, image, tiny):
        instance = in_state(launch(cloud, flavor=tiny), "active")
        services.instance_action(cloud.ctx(cloud.member), instance, "suspend")
        instance.refresh_from_db()
        INSTANCE.settle(
            instance.operation_id,
            instance.pk,
            "suspend",
            {"ok": False, "error": "no space", "power_state": "running"},
        )
        instance.refresh_from_db()
        assert (instance.status, instance.task_state) == ("ACTIVE", "")
        assert instance.fault["code"] == "suspend_failed" and "no space" in instance.fault["message"]
        assert actions_of(instance).filter(action="suspend").get().result == "error"

    def test_a_second_answer_to_a_settled_action_changes_nothing(self, cloud, image, tiny):
        """A redelivered stop runs again on the host and fails there ("already stopped"): ignored."""
        instance = in_state(launch(cloud, flavor=tiny), "active")
        services.instance_action(cloud.ctx(cloud.member), instance, "stop")
        instance.refresh_from_db()
        op = instance.operation_id
        INSTANCE.settle(op, instance.pk, "stop", {"ok": True, "power_state": "shutoff"})
        INSTANCE.settle(op, instance.pk, "stop", {"ok": False, "error": "not running", "power_state": ""})
        instance.refresh_from_db()
        assert (instance.status, instance.task_state, instance.fault) == ("SHUTOFF", "", None)
        assert Operation.objects.get(pk=op).state == "succeeded"

    def test_a_timed_out_create_ends_in_error(self, cloud, image, tiny):
        from workers import services as ledger

        instance = launch(cloud, flavor=tiny)
        op = Operation.objects.get(pk=instance.operation_id)
        ledger.fail(op.pk, "Deadline exceeded")
        op.refresh_from_db()
        INSTANCE.timed_out(op)
        instance.refresh_from_db()
        assert instance.status == "ERROR" and instance.fault["code"] == "timeout"


class TestPowerSync:
    def test_a_guest_that_stopped_on_its_own_shows_shutoff(self, cloud, image, tiny):
        host = make_host("h1")
        instance = in_state(launch(cloud, flavor=tiny), "active", host=host)
        busy = in_state(launch(cloud, flavor=tiny, name="busy"), "active", task_state="rebooting", host=host)
        domains = [
            {"name": instance.domain_name, "instance_id": str(instance.pk), "power_state": "shutdown"},
            {"name": busy.domain_name, "instance_id": str(busy.pk), "power_state": "shutdown"},
            {"name": "stray", "instance_id": None, "power_state": "running"},
        ]
        assert services.sync_power_states("h1", domains) == {"updated": 1}
        instance.refresh_from_db()
        busy.refresh_from_db()
        assert instance.status == "SHUTOFF" and instance.power_state == "shutdown"
        assert busy.status == "REBOOT"  # an action in flight is not second-guessed

    def test_an_instance_in_error_stays_in_error(self, cloud, image, tiny):
        host = make_host("h1")
        broken = in_state(launch(cloud, flavor=tiny), "error", host=host, power_state="shutdown")
        domains = [{"name": broken.domain_name, "instance_id": str(broken.pk), "power_state": "running"}]
        assert services.sync_power_states("h1", domains) == {"updated": 1}
        broken.refresh_from_db()
        assert (broken.status, broken.power_state) == ("ERROR", "running")

    def test_drift_lists_unknown_domains_and_missing_ones(self, cloud, image, tiny):
        host = make_host("h1")
        present = in_state(launch(cloud, flavor=tiny, name="present"), "active", host=host)
        gone = in_state(launch(cloud, flavor=tiny, name="gone"), "active", host=host)
        services.sync_power_states(
            "h1",
            [
                {"name": present.domain_name, "instance_id": str(present.pk), "power_state": "running"},
                {"name": "stray", "instance_id": None, "power_state": "running"},
            ],
        )
        report = services.drift(cloud.ctx(cloud.admin))
        assert [d["name"] for d in report["unknown_domains"]] == ["stray"]
        assert [d["name"] for d in report["missing_domains"]] == [gone.name]
        with pytest.raises(PolicyDenied):
            services.drift(cloud.ctx(cloud.member))


def test_explain_scheduling_is_for_admins(cloud, tiny):
    make_host("h1")
    make_host("h2", enabled=False, disabled_reason="maintenance")
    report = services.explain_scheduling(cloud.ctx(cloud.admin), flavor="m1.tiny")
    assert report["weigher"] == "spread"
    assert [(h["host"], h["passed"]) for h in report["hosts"]] == [("h1", True), ("h2", False)]
    with pytest.raises(PolicyDenied):
        services.explain_scheduling(cloud.ctx(cloud.member), flavor="m1.tiny")


def test_hosts_fitting_counts_per_flavor(cloud, tiny):
    big = make_flavor("big", vcpus=8, ram_mb=32768, disk_gb=10)
    make_host("h1", memory_mb=65536)
    make_host("h2", memory_mb=4096)
    assert services.hosts_fitting([tiny, big]) == {tiny.pk: 2, big.pk: 1}


def test_a_redelivered_build_message_does_not_claim_twice_and_sends_the_spawn_again(cloud, image, tiny):
    """The conductor may have died after the claim, before it sent the spawn: the redelivered build
    re-sends it to the same host (the agent's spawn is idempotent), without a second claim."""
    make_host("h1")
    make_host("h2")
    instance = launch(cloud, flavor=tiny)
    first = services.schedule_instance(instance.operation_id, instance.pk)
    again = services.schedule_instance(instance.operation_id, instance.pk)
    assert again["host"] == first["host"] and again["instance"] == first["instance"]
    used = dict(ComputeNode.objects.values_list("host__name", "memory_mb_used"))
    assert sorted(used.values()) == [0, 512]
    assert Instance.objects.get(pk=instance.pk).task_state == "spawning"


def test_a_second_answer_to_a_settled_spawn_changes_nothing(cloud, image, tiny):
    make_host("h1")
    instance = launch(cloud, flavor=tiny)
    services.schedule_instance(instance.operation_id, instance.pk)
    ok = {"ok": True, "host": "h1", "power_state": "running"}
    assert services.spawn_finished(instance.operation_id, instance.pk, ok) == "active"
    # A redelivered spawn answers again, then a late failure: neither touches the active instance.
    assert services.spawn_finished(instance.operation_id, instance.pk, ok) == "duplicate"
    failure = {"ok": False, "host": "h1", "error": "boom"}
    assert services.spawn_finished(instance.operation_id, instance.pk, failure) == "duplicate"
    row = Instance.objects.get(pk=instance.pk)
    assert (row.vm_state, row.host.name, row.fault) == ("active", "h1", None)
    assert node("h1").memory_mb_used == 512


def test_an_answer_from_a_host_the_instance_left_is_stale(cloud, image, tiny):
    make_host("h1")
    instance = launch(cloud, flavor=tiny)
    services.schedule_instance(instance.operation_id, instance.pk)
    answer = {"ok": True, "host": "elsewhere", "power_state": "running"}
    assert services.spawn_finished(instance.operation_id, instance.pk, answer) == "stale"
    assert Instance.objects.get(pk=instance.pk).task_state == "spawning"


def test_spawns_on_a_host_that_went_down_are_released_for_another(cloud, image, tiny):
    make_host("h1")
    instance = launch(cloud, flavor=tiny)
    ledger.start(instance.operation_id)  # the conductor took the build
    services.schedule_instance(instance.operation_id, instance.pk)
    make_host("h2")
    Host.objects.filter(name="h1").update(last_heartbeat=timezone.now() - timedelta(hours=1))
    moved = services.release_from_down_hosts()
    assert moved == [(str(instance.operation_id), str(instance.pk))]
    row = Instance.objects.get(pk=instance.pk)
    assert (row.host, row.task_state, row.fault["code"]) == (None, "scheduling", "host_down")
    assert node("h1").memory_mb_used == 0
    work = services.schedule_instance(instance.operation_id, instance.pk)
    assert work["host"] == "h2"  # h1 is down, and already tried


def test_no_valid_host_after_the_host_went_down_names_that_cause(cloud, image, tiny):
    """Found on the real host (tests/faults): its agent died mid-spawn, no other host could take the
    image; the fault read "real-1: already tried for this instance", not why it was tried and left."""
    make_host("h1")
    instance = launch(cloud, flavor=tiny)
    op = instance.operation_id
    ledger.start(op)
    services.schedule_instance(op, instance.pk)
    make_host("small", memory_mb=256)
    Host.objects.filter(name="h1").update(last_heartbeat=timezone.now() - timedelta(hours=1))
    assert services.release_from_down_hosts() == [(str(op), str(instance.pk))]
    cause = "h1: the host went down before it spawned the instance"
    assert actions_of(instance).get(action="create").message == f"Spawning failed on {cause}; rescheduling"
    assert services.schedule_instance(op, instance.pk) is None
    fault = Instance.objects.get(pk=instance.pk).fault
    assert fault["code"] == "no_valid_host"
    assert fault["message"].startswith(f"Spawning failed on {cause}. No valid host was found.")
    assert fault["details"]["attempts"] == [{"host": "h1", "error": cause.removeprefix("h1: ")}]


def test_when_every_host_is_silent_scheduling_waits_instead_of_failing(cloud, image, tiny):
    make_host("h1")
    Host.objects.update(last_heartbeat=timezone.now() - timedelta(hours=1))
    instance = launch(cloud, flavor=tiny)
    assert services.schedule_instance(instance.operation_id, instance.pk) == services.DEFERRED
    assert services.release_from_down_hosts() == []
    row = Instance.objects.get(pk=instance.pk)
    assert (row.vm_state, row.task_state) == ("building", "scheduling")


def test_a_host_silent_only_lately_is_waited_for_one_silent_for_long_is_not(cloud, image, tiny):
    make_host("h1")
    make_host("h2")
    now = timezone.now()
    Host.objects.filter(name="h1").update(last_heartbeat=now - settings.ZENITH_HOST_DOWN_AFTER * 1.5)
    instance = launch(cloud, flavor=tiny)
    Host.objects.filter(name="h2").update(enabled=False)
    assert services.schedule_instance(instance.operation_id, instance.pk) == services.DEFERRED
    Host.objects.filter(name="h1").update(last_heartbeat=now - settings.ZENITH_HOST_DOWN_AFTER * 4)
    Host.objects.filter(name="h2").update(enabled=True)  # up: so h1 is the one host down
    ComputeNode.objects.filter(host__name="h2").update(memory_mb=0)  # and h2 has no room
    assert services.schedule_instance(instance.operation_id, instance.pk) is None
    assert Instance.objects.get(pk=instance.pk).vm_state == "error"
