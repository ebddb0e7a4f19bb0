"""Volumes' services and state machine: the declared transitions against a hand-written matrix,
placement and quotas, attach/detach rules, settling the agent's answers, timeouts, and instance
deletion. The conductor's side is driven by calling settle with answers shaped as the agent sends
them (workers.messages)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from identity import quotas
from identity.errors import Conflict, InvalidInput, PolicyDenied, QuotaExceeded
from identity.models import ResourceAction
from storage import services
from storage.models import GIB, Attachment, Snapshot, StoragePool, Volume
from workers import services as ledger
from workers.messages import AttachmentResult, VolumeResult
from workers.models import Host, Operation

from .conftest import CONNECTION, attached, available, created_answer, make_storage_host, settle, system

pytestmark = pytest.mark.django_db

# Cinder's volume state machine, written out by hand (not read from the code under test): for each
# transition, the statuses it may start from, the busy status while it runs, the status it ends in.
EXPECTED = {
    "create": (set(), "", "available"),
    "extend": ({"available"}, "extending", "available"),
    "extend_attached": ({"in-use"}, "extending", "in-use"),
    "attach": ({"available"}, "attaching", "in-use"),
    "detach": ({"in-use"}, "detaching", "available"),
    "upload": ({"available"}, "uploading", "available"),
    "delete": ({"available", "error", "error_deleting", "error_extending"}, "deleting", "deleted"),
}
STATUSES = ["creating", "available", "in-use", "error", "error_deleting", "error_extending"]


def in_state(volume, status, busy=""):
    Volume.objects.filter(pk=volume.pk).update(status=status, busy=busy)
    return Volume.objects.get(pk=volume.pk)


def test_the_declared_transitions_are_the_expected_ones():
    assert list(services.VOLUME.transitions) == list(EXPECTED)
    assert list(services.SNAPSHOT.transitions) == ["create", "delete"]


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("name", [n for n in EXPECTED if n != "create"])
def test_every_transition_in_every_status(cloud, pool, status, name):
    volume = in_state(available(cloud), status)
    allowed_from, busy, target = EXPECTED[name]
    ctx = cloud.ctx(cloud.member)
    if status in allowed_from:
        done = services.VOLUME.begin(ctx, volume, name)
        assert done.busy == busy and done.display_status == busy
        op = Operation.objects.get(pk=Volume.objects.get(pk=volume.pk).operation_id)
        assert op.kind == f"volume.{name}" and op.task_name == "workers.tasks.run_transition"
        if name == "delete":
            services.VOLUME.settle_delete(str(op.pk), str(volume.pk), {"ok": True})
        else:
            services.VOLUME.settle(str(op.pk), str(volume.pk), name, {"ok": True})
        assert Volume.objects.get(pk=volume.pk).status == target
    else:
        with pytest.raises(Conflict, match=f"while it is {status}"):
            services.VOLUME.begin(ctx, volume, name)
        assert Volume.objects.get(pk=volume.pk).busy == ""


@pytest.mark.parametrize("name", [n for n in EXPECTED if n != "create"])
def test_a_busy_volume_refuses_everything(cloud, pool, name):
    volume = in_state(available(cloud), "available", busy="attaching")
    with pytest.raises(Conflict, match="busy"):
        services.VOLUME.begin(cloud.ctx(cloud.member), volume, name)


def test_create_places_on_a_pool_and_claims_it(cloud, pool):
    volume, created = services.create_volume(cloud.ctx(cloud.member), name="data", size=5)
    assert created and volume.status == "creating" and volume.pool_id == pool.pk
    assert StoragePool.objects.get(pk=pool.pk).allocated_gb == 5
    op = Operation.objects.get(pk=volume.operation_id)
    assert (op.kind, op.payload["transition"]) == ("volume.create", "create")
    work = services.VOLUME.host_work(str(op.pk), str(volume.pk), services.VOLUME.transitions["create"], {})
    assert (work.host, work.role, work.task) == ("store-1", "storage", "workers.agent.storage.create_volume")
    request = work.kwargs["request"]
    assert request["backend"] == "local" and request["name"] == f"volume-{volume.pk}"
    assert request["size_gb"] == 5 and request["source"]["kind"] == "blank"
    done = settle(volume, "create", created_answer(volume))
    assert done.status == "available" and done.connection == CONNECTION.as_dict()
    assert Operation.objects.get(pk=op.pk).state == "succeeded"
    assert ResourceAction.objects.get(resource_id=volume.pk, action="create").result == ResourceAction.SUCCESS


def test_create_picks_the_pool_with_most_room_and_refuses_when_none_has_it(cloud, vtype):
    make_storage_host("small", capacity_gb=10)
    big = make_storage_host("big", capacity_gb=50)
    ctx = cloud.ctx(cloud.member)
    volume, _ = services.create_volume(ctx, name="a", size=8)
    assert volume.pool_id == big.pk
    with pytest.raises(Conflict, match="has 60 GiB free"):
        services.create_volume(ctx, name="b", size=60)
    assert not Volume.objects.filter(name="b").exists()


def test_create_without_any_storage_host_says_so(cloud, vtype):
    with pytest.raises(Conflict, match="no storage host reports backend 'local'"):
        services.create_volume(cloud.ctx(cloud.member), name="a", size=1)


def test_a_down_storage_host_gets_no_volume(cloud, pool):
    from workers.models import Host

    Host.objects.filter(pk=pool.host_id).update(last_heartbeat=timezone.now() - timezone.timedelta(hours=1))
    with pytest.raises(Conflict, match="on an up, enabled host"):
        services.create_volume(cloud.ctx(cloud.member), name="a", size=1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": 0}, "size must be a whole number"),
        ({"size": "5"}, "size must be a whole number"),
        ({"size": True}, "size must be a whole number"),
        ({"size": 1, "name": ""}, "Volume name must be"),
        ({"size": 1, "volume_type": "nope"}, "No volume type 'nope'"),
        ({"size": 1, "snapshot": "x", "source_volume": "y"}, "at most one of"),
    ],
)
def test_bad_create_input_is_refused(cloud, pool, kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        services.create_volume(cloud.ctx(cloud.member), **{"name": "v", **kwargs})


def test_quotas_count_volumes_and_gigabytes(cloud, pool):
    quotas.set_limits(cloud.project, {"volumes": 2, "gigabytes": 10})
    ctx = cloud.ctx(cloud.member)
    services.create_volume(ctx, name="a", size=4)
    with pytest.raises(QuotaExceeded, match="gigabytes"):
        services.create_volume(ctx, name="b", size=7)
    services.create_volume(ctx, name="b", size=6)
    with pytest.raises(QuotaExceeded, match="volumes"):
        services.create_volume(ctx, name="c", size=1)
    assert quotas.usage(cloud.project)["gigabytes"] == 10
    assert StoragePool.objects.get(pk=pool.pk).allocated_gb == 10


def test_a_reader_cannot_create(cloud, pool):
    with pytest.raises(PolicyDenied):
        services.create_volume(cloud.ctx(cloud.reader), name="a", size=1)


def test_idempotent_create(cloud, pool):
    ctx = cloud.ctx(cloud.member)
    first, created = services.create_volume(ctx, name="a", size=1, idempotency_key="k1")
    again, created_again = services.create_volume(ctx, name="a", size=1, idempotency_key="k1")
    assert created and not created_again and again.pk == first.pk
    with pytest.raises(Conflict, match="different request"):
        services.create_volume(ctx, name="b", size=1, idempotency_key="k1")


def test_a_failed_create_is_an_error_with_the_hosts_reason(cloud, pool):
    volume, _ = services.create_volume(cloud.ctx(cloud.member), name="a", size=1)
    done = settle(volume, "create", VolumeResult(ok=False, error="pool is full").as_dict())
    assert done.status == "error" and done.fault["message"] == "pool is full"
    assert Operation.objects.get(pk=volume.operation_id).state == "failed"


def test_an_answer_of_another_shape_is_not_read_as_success(cloud, pool):
    volume, _ = services.create_volume(cloud.ctx(cloud.member), name="a", size=1)
    done = settle(volume, "create", {"ok": True, "path": "/x"})  # not a VolumeResult
    assert done.status == "available" and done.connection is None  # nothing made up


def test_delete_is_refused_while_attached_or_with_snapshots(cloud, pool):
    ctx = cloud.ctx(cloud.member)
    volume = available(cloud)
    snap = services.create_snapshot(ctx, volume=str(volume.pk), name="s1")
    with pytest.raises(Conflict, match="has 1 snapshot"):
        services.delete_volume(ctx, volume)
    services.SNAPSHOT.settle(str(snap.operation_id), str(snap.pk), "create", VolumeResult(ok=True).as_dict())
    snap.refresh_from_db()
    assert snap.status == "available"
    services.delete_snapshot(ctx, snap)
    snap.refresh_from_db()
    services.SNAPSHOT.settle_delete(str(snap.operation_id), str(snap.pk), VolumeResult(ok=True).as_dict())
    assert Snapshot.objects.get(pk=snap.pk).status == "deleted"
    volume = attached(cloud, Volume.objects.get(pk=volume.pk), uuid.uuid4())
    in_state(volume, "error")
    with pytest.raises(Conflict, match="attached to an instance: detach it first"):
        services.delete_volume(ctx, Volume.objects.get(pk=volume.pk))


def test_delete_releases_the_pool(cloud, pool):
    volume = available(cloud, size=3)
    services.delete_volume(cloud.ctx(cloud.member), volume)
    volume.refresh_from_db()
    services.VOLUME.settle(
        str(volume.operation_id), str(volume.pk), "delete", VolumeResult(ok=True).as_dict()
    )
    assert Volume.objects.get(pk=volume.pk).status == "deleted"
    assert StoragePool.objects.get(pk=pool.pk).allocated_gb == 0
    assert not Volume.objects.visible_to(cloud.ctx(cloud.member)).filter(pk=volume.pk).exists()


def test_a_failed_delete_is_error_deleting_and_may_be_retried(cloud, pool):
    volume = available(cloud)
    services.delete_volume(cloud.ctx(cloud.member), volume)
    done = settle(volume, "delete", VolumeResult(ok=False, error="busy device").as_dict())
    assert done.status == "error_deleting" and done.busy == "" and done.fault["message"] == "busy device"
    services.delete_volume(cloud.ctx(cloud.member), done)


def test_attach_chooses_a_device_and_settles_in_use(cloud, pool):
    volume = available(cloud)
    instance = uuid.uuid4()
    attachment = services.attach_volume(
        cloud.ctx(cloud.member), volume, instance_id=instance, host_name="store-1"
    )
    assert attachment.device == "/dev/vdb"
    volume.refresh_from_db()
    assert volume.display_status == "attaching"
    work = services.VOLUME.host_work(
        str(volume.operation_id), str(volume.pk), services.VOLUME.transitions["attach"], {}
    )
    assert (work.host, work.role, work.task) == ("store-1", "compute", "workers.agent.tasks.attach_volume")
    attachment = work.kwargs["attachment"]
    assert attachment["domain"] == f"zenith-{instance}" and attachment["target_dev"] == "vdb"
    assert attachment["connection"] == CONNECTION.as_dict()
    done = settle(volume, "attach", AttachmentResult(ok=True, target_dev="vdb").as_dict())
    assert done.status == "in-use"
    assert Attachment.objects.live().get(volume=volume).attached_at is not None
    second = available(cloud, name="second")
    other = services.attach_volume(cloud.ctx(cloud.member), second, instance_id=instance, host_name="store-1")
    assert other.device == "/dev/vdc"


def test_a_volume_attaches_to_one_instance_only(cloud, pool):
    volume = available(cloud)
    services.attach_volume(cloud.ctx(cloud.member), volume, instance_id=uuid.uuid4(), host_name="store-1")
    with pytest.raises(Conflict, match="already attached"):
        services.attach_volume(cloud.ctx(cloud.member), volume, instance_id=uuid.uuid4(), host_name="store-1")


def test_attach_from_a_host_that_cannot_reach_the_pool_is_refused(cloud, pool):
    make_storage_host("elsewhere", reaches=["elsewhere"])
    volume = available(cloud)  # on store-1 (placed before "elsewhere"'s pool: equal room, name order)
    other = "elsewhere" if volume.pool.host.name == "store-1" else "store-1"
    with pytest.raises(Conflict, match=f"Host {other} cannot reach volume data"):
        services.attach_volume(cloud.ctx(cloud.member), volume, instance_id=uuid.uuid4(), host_name=other)
    assert not Attachment.objects.exists()


def test_shared_storage_reaches_every_host(cloud, vtype):
    make_storage_host("ceph", reaches=["*"])
    from workers.models import Host

    Host.objects.create(name="compute-9", last_heartbeat=timezone.now())
    volume = available(cloud)
    services.attach_volume(cloud.ctx(cloud.member), volume, instance_id=uuid.uuid4(), host_name="compute-9")


def test_a_failed_attach_leaves_the_volume_available(cloud, pool):
    volume = available(cloud)
    services.attach_volume(cloud.ctx(cloud.member), volume, instance_id=uuid.uuid4(), host_name="store-1")
    done = settle(volume, "attach", AttachmentResult(ok=False, error="no such domain").as_dict())
    assert done.status == "available" and done.fault["message"] == "no such domain"
    assert not Attachment.objects.live().exists()


def test_detach(cloud, pool):
    instance = uuid.uuid4()
    volume = attached(cloud, available(cloud), instance)
    with pytest.raises(Exception, match="not attached to this instance"):
        services.detach_volume(cloud.ctx(cloud.member), volume, instance_id=uuid.uuid4())
    services.detach_volume(cloud.ctx(cloud.member), volume, instance_id=instance)
    done = settle(volume, "detach", AttachmentResult(ok=True).as_dict())
    assert done.status == "available" and not Attachment.objects.live().exists()


def test_a_failed_detach_stays_in_use(cloud, pool):
    instance = uuid.uuid4()
    volume = attached(cloud, available(cloud), instance)
    services.detach_volume(cloud.ctx(cloud.member), volume, instance_id=instance)
    done = settle(volume, "detach", AttachmentResult(ok=False, error="guest refused").as_dict())
    assert done.status == "in-use" and Attachment.objects.live().count() == 1


def test_extend_available(cloud, pool):
    volume = available(cloud, size=2)
    services.extend_volume(cloud.ctx(cloud.member), volume, 5)
    assert StoragePool.objects.get(pk=pool.pk).allocated_gb == 5
    volume.refresh_from_db()
    work = services.VOLUME.host_work(
        str(volume.operation_id), str(volume.pk), services.VOLUME.transitions["extend"], {"new_size": 5}
    )
    assert work.task == "workers.agent.storage.extend_volume" and work.kwargs["request"]["size_gb"] == 5
    done = settle(volume, "extend", VolumeResult(ok=True, size_bytes=5 * GIB).as_dict())
    assert (done.status, done.size) == ("available", 5)
    with pytest.raises(InvalidInput, match="larger than"):
        services.extend_volume(cloud.ctx(cloud.member), done, 5)


def test_a_failed_extend_is_error_extending_and_gives_the_room_back(cloud, pool):
    volume = available(cloud, size=2)
    services.extend_volume(cloud.ctx(cloud.member), volume, 5)
    done = settle(volume, "extend", VolumeResult(ok=False, error="no space").as_dict())
    assert (done.status, done.size) == ("error_extending", 2)
    assert StoragePool.objects.get(pk=pool.pk).allocated_gb == 2


def test_extend_in_use_goes_on_to_the_compute_host(cloud, pool):
    instance = uuid.uuid4()
    volume = attached(cloud, available(cloud, size=2), instance)
    services.extend_volume(cloud.ctx(cloud.member), volume, 4)
    volume.refresh_from_db()
    assert Operation.objects.get(pk=volume.operation_id).kind == "volume.extend_attached"
    done = settle(volume, "extend_attached", VolumeResult(ok=True, size_bytes=4 * GIB).as_dict())
    assert (done.busy, done.size) == ("extending", 4)  # the guest's resize is under way
    services.VOLUME.settle(str(done.operation_id), str(done.pk), services.RESIZE_STEP, {"ok": True})
    done.refresh_from_db()
    assert (done.status, done.busy, done.size) == ("in-use", "", 4)


def test_extend_in_use_is_not_recorded_when_the_guests_host_cannot_resize(cloud, pool):
    """The storage host answers ``in_use`` (QEMU holds the file: only the compute host's block resize
    grows it); with that host down the volume keeps its size and says why, never "extended"."""
    volume = attached(cloud, available(cloud, size=2), uuid.uuid4())
    services.extend_volume(cloud.ctx(cloud.member), volume, 4)
    volume.refresh_from_db()
    attachment = Attachment.objects.live().get(volume_id=volume.pk)
    Host.objects.filter(pk=attachment.host_id).update(last_heartbeat=timezone.now() - timedelta(days=1))
    done = settle(volume, "extend_attached", VolumeResult(ok=True, size_bytes=2 * GIB, in_use=True).as_dict())
    assert (done.status, done.busy, done.size) == ("error_extending", "", 2)
    assert "not extended" in done.fault["message"]
    assert Operation.objects.get(pk=done.operation_id).state == Operation.FAILED


def test_timeouts_never_leave_a_volume_transitional(cloud, pool):
    creating, _ = services.create_volume(cloud.ctx(cloud.member), name="c", size=1)
    attaching = available(cloud, name="a")
    services.attach_volume(cloud.ctx(cloud.member), attaching, instance_id=uuid.uuid4(), host_name="store-1")
    for volume in (creating, attaching):
        volume.refresh_from_db()
        Operation.objects.filter(pk=volume.operation_id).update(deadline=timezone.now())
    assert ledger.sweep().failed == 2
    creating.refresh_from_db()
    attaching.refresh_from_db()
    assert (creating.status, creating.busy) == ("error", "")
    assert creating.fault["code"] == "timeout"
    assert (attaching.status, attaching.busy) == ("available", "")
    assert not Attachment.objects.live().exists()


def test_instance_deleted_detaches_and_deletes_on_termination(cloud, pool):
    instance = uuid.uuid4()
    keep = attached(cloud, available(cloud, name="keep"), instance)
    doomed = available(cloud, name="doomed")
    services.attach_volume(
        cloud.ctx(cloud.member), doomed, instance_id=instance, host_name="store-1", delete_on_termination=True
    )
    doomed = settle(doomed, "attach", AttachmentResult(ok=True).as_dict())
    deleted = services.instance_deleted(system(), instance)
    assert [v.pk for v in deleted] == [doomed.pk]
    assert Volume.objects.get(pk=keep.pk).status == "available"
    assert Volume.objects.get(pk=doomed.pk).busy == "deleting"
    assert not Attachment.objects.live().exists()


def test_force_detach_and_reset_state_are_for_admins(cloud, pool):
    volume = attached(cloud, available(cloud), uuid.uuid4())
    in_state(volume, "in-use", busy="detaching")
    with pytest.raises(PolicyDenied):
        services.force_detach(cloud.ctx(cloud.member), volume)
    done = services.force_detach(system(), volume)
    assert (done.status, done.busy) == ("available", "") and not Attachment.objects.live().exists()
    with pytest.raises(PolicyDenied):
        services.reset_state(cloud.ctx(cloud.member), done, "error")
    with pytest.raises(Conflict, match="no attachment"):
        services.reset_state(system(), done, "in-use")
    assert services.reset_state(system(), done, "error").status == "error"
    with pytest.raises(InvalidInput):
        services.reset_state(system(), done, "creating")


def test_heartbeat_storage_section_makes_and_refreshes_pools(db):
    info = {
        "roles": ["storage"],
        "storage": {
            "backends": [
                {
                    "name": "local",
                    "type": "dir",
                    "pool": "zenith",
                    "capacity_bytes": 10 * GIB,
                    "available_bytes": 9 * GIB,
                    "reaches": ["s1"],
                    "simulated": True,
                }
            ]
        },
    }
    ledger.record_heartbeat("s1", info)
    info["storage"]["backends"][0]["available_bytes"] = 5 * GIB
    ledger.record_heartbeat("s1", info)
    pool = StoragePool.objects.get(host__name="s1")
    assert (pool.capacity_gb, pool.available_bytes, pool.simulated) == (10, 5 * GIB, True)
    with pytest.raises(InvalidInput, match="StorageReport"):
        ledger.record_heartbeat("s1", {"roles": ["storage"], "storage": {"pools": []}})
