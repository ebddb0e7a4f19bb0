"""The instance list with ``--instances`` (10,000) instances in one project: the read path only.

Rows are written with ``bulk_create`` (each with its create Operation, spread over 20 hosts, in varied
states, plus ~2% deleted rows that the list must skip), then requests go through Django's test client
in this process (no network, no web server): the API's first page, a page deep in the list, a filter, a
sort; and the dashboard's instances page when its URL exists. Per request: p50/p95 and the SQL queries.

Usage: .venv/bin/python bench/instance_list.py [--instances 10000] [--runs 50]
Embedded defaults unless DATABASE_URL is set (dropped and recreated: its name must contain "bench").
Prints JSON.
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import timedelta

import _harness as h

API = "/api/v1/compute/instances/"
# The list's order (-created) within a project, live rows only: a page is read in index order and the
# scan stops after offset + limit rows, instead of sorting every live row of the project.
# As Django writes models.Index(fields=["project", "-created"], condition=~Q(vm_state="deleted")).
SUGGESTED_INDEX = (
    'CREATE INDEX "instance_project_live" ON "compute_instance" ("project_id", "created" DESC) '
    """WHERE NOT ("vm_state" = 'deleted')"""
)


def populate(project, user, image, n: int) -> None:
    from django.db import transaction
    from django.utils import timezone

    from compute.models import ComputeNode, Flavor, Instance
    from workers.models import Host, Operation

    now = timezone.now()
    hosts = Host.objects.bulk_create(Host(name=f"list-{i:02d}", last_heartbeat=now) for i in range(20))
    ComputeNode.objects.bulk_create(
        ComputeNode(host=host, vcpus=16, memory_mb=65536, disk_gb=100, hypervisor_type="test")
        for host in hosts
    )
    flavors = list(Flavor.objects.all())
    states = (
        ["active"] * 80
        + ["stopped"] * 10
        + ["paused"] * 3
        + ["error"] * 3
        + ["building"] * 2
        + ["deleted"] * 2
    )
    with transaction.atomic():
        for start in range(0, n, 1000):
            ops, rows = [], []
            for i in range(start, min(n, start + 1000)):
                instance_id = uuid.uuid4()
                op = Operation(
                    kind="instance.create",
                    state="succeeded",
                    progress=100,
                    resource_type="instance",
                    resource_id=instance_id,
                    project=project,
                    user=user,
                    task_name="compute.tasks.build_instance",
                    queue="conductor",
                    payload={"instance_id": str(instance_id)},
                    deadline=now + timedelta(minutes=10),
                )
                ops.append(op)
                flavor = flavors[i % len(flavors)]
                vm_state = states[i % len(states)]
                rows.append(
                    Instance(
                        id=instance_id,
                        name=f"vm-{i:05d}",
                        project=project,
                        user=user,
                        flavor=flavor,
                        image=image,
                        vcpus=flavor.vcpus,
                        memory_mb=flavor.ram_mb,
                        disk_gb=flavor.disk_gb,
                        host=hosts[i % len(hosts)],
                        vm_state=vm_state,
                        task_state="spawning" if vm_state == "building" else "",
                        power_state="running" if vm_state == "active" else "shutdown",
                        operation=op,
                        launched_at=now,
                    )
                )
            Operation.objects.bulk_create(ops)
            Instance.objects.bulk_create(rows)
    # bulk_create skips auto_now_add: spread creation times so that ordering by -created is meaningful.
    _spread_created(Instance, now)


def _spread_created(Instance, now) -> None:
    from django.db import transaction

    ids = list(Instance.objects.order_by("name").values_list("pk", flat=True))
    with transaction.atomic():
        for offset, pk in enumerate(ids):
            Instance.objects.filter(pk=pk).update(created=now - timedelta(seconds=len(ids) - offset))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument(
        "--with-index",
        action="store_true",
        help="then add the suggested index to this bench database (not a migration) and measure again",
    )
    parser.add_argument("--profile", action="store_true", help="add a cProfile of the first API page")
    args = parser.parse_args()

    settings = h.prepare("list")
    user, project, password = h.bench_user()
    image = h.seed_compute()
    t0 = time.perf_counter()
    populate(project, user, image, args.instances)
    analyze()  # what autovacuum does after a bulk load on PostgreSQL
    populate_s = time.perf_counter() - t0

    from django.db import connection
    from django.test import Client
    from django.urls import NoReverseMatch, reverse

    from compute.models import Instance
    from identity import services

    token = services.issue_token(username=user.username, password=password, project=project.name).token
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    browser = Client()
    browser.force_login(user)

    visible = Instance.objects.filter(project=project).exclude(vm_state="deleted").count()
    cases = {
        "api_first_100": (api, f"{API}?limit=100"),
        "api_offset_9000": (api, f"{API}?limit=100&offset={min(9000, max(0, visible - 100))}"),
        "api_filter_vm_state_stopped": (api, f"{API}?limit=100&vm_state=stopped"),
        "api_filter_name_icontains": (api, f"{API}?limit=100&name__icontains=vm-09"),
        "api_order_by_name": (api, f"{API}?limit=100&ordering=name"),
    }
    try:
        page = reverse("compute:instances")
    except NoReverseMatch:
        page = None
    if page:
        cases["dashboard_instances_page"] = (browser, page)
        cases["dashboard_instances_page_400"] = (browser, f"{page}?page=400")

    results = measure(cases, args.runs)
    plans = explain_first_page(project) if connection.vendor == "postgresql" else None
    with_index = None
    if args.with_index:
        with connection.cursor() as cur:
            cur.execute(SUGGESTED_INDEX)
        analyze()
        with_index = {"index": SUGGESTED_INDEX, "requests": measure(cases, args.runs)}
        if connection.vendor == "postgresql":
            with_index["postgres_plans"] = explain_first_page(project)
    profile = profile_request(api, cases["api_first_100"][1]) if args.profile else None

    h.emit(
        {
            "benchmark": "instance_list",
            **h.setup_label(settings),
            "instances": args.instances,
            "visible": visible,
            "runs": args.runs,
            "populate_s": round(populate_s, 1),
            "requests": results,
            "with_suggested_index": with_index,
            "postgres_plans": plans,
            "profile_api_first_100": profile,
            "target": {"api_first_100_p50_ms": 50, "dashboard_instances_page_p50_ms": 150},
        }
    )


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("ANALYZE")


def measure(cases: dict, runs: int) -> dict:
    """p50/p95, SQL queries, rows and bytes of each (client, url) case."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    results = {}
    for label, (client, url) in cases.items():
        for _ in range(3):  # warm-up (caches, first-use imports)
            response = client.get(url)
        if response.status_code != 200:
            results[label] = {"url": url, "status": response.status_code}
            continue
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - start) * 1000)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        is_json = response.get("Content-Type", "").startswith("application/json")
        rows = response.json()["results"] if is_json else None
        results[label] = {
            "url": url,
            **h.summary(samples),
            "queries": len(queries),
            "rows": len(rows) if rows is not None else None,
            "bytes": len(response.content),
        }
    return results


