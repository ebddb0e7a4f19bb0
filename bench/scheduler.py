"""Scheduler decision time with many hosts: ``candidates()`` (the one filter-and-weigh query) and
``select_and_claim()`` (that query plus the conditional UPDATE of the claim), at 1,000 and 10,000 hosts.

Hosts are written with ``bulk_create``: varied capacities (16-128 vCPUs, 64-1024 GiB), usage from
empty to nearly full, ~5% disabled, ~5% down, three availability zones. Each claim is released
afterwards (not timed) so every decision sees the same hosts. Also times ``explain()`` (the per-host
"no valid host" reasons, computed in Python over every host) and, on PostgreSQL, shows the candidate
query's EXPLAIN ANALYZE.

Usage: .venv/bin/python bench/scheduler.py [--hosts 1000,10000] [--runs 200]
Embedded defaults unless DATABASE_URL is set (dropped and recreated: its name must contain "bench").
Prints JSON.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import timedelta

import _harness as h


def populate(n: int, seed: int = 42) -> None:
    from django.utils import timezone

    from compute.models import ComputeNode
    from workers.models import Host

    rng = random.Random(seed)
    now = timezone.now()
    rows, nodes = [], []
    for i in range(n):
        vcpus = rng.choice([16, 32, 48, 64, 96, 128])
        memory_mb = rng.choice([64, 128, 256, 384, 512, 768, 1024]) * 1024
        disk_gb = rng.choice([500, 1000, 2000, 4000])
        fill = rng.random() * 0.95
        host = Host(
            name=f"node-{i:05d}",
            uri="test:///default",
            availability_zone=f"az-{i % 3}",
            enabled=rng.random() > 0.05,
            last_heartbeat=now - (timedelta(hours=1) if rng.random() < 0.05 else timedelta(seconds=1)),
        )
        rows.append(host)
        nodes.append(
            ComputeNode(
                host=host,
                hypervisor_type="test",
                vcpus=vcpus,
                memory_mb=memory_mb,
                disk_gb=disk_gb,
                vcpus_used=int(vcpus * 4.0 * fill),
                memory_mb_used=int(memory_mb * fill),
                disk_gb_used=int(disk_gb * fill),
                cpu_allocation_ratio=4.0,
                ram_allocation_ratio=1.0,
            )
        )
    Host.objects.bulk_create(rows, batch_size=1000)
    ComputeNode.objects.bulk_create(nodes, batch_size=1000)


def refresh_heartbeats() -> None:
    """Keep the "up" hosts up (down after 60 s without a heartbeat) for the next measurements."""
    from django.utils import timezone

    from workers.models import Host

    Host.objects.up(timezone.now() - timedelta(seconds=50)).update(last_heartbeat=timezone.now())


def measure(n: int, runs: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from compute import scheduler
    from workers.models import Host

    Host.objects.all().delete()
    populate(n)
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute(f"ANALYZE {connection.ops.quote_name(Host._meta.db_table)}")
    request = scheduler.Request(vcpus=1, memory_mb=512, disk_gb=1)
    request_az = scheduler.Request(vcpus=2, memory_mb=2048, disk_gb=20, availability_zone="az-1")
    out: dict = {"hosts": n, "up_and_enabled": Host.objects.up().filter(enabled=True).count()}

    def timed(fn, count) -> list[float]:
        refresh_heartbeats()
        for _ in range(5):
            fn()
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1000)
        return samples

    out["candidates"] = h.summary(timed(lambda: scheduler.candidates(request), runs))
    out["candidates_with_az"] = h.summary(timed(lambda: scheduler.candidates(request_az), runs))

    claims = []

    def select_and_claim():
        start = time.perf_counter()
        host = scheduler.select_and_claim(request)
        claims.append((time.perf_counter() - start) * 1000)
        scheduler.release(host.pk, request.vcpus, request.memory_mb, request.disk_gb)

    refresh_heartbeats()
    for _ in range(5):
        select_and_claim()
    claims.clear()
    for _ in range(runs):
        select_and_claim()
    out["select_and_claim"] = h.summary(claims)
    with CaptureQueriesContext(connection) as queries:
        host = scheduler.select_and_claim(request)
    scheduler.release(host.pk, request.vcpus, request.memory_mb, request.disk_gb)
    out["select_and_claim_queries"] = len(queries)
    out["explain_all_hosts"] = h.summary(timed(lambda: scheduler.explain(request), max(3, runs // 20)))

    sql = _candidates_sql(request)
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
            out["plan"] = [r[0] for r in cur.fetchall()]
        else:
            cur.execute(f"EXPLAIN QUERY PLAN {sql}")
            out["plan"] = [str(r[-1]) for r in cur.fetchall()]
    return out


def _candidates_sql(request):
    """The SQL of ``scheduler.candidates`` (captured from one call)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from compute import scheduler

    with CaptureQueriesContext(connection) as queries:
        scheduler.candidates(request)
    return queries[-1]["sql"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", default="1000,10000")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    settings = h.prepare("scheduler")
    results = [measure(int(n), args.runs) for n in args.hosts.split(",")]
    h.emit(
        {
            "benchmark": "scheduler",
            **h.setup_label(settings),
            "weigher": settings.ZENITH_SCHEDULER_WEIGHER,
            "runs": args.runs,
            "sizes": results,
            "target": {"select_and_claim_p50_ms_at_10000_hosts": 20},
        }
    )


if __name__ == "__main__":
    main()
