"""A multi-host agent's batch of heartbeats (``workers.tasks.host_heartbeats``): every host registered
and refreshed as by its own heartbeat, in a number of statements that does not grow with the batch;
each entry signed by its own host's key (every key read in one query)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compute.models import ComputeNode
from identity.errors import InvalidInput
from workers import hostauth, hostkeys, tasknames
from workers import services as ledger
from workers import tasks as worker_tasks
from workers.models import Host

from .conftest import TEST_HOST_INFO

pytestmark = pytest.mark.django_db

URI = "test:///sim.xml"


def batch(names, **capacity) -> list[dict]:
    info = {**TEST_HOST_INFO, "uri": URI, **capacity}
    return [{"host": name, "info": {"uri": URI, "roles": ["compute"], "compute": info}} for name in names]


def signed(entries) -> list[dict]:
    """The entries as a multi-host agent sends them: each with its own enrolled host's ``auth``."""
    keys = {e.host: hostauth.decode_key(e.key) for e in ledger.enroll_hosts([x["host"] for x in entries])}
    hostkeys.forget()
    return [
        {**e, "auth": hostauth.sign(keys[e["host"]], e["host"], tasknames.HOST_HEARTBEAT, (), e)}
        for e in entries
    ]


def statements(fn, *args) -> tuple[object, int]:
    result, sql = captured(fn, *args)
    return result, len(sql)


def captured(fn, *args) -> tuple[object, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        result = fn(*args)
    return result, [q["sql"] for q in queries.captured_queries]


@pytest.mark.parametrize("size", [5, 200])
def test_a_batch_registers_then_refreshes_every_host_in_a_fixed_number_of_statements(size):
    names = [f"sim-{n}" for n in range(1, size + 1)]
    entries = signed(batch(names))
    report, first = captured(worker_tasks.host_heartbeats.run, entries)
    assert report == {"recorded": size, "registered": size, "rejected": 0, "refused": 0}
    hosts = Host.objects.filter(name__in=names)
    assert hosts.count() == size and all(h.is_up() and h.roles == ["compute"] and h.uri == URI for h in hosts)
    assert ComputeNode.objects.filter(host__name__in=names, vcpus=16, memory_mb=8192).count() == size
    # Registration: SELECT every host's key (one query), SELECT known hosts, INSERT hosts; SELECT their
    # ids, INSERT compute nodes (SQLite splits a bulk INSERT into statements of 60-100 rows: its limit
    # of bound variables).
    inserts = [sql for sql in first if sql.startswith("INSERT")]
    assert len(first) - len(inserts) == 3, first
    assert sum(1 for sql in first if "workers_hostcredential" in sql) == 1, first
    assert len(inserts) <= 2 * (1 + size // 60), len(inserts)

    before = Host.objects.get(name="sim-1").last_heartbeat
    later = timezone.now() + timedelta(seconds=5)
    report, again = statements(ledger.record_heartbeats, batch(names, vcpus=32), later)
    assert report.as_dict() == {"recorded": size, "registered": 0, "rejected": 0}
    # Steady state: SELECT known hosts, one UPDATE of the hosts, one UPDATE of their compute nodes.
    assert again == 3, again
    assert Host.objects.filter(name__in=names, last_heartbeat=later).count() == size
    assert Host.objects.get(name="sim-1").last_heartbeat > before
    assert ComputeNode.objects.filter(host__name__in=names, vcpus=32).count() == size

    hostkeys.forget()  # the keys not cached: still one query for all of them
    report, verified = statements(worker_tasks.host_heartbeats.run, signed(batch(names, vcpus=16)))
    assert report == {"recorded": size, "registered": 0, "rejected": 0, "refused": 0}
    assert verified == 4, verified


def test_an_entry_not_signed_by_its_own_host_is_refused_and_the_others_recorded(caplog):
    a, b, c, d = signed(batch(["sim-a", "sim-b", "sim-c", "sim-d"]))
    b["auth"] = a["auth"] | {"host": "sim-b"}  # host A's signature passed off as B's
    c["auth"] = hostauth.sign(hostauth.decode_key(ledger.enroll_hosts(["sim-a"])[0].key), "sim-c", "x", (), c)
    del d["auth"]
    report = worker_tasks.host_heartbeats.run([a, b, c, d])
    assert report == {"recorded": 1, "registered": 1, "rejected": 0, "refused": 3}
    assert list(Host.objects.values_list("name", flat=True)) == ["sim-a"]
    assert "refused workers.tasks.host_heartbeats (host=sim-b)" in caplog.text
    assert "(host=sim-d): the message is not signed by a host" in caplog.text
    # Nor is an entry replayed: the same signed entry counts once.
    assert worker_tasks.host_heartbeats.run([a])["refused"] == 1


def test_a_batch_keeps_what_admins_and_the_scheduler_set():
    worker_tasks.host_heartbeats.run(signed(batch(["sim-1", "sim-2"])))
    Host.objects.filter(name="sim-1").update(enabled=False, disabled_reason="maintenance")
    ComputeNode.objects.filter(host__name="sim-1").update(vcpus_used=3, cpu_allocation_ratio=2.0)
    worker_tasks.host_heartbeats.run(signed(batch(["sim-1", "sim-2"], memory_mb=4096)))
    host = Host.objects.select_related("compute").get(name="sim-1")
    assert (host.enabled, host.disabled_reason) == (False, "maintenance")
    assert (host.compute.vcpus_used, host.compute.cpu_allocation_ratio, host.compute.memory_mb) == (
        3,
        2.0,
        4096,
    )


def test_hosts_with_different_capacities_and_a_known_host_gaining_the_compute_role():
    ledger.record_heartbeat("storage-1", {"uri": URI, "roles": ["network"]})
    entries = batch(["sim-1"]) + batch(["sim-2"], vcpus=8) + batch(["storage-1"])
    report = ledger.record_heartbeats(entries)
    assert report.as_dict() == {"recorded": 3, "registered": 2, "rejected": 0}
    assert dict(ComputeNode.objects.values_list("host__name", "vcpus")) == {
        "sim-1": 16,
        "sim-2": 8,
        "storage-1": 16,
    }
    assert Host.objects.get(name="storage-1").roles == ["compute"]


def test_invalid_entries_are_left_out_and_the_others_recorded():
    entries = [
        *batch(["sim-1"]),
        {"host": "bad name!", "info": {"roles": ["compute"], "compute": TEST_HOST_INFO}},
        {"host": "sim-2", "info": {"roles": ["compute"]}},  # no compute section
        {"host": "sim-3", "info": {"roles": ["compute"], "compute": {**TEST_HOST_INFO, "vcpus": -1}}},
        "not an object",
    ]
    report = ledger.record_heartbeats(entries)
    assert report.as_dict() == {"recorded": 1, "registered": 1, "rejected": 4}
    assert list(Host.objects.values_list("name", flat=True)) == ["sim-1"]
    with pytest.raises(InvalidInput):
        ledger.record_heartbeats({"host": "sim-1"})