def profile_request(client, url: str, count: int = 20) -> list[str]:
    """The functions that take the most time (own time, then cumulative) over ``count`` requests."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        client.get(url)
    profiler.disable()
    out = []
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats(key).print_stats(18)
        lines = [line.strip() for line in buf.getvalue().splitlines() if line.strip()]
        start = next(i for i, line in enumerate(lines) if line.startswith("ncalls"))
        out.append(f"--- by {key} (per {count} requests) ---")
        out += [" ".join(line.split()) for line in lines[start:]]
    return out


def explain_first_page(project) -> dict:
    """EXPLAIN ANALYZE of the API's page query and its COUNT (PostgreSQL)."""
    from django.db import connection

    from compute.api.instances import instance_queryset
    from compute.models import Instance

    qs = instance_queryset(Instance.objects.live().filter(project_id=project.pk)).order_by("-created")
    out = {}
    with connection.cursor() as cur:
        for label, query in (("page", qs[:100]), ("deep_page", qs[9000:9100]), ("count", None)):
            if query is None:
                live = Instance.objects.live().filter(project_id=project.pk).order_by()
                sql, params = live.values("pk").query.sql_with_params()
                sql = f"SELECT COUNT(*) FROM ({sql}) sub"
            else:
                sql, params = query.query.sql_with_params()
            cur.execute(f"EXPLAIN (ANALYZE, BUFFERS OFF) {sql}", params)
            lines = [r[0] for r in cur.fetchall()]
            out[label] = {"execution": lines[-1], "plan": lines[:6]}
    return out


if __name__ == "__main__":
    main()
