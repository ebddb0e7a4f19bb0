"""Hosts: registration and capacity through heartbeats, up/down by heartbeat age, disable/enable."""

from datetime import timedelta

import pytest
from django.utils import timezone

from compute import services
from compute.models import ComputeNode
from identity.errors import Conflict, InvalidInput, PolicyDenied
from workers import services as ledger
from workers import tasks as worker_tasks
from workers.models import Host

from .conftest import TEST_HOST_INFO, make_host, node


def beat(name, info, now=None) -> bool:
    """A compute host's heartbeat as its agent sends it: roles, URI, and ``info`` as its compute section."""
    message = (
        {"roles": ["compute"], "uri": info.get("uri"), "compute": info} if isinstance(info, dict) else info
    )
    return ledger.record_heartbeat(name, message, now=now)


def heartbeat(name: str, info: dict, now=None) -> Host:
    beat(name, info, now=now)
    return Host.objects.get(name=name)


def test_first_heartbeat_registers_the_host_with_its_capacity(db, settings):
    settings.ZENITH_CPU_ALLOCATION_RATIO = 8.0
    assert beat("sim-1", TEST_HOST_INFO) is True
    host, compute = Host.objects.get(name="sim-1"), node("sim-1")
    assert (host.name, host.roles, host.uri) == ("sim-1", ["compute"], "test:///default")
    assert (compute.vcpus, compute.memory_mb, compute.disk_gb) == (16, 8192, 0)
    assert (compute.hypervisor_type, compute.hypervisor_version) == ("TEST", 2)
    assert (compute.vcpus_used, compute.memory_mb_used, compute.disk_gb_used) == (0, 0, 0)
    ratios = (compute.cpu_allocation_ratio, compute.ram_allocation_ratio, compute.disk_allocation_ratio)
    assert ratios == (8.0, 1.0, 1.0)
    assert host.enabled and host.availability_zone == "nova"
    assert host.state == "up"


def test_default_allocation_ratios(db):
    heartbeat("sim-1", TEST_HOST_INFO)
    compute = node("sim-1")
    assert (compute.cpu_allocation_ratio, compute.ram_allocation_ratio) == (4.0, 1.0)
    assert compute.vcpus_limit == 64


def test_heartbeat_refreshes_capacity_and_keeps_admin_and_scheduler_fields(cloud):
    host = heartbeat("sim-1", TEST_HOST_INFO)
    services.disable_host(cloud.ctx(cloud.admin), host, "maintenance")
    ComputeNode.objects.filter(pk=host.pk).update(
        vcpus_used=3, memory_mb_used=1024, disk_gb_used=5, cpu_allocation_ratio=2.0
    )
    Host.objects.filter(pk=host.pk).update(availability_zone="az1")
    later = timezone.now() + timedelta(seconds=30)
    again = heartbeat("sim-1", {**TEST_HOST_INFO, "vcpus": 32, "memory_mb": 4096}, now=later)
    compute = node("sim-1")
    assert again.pk == host.pk and Host.objects.count() == 1 and ComputeNode.objects.count() == 1
    assert (compute.vcpus, compute.memory_mb, again.last_heartbeat) == (32, 4096, later)
    assert (again.enabled, again.disabled_reason) == (False, "maintenance")
    assert (compute.vcpus_used, compute.memory_mb_used, compute.disk_gb_used) == (3, 1024, 5)
    assert (compute.cpu_allocation_ratio, again.availability_zone) == (2.0, "az1")


@pytest.mark.parametrize("name", ["", "a b", "x" * 64, "host/1", None])
def test_heartbeat_refuses_bad_host_names(db, name):
    with pytest.raises(InvalidInput):
        beat(name, TEST_HOST_INFO)
    assert not Host.objects.exists()


@pytest.mark.parametrize(
    "info", [None, [], {**TEST_HOST_INFO, "vcpus": -1}, {**TEST_HOST_INFO, "memory_mb": "lots"}]
)
def test_heartbeat_refuses_bad_info(db, info):
    with pytest.raises(InvalidInput):
        beat("sim-1", info)


