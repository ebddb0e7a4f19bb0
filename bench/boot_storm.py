"""A boot storm: many instances launched at once through the HTTP API onto many simulated hosts.

Starts the portal under gunicorn (2 workers x 4 threads), a conductor and ``--hosts`` simulated hosts on
libvirt's test driver, served by ``--agents`` agent processes (default one: ``manage.py agent
--simulate N``; ``--agents 0``: one process per host, as before), warms every host's image cache with
one launch, then
``--clients`` threads POST ``--instances`` launches as fast as the API answers. Measures the time from
the first POST until every instance is ACTIVE (or ERROR), instances/s, the POST latencies, the
per-instance create-to-ACTIVE (server clock: launched_at - created), errors, and the spread per host.
Completion is watched in the database (one COUNT every 50 ms), not by polling the API, so the
watching adds no load on the portal.

Usage: .venv/bin/python bench/boot_storm.py [--instances 200] [--hosts 20] [--clients 8]
       [--agents 1] [--agent-concurrency 8] [--conductor-concurrency 8]
Embedded defaults unless DATABASE_URL / CELERY_BROKER_URL are set (the database is dropped and
recreated: its name must contain "bench"). Prints JSON.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections import Counter

import _harness as h

from workers import processes

URL = "/api/v1/compute/instances/"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--agents", type=int, default=1, help="agent processes sharing the hosts (0: one per host)"
    )
    parser.add_argument(
        "--agent-concurrency", type=int, default=None, help="threads per agent (default 8; 2 with --agents 0)"
    )
    parser.add_argument("--conductor-concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    settings = h.prepare("storm")
    user, project, password = h.bench_user()
    image = h.seed_compute()
    if args.agents < 0 or args.agents > args.hosts:
        parser.error("--agents is 0 (one per host) or 1 ... --hosts")
    concurrency = args.agent_concurrency or (2 if args.agents == 0 else 8)
    if args.agents == 0:
        groups = [[f"storm-{n + 1:02d}"] for n in range(args.hosts)]
    else:  # hosts split as evenly as can be among the agents, each its own prefix
        groups = []
        for a in range(args.agents):
            count = args.hosts // args.agents + (1 if a < args.hosts % args.agents else 0)
            groups.append(processes.simulated_host_names(count, f"storm{a + 1}-"))
    hosts = [host for group in groups for host in group]

    from compute.models import Instance

    plane = h.Plane(settings)
    try:
        started = time.perf_counter()
        plane.web()
        plane.conductor(concurrency=args.conductor_concurrency)
        for a, group in enumerate(groups):
            if args.agents == 0:
                plane.agent(group[0], concurrency=concurrency)
            else:
                plane.simulated_agents(len(group), f"storm{a + 1}-", concurrency=concurrency)
        plane.wait_ready(timeout=300)
        plane.wait_hosts(hosts, timeout=120)
        startup_s = time.perf_counter() - started
        api = h.Api(plane.url)
        api.login(user.username, password, project.name)

        # Warm-up: one instance per host (spread places them one per host) fills the image caches.
        warm_ids = []
        for n in range(args.hosts):
            status, body = api.request(
                "POST", URL, {"name": f"warm-{n}", "flavor": "m1.tiny", "image": image.name}
            )
            if status != 202:
                raise RuntimeError(f"warm-up create: {status} {body}")
            warm_ids.append(body["id"])
        wait_settled(Instance, warm_ids, args.timeout)

        todo = list(range(args.instances))
        lock = threading.Lock()
        created: list[str] = []
        post_ms: list[float] = []
        http_errors: Counter = Counter()

        def client() -> None:
            while True:
                with lock:
                    if not todo:
                        return
                    n = todo.pop()
                t0 = time.perf_counter()
                try:
                    status, body = api.request(
                        "POST", URL, {"name": f"storm-{n}", "flavor": "m1.tiny", "image": image.name}
                    )
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    with lock:
                        http_errors[type(exc).__name__] += 1
                    continue
                elapsed = (time.perf_counter() - t0) * 1000
                with lock:
                    if status == 202:
                        created.append(body["id"])
                        post_ms.append(elapsed)
                    else:
                        http_errors[f"{status}: {str(body)[:200]}"] += 1

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        cpu_before = plane.cpu_seconds()
        t_start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t_posted = time.perf_counter()
        timed_out = not wait_settled(Instance, created, args.timeout)
        t_done = time.perf_counter()
        cpu_after = plane.cpu_seconds()
        memory = plane.memory()
    except Exception:
        for p in plane.procs:
            print(f"----- {p.name} -----\n{p.log_tail()}", flush=True)
        raise
    finally:
        plane.stop()

    rows = list(
        Instance.objects.filter(pk__in=created).values_list(
            "vm_state", "host__name", "created", "launched_at", "fault"
        )
    )
    active = [r for r in rows if r[0] == Instance.ACTIVE]
    faults = Counter((r[4] or {}).get("code", "?") for r in rows if r[0] == Instance.ERROR)
    per_host = Counter(r[1] for r in active)
    counts = [per_host.get(host, 0) for host in hosts]
    total_s = t_done - t_start
    h.emit(
        {
            "benchmark": "boot_storm",
            **h.setup_label(settings),
            "hosts": args.hosts,
            "instances": args.instances,
            "clients": args.clients,
            "agent_processes": len(groups),
            "agent_concurrency": concurrency,
            "conductor_concurrency": args.conductor_concurrency,
            "startup_s": round(startup_s, 1),
            "posting_s": round(t_posted - t_start, 2),
            "total_s": round(total_s, 2),
            "instances_per_s": round(len(active) / total_s, 1),
            "active": len(active),
            "error": sum(faults.values()),
            "faults": dict(faults),
            "http_errors": dict(http_errors),
            "timed_out": timed_out,
            "create_answered": h.summary(post_ms),
            "create_to_active_server": h.summary(
                [(r[3] - r[2]).total_seconds() * 1000 for r in active if r[3] is not None]
            ),
            "cpu_s_during_storm": {
                role: round(cpu_after.get(role, 0) - cpu_before.get(role, 0), 1) for role in cpu_after
            },
            # CPU of every Zenith process per instance launched: what the storm costs, whatever else runs.
            "cpu_ms_per_instance": round(
                sum(cpu_after.get(r, 0) - cpu_before.get(r, 0) for r in cpu_after)
                / max(len(active), 1)
                * 1000,
                1,
            ),
            "memory_after_storm": memory,
            "per_host": {
                "min": min(counts),
                "max": max(counts),
                "stdev": round(statistics.pstdev(counts), 2),
            },
            "target": {"instances_per_s": 25},
        }
    )


def wait_settled(Instance, ids, timeout: float) -> bool:
    """Until none of ``ids`` is building or busy; False on timeout."""
    deadline = time.monotonic() + timeout
    while (
        Instance.objects.filter(pk__in=ids).exclude(vm_state__in=["active", "error"], task_state="").exists()
    ):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


if __name__ == "__main__":
    main()
