"""Hosts end to end: a real agent registers its host with the capacity libvirt reports, heartbeats
through the broker to a real conductor, and its host goes down once the heartbeats stop.

Runs on the embedded defaults (SQLite file + kombu filesystem broker) and on PostgreSQL + Redis.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from workers.models import Host

from .conftest import PLANE_KEY, ROOT, Plane, clear_broker, shut_down
from .test_async_plane import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HOST = "hv-test"
TEST_HOST_URI = f"test://{(ROOT / 'tests' / 'fixtures' / 'testhost.xml').resolve()}"
HEARTBEAT_INTERVAL = 1  # seconds, in the agent
DOWN_AFTER = 3  # seconds without a heartbeat, in the test and the workers


@pytest.fixture(scope="module")
def hosts_plane(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """A conductor and one agent on the 16-CPU, 64 GiB test host, heartbeating every second."""
    clear_broker()
    workers = Plane(tmp_path_factory.mktemp("worker-logs"))
    workers.env.update(
        ZENITH_HEARTBEAT_INTERVAL=str(HEARTBEAT_INTERVAL), ZENITH_HOST_DOWN_AFTER=str(DOWN_AFTER)
    )
    request.node.stash[PLANE_KEY] = workers
    try:
        launched = [workers.launch_conductor(), workers.launch_agent(HOST, libvirt_uri=TEST_HOST_URI)]
        workers.start(*launched)
        yield workers
    finally:
        shut_down(workers, django_db_blocker)


@pytest.fixture
def short_down_after(settings):
    settings.ZENITH_HOST_DOWN_AFTER = timedelta(seconds=DOWN_AFTER)


def registered_host():
    return Host.objects.filter(name=HOST, compute__vcpus=16, compute__memory_mb=65536).first()


def test_agent_registers_heartbeats_and_goes_down_when_stopped(hosts_plane, short_down_after):
    assert TEST_HOST_URI.startswith("test:///")
    host = wait_for(registered_host, lambda: f"host {HOST} to register:\n{hosts_plane.logs()}")
    node = host.compute
    assert host.uri == TEST_HOST_URI and node.hypervisor_type == "TEST"
    assert host.roles == ["compute", "storage"]  # both roles by default
    assert node.disk_gb == 100  # libvirt's test driver reports 100 GiB for the pool (see testhost.xml)
    assert (node.cpu_allocation_ratio, node.ram_allocation_ratio) == (4.0, 1.0)
    assert host.state == "up" and host.enabled

    # Heartbeats keep coming: last_heartbeat moves on.
    first = host.last_heartbeat
    wait_for(
        lambda: Host.objects.get(name=HOST).last_heartbeat > first,
        "a second heartbeat",
        timeout=5 * HEARTBEAT_INTERVAL + 5,
    )
    assert Host.objects.up().filter(name=HOST).exists()

    hosts_plane.stop(f"agent-{HOST}")
    stopped = timezone.now()
    started_waiting = time.monotonic()
    wait_for(
        lambda: Host.objects.get(name=HOST).state == "down",
        lambda: f"host {HOST} to go down (last heartbeat {Host.objects.get(name=HOST).last_heartbeat})",
        timeout=DOWN_AFTER + 5,
    )
    host = Host.objects.get(name=HOST)
    # Down because of the stopped heartbeats: none arrived after the agent stopped.
    assert host.last_heartbeat <= stopped
    assert time.monotonic() - started_waiting <= DOWN_AFTER + 1
    assert not Host.objects.up().filter(name=HOST).exists()
    assert Host.objects.down().filter(name=HOST).exists()