def test_a_known_host_s_heartbeat_is_two_updates(db, django_assert_num_queries):
    """The host's liveness and its compute section: nothing read back."""
    heartbeat("sim-1", TEST_HOST_INFO)
    with django_assert_num_queries(2):
        assert beat("sim-1", {**TEST_HOST_INFO, "vcpus": 8}) is False
    assert node("sim-1").vcpus == 8


def test_conductor_task_records_the_heartbeat(db):
    worker_tasks.host_heartbeat.run(host="sim-9", info={"roles": ["compute"], "compute": TEST_HOST_INFO})
    assert node("sim-9").vcpus == 16


def test_up_and_down_by_heartbeat_age(db, settings):
    settings.ZENITH_HOST_DOWN_AFTER = timedelta(seconds=60)
    now = timezone.now()
    fresh = make_host("fresh", last_heartbeat=now - timedelta(seconds=59))
    stale = make_host("stale", last_heartbeat=now - timedelta(seconds=61))
    never = make_host("never", last_heartbeat=None)
    assert list(Host.objects.up(now)) == [fresh]
    assert set(Host.objects.down(now)) == {stale, never}
    assert (fresh.is_up(now), stale.is_up(now), never.is_up(now)) == (True, False, False)
    assert (fresh.state, stale.state, never.state) == ("up", "down", "down")
    # Later, the fresh one is down too; a shorter interval makes it down at once.
    assert not Host.objects.up(now + timedelta(seconds=2)).exists()
    settings.ZENITH_HOST_DOWN_AFTER = timedelta(seconds=10)
    assert not Host.objects.up(now).exists() and fresh.state == "down"


def test_visible_to_admins_only(cloud):
    make_host("sim-1")
    assert Host.objects.visible_to(cloud.ctx(cloud.admin)).count() == 1
    assert Host.objects.visible_to(cloud.ctx(cloud.member)).count() == 0


def test_disable_and_enable(cloud):
    admin = cloud.ctx(cloud.admin)
    host = make_host("sim-1")
    host = services.disable_host(admin, host, "  bad DIMM  ")
    assert (host.enabled, host.disabled_reason) == (False, "bad DIMM")
    with pytest.raises(Conflict):
        services.disable_host(admin, host, "again")
    host = services.enable_host(admin, host)
    assert (host.enabled, host.disabled_reason) == (True, "")
    with pytest.raises(Conflict):
        services.enable_host(admin, host)


@pytest.mark.parametrize("reason", ["", "   ", None, "x" * 256])
def test_disable_needs_a_reason(cloud, reason):
    host = make_host("sim-1")
    with pytest.raises(InvalidInput):
        services.disable_host(cloud.ctx(cloud.admin), host, reason)
    assert Host.objects.get(pk=host.pk).enabled


def test_only_admins_disable_or_enable(cloud):
    host = make_host("sim-1", enabled=False, disabled_reason="x")
    for user in (cloud.member, cloud.reader):
        with pytest.raises(PolicyDenied):
            services.enable_host(cloud.ctx(user), host)
        with pytest.raises(PolicyDenied):
            services.disable_host(cloud.ctx(user), host, "no")


def test_a_bad_compute_section_registers_nothing(db):
    with pytest.raises(InvalidInput, match="compute section"):
        ledger.record_heartbeat("sim-1", {"roles": ["compute"], "uri": "test:///default"})
    with pytest.raises(InvalidInput):
        beat("sim-1", {**TEST_HOST_INFO, "vcpus": -1})
    with pytest.raises(InvalidInput, match="Unknown host roles"):
        ledger.record_heartbeat("sim-1", {"roles": ["gpu"]})
    assert not Host.objects.exists() and not ComputeNode.objects.exists()


def test_a_host_without_the_compute_role_has_no_compute_node(db):
    assert (
        ledger.record_heartbeat(
            "store-1", {"roles": ["storage"], "uri": "qemu:///system", "storage": {"backends": []}}
        )
        is True
    )
    host = Host.objects.get(name="store-1")
    assert host.roles == ["storage"] and not ComputeNode.objects.exists()
    assert list(Host.objects.with_role("storage")) == [host] and not Host.objects.with_role("compute")
    # It gains the compute role: its next heartbeat makes its compute node.
    beat("store-1", TEST_HOST_INFO)
    assert node("store-1").vcpus == 16 and Host.objects.get(name="store-1").roles == ["compute"]
