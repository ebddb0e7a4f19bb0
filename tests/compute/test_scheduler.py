"""The scheduler: SQL filters and weighers, the atomic claim under concurrency, explain's reasons."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compute import scheduler

from .conftest import make_host, node

TINY = scheduler.Request(vcpus=1, memory_mb=512, disk_gb=1)


def names(hosts):
    return [h.name for h in hosts]


@pytest.mark.django_db
class TestFilters:
    def test_down_disabled_and_full_hosts_are_filtered_out(self):
        make_host("ok")
        make_host("down", last_heartbeat=timezone.now() - timedelta(hours=1))
        make_host("never", last_heartbeat=None)
        make_host("off", enabled=False, disabled_reason="maintenance")
        make_host("full", memory_mb=1024, memory_mb_used=1024)
        make_host("nocpu", vcpus=1, vcpus_used=4)  # 1 vCPU * ratio 4.0, all used
        make_host("nodisk", disk_gb=0)
        assert names(scheduler.candidates(TINY)) == ["ok"]

    def test_allocation_ratios_apply(self):
        make_host("small", vcpus=2, memory_mb=1024, cpu_allocation_ratio=4.0, ram_allocation_ratio=1.0)
        assert names(scheduler.candidates(scheduler.Request(vcpus=8, memory_mb=1024, disk_gb=1))) == ["small"]
        assert scheduler.candidates(scheduler.Request(vcpus=9, memory_mb=512, disk_gb=1)) == []
        assert scheduler.candidates(scheduler.Request(vcpus=1, memory_mb=1025, disk_gb=1)) == []

    def test_zone_image_hypervisor_and_exclusions(self):
        make_host("a", availability_zone="nova", hypervisor_type="TEST")
        make_host("b", availability_zone="real", hypervisor_type="QEMU")
        assert names(scheduler.candidates(scheduler.Request(1, 512, 1, availability_zone="real"))) == ["b"]
        assert names(scheduler.candidates(scheduler.Request(1, 512, 1, hypervisor_type="qemu"))) == ["b"]
        assert names(scheduler.candidates(scheduler.Request(1, 512, 1, exclude=("a",)))) == ["b"]

    def test_spread_prefers_most_free_ram_and_pack_the_least(self, settings):
        make_host("big", memory_mb=65536)
        make_host("mid", memory_mb=32768)
        make_host("small", memory_mb=8192)
        settings.ZENITH_SCHEDULER_WEIGHER = "spread"
        assert names(scheduler.candidates(TINY)) == ["big", "mid", "small"]
        settings.ZENITH_SCHEDULER_WEIGHER = "pack"
        assert names(scheduler.candidates(TINY)) == ["small", "mid", "big"]

    def test_spread_balances_successive_claims(self, settings):
        settings.ZENITH_SCHEDULER_WEIGHER = "spread"
        for name in ("h1", "h2", "h3"):
            make_host(name, memory_mb=4096)
        placed = [scheduler.select_and_claim(TINY).name for _ in range(6)]
        assert sorted(placed) == ["h1", "h1", "h2", "h2", "h3", "h3"]

    def test_pack_fills_one_host_first(self, settings):
        settings.ZENITH_SCHEDULER_WEIGHER = "pack"
        make_host("h1", memory_mb=2048)
        make_host("h2", memory_mb=4096)
        placed = [scheduler.select_and_claim(TINY).name for _ in range(6)]
        assert placed == ["h1"] * 4 + ["h2"] * 2


@pytest.mark.django_db
class TestClaim:
    def test_claim_adds_usage_and_release_gives_it_back(self):
        host = make_host("h", vcpus=2, memory_mb=1024, disk_gb=10)
        assert scheduler.claim(host.pk, scheduler.Request(2, 1024, 10))
        claimed = node("h")
        assert (claimed.vcpus_used, claimed.memory_mb_used, claimed.disk_gb_used) == (2, 1024, 10)
        assert not scheduler.claim(host.pk, scheduler.Request(1, 1, 0))  # no RAM left
        scheduler.release(host.pk, 2, 1024, 10)
        scheduler.release(host.pk, 2, 1024, 10)  # never below zero
        claimed = node("h")
        assert (claimed.vcpus_used, claimed.memory_mb_used, claimed.disk_gb_used) == (0, 0, 0)

    def test_claim_refuses_a_disabled_host(self):
        host = make_host("h", enabled=False)
        assert not scheduler.claim(host.pk, TINY)

    def test_no_valid_host_says_why_each_host_was_rejected(self):
        make_host("down", last_heartbeat=timezone.now() - timedelta(hours=1))
        make_host("off", enabled=False, disabled_reason="broken fan")
        make_host("tiny", memory_mb=256)
        with pytest.raises(scheduler.NoValidHost) as caught:
            scheduler.select_and_claim(TINY)
        text = caught.value.summary()
        assert "down: host is down (no heartbeat)" in text
        assert "off: host is disabled (broken fan)" in text
        assert "tiny: not enough RAM: 256 MB free, 512 MB needed" in text

    def test_a_big_cloud_gets_a_fault_that_counts_reasons(self):
        for n in range(30):
            make_host(f"h{n:02d}", memory_mb=256)
        make_host("off", enabled=False, disabled_reason="x")
        with pytest.raises(scheduler.NoValidHost) as caught:
            scheduler.select_and_claim(TINY)
        text = caught.value.summary()
        assert text.startswith(
            "No valid host was found among 31 hosts (30 not enough RAM, 1 host is disabled)"
        )
        assert text.count(" | ") == 19  # the first 20 hosts, one by one

    def test_no_hosts_at_all(self):
        with pytest.raises(scheduler.NoValidHost, match="no compute host is registered"):
            scheduler.select_and_claim(TINY)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "request_",
    [
        scheduler.Request(1, 512, 1),
        scheduler.Request(8, 16384, 160),
        scheduler.Request(4, 4096, 10, availability_zone="real"),
        scheduler.Request(2, 2048, 20, hypervisor_type="QEMU", exclude=("h3",)),
    ],
)
def test_explain_agrees_with_the_sql_filters(request_):
    now = timezone.now()
    make_host("h1", vcpus=4, memory_mb=8192, disk_gb=50, hypervisor_type="TEST")
    make_host("h2", vcpus=16, memory_mb=32768, disk_gb=500, availability_zone="real", hypervisor_type="QEMU")
    make_host("h3", vcpus=16, memory_mb=65536, disk_gb=500, hypervisor_type="QEMU", memory_mb_used=60000)
    make_host("h4", enabled=False, disabled_reason="x")
    make_host("h5", last_heartbeat=now - timedelta(hours=2))
    passing = [v.host for v in scheduler.explain(request_, now=now) if v.passed]
    assert passing == names(scheduler.candidates(request_, limit=100, now=now))


@pytest.mark.django_db(transaction=True)
def test_concurrent_schedulers_never_overfill_a_host(cloud):
    """20 threads race for a host with room for 5: exactly 5 claims win, usage is exact."""
    make_host("only", vcpus=64, memory_mb=5 * 512, disk_gb=100)
    results, barrier = [], threading.Barrier(20)

    def worker():
        try:
            barrier.wait()
            try:
                results.append(scheduler.select_and_claim(TINY).name)
            except scheduler.NoValidHost:
                results.append(None)
        finally:
            connection.close()  # this thread's own; close_old_connections keeps it (CONN_MAX_AGE)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("only") == 5
    assert results.count(None) == 15
    host = node("only")
    assert host.memory_mb_used == 5 * 512 and host.vcpus_used == 5


@pytest.mark.django_db
def test_the_claim_is_a_plain_conditional_update():
    """The fit is checked on the updated row, not in an ``id IN (SELECT ...)`` subquery: PostgreSQL
    re-checks only the updated row after waiting for a racing claim, so a subquery's stale read let
    two claims win the last room (the race above once gave 7 of 20 on PostgreSQL)."""
    host = make_host("only")
    with CaptureQueriesContext(connection) as queries:
        assert scheduler.claim(host.pk, TINY)
    (sql,) = [q["sql"].upper() for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert " IN (SELECT" not in sql and "EXISTS" in sql, sql
