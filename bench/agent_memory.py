"""Memory of the multi-host agent: one ``manage.py agent --simulate N`` process per run, N in
``--hosts`` (default 1,100,1000), with a conductor (and, on the first run, the portal) beside it.

Each run waits until every simulated host registered through the batched heartbeat and answered a
ping on its own queue (its libvirt test-driver connection opened, its pool made), lets ``--settle``
seconds of heartbeats pass, then reads each process's resident memory from /proc (RSS, and PSS:
shared pages divided among their sharers) and the CPU it used while idle. Reports the agent's RSS per
simulated host (RSS / N) and the marginal cost of a host ((RSS(N) - RSS(1)) / (N - 1)), and the idle
RSS of the portal (gunicorn, 2 workers) and the conductor.

Usage: .venv/bin/python bench/agent_memory.py [--hosts 1,100,1000] [--settle 5]
Embedded defaults unless DATABASE_URL / CELERY_BROKER_URL are set (database dropped and recreated:
its name must contain "bench"). Prints JSON.
"""

from __future__ import annotations

import argparse
import time
import uuid

import _harness as h

from workers import processes

PREFIX = "mem-"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", default="1,100,1000", help="comma-separated numbers of simulated hosts")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds of heartbeats before measuring")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds over which idle CPU is measured")
    args = parser.parse_args()
    counts = [int(n) for n in args.hosts.split(",") if n.strip()]

    settings = h.prepare("agent-memory")
    from celery import current_app

    from workers.models import Host

    runs = []
    idle_services = {}
    for index, count in enumerate(counts):
        Host.objects.all().delete()
        plane = h.Plane(settings, heartbeat_interval=2)
        try:
            if index == 0:
                plane.web()
            plane.conductor(concurrency=4)
            started = time.perf_counter()
            agent = plane.simulated_agents(count, PREFIX, concurrency=4, name="agent")
            plane.wait_ready(timeout=600)
            names = processes.simulated_host_names(count, PREFIX)
            plane.wait_hosts(names, timeout=600)
            ready_s = time.perf_counter() - started
            # Every host answers its own queue (a sample of 20 when there are many).
            step = max(1, count // 20)
            for name in names[::step]:
                result = current_app.send_task(
                    "workers.agent.tasks.ping", kwargs={"nonce": str(uuid.uuid4())}, queue=f"compute.{name}"
                )
                answer = result.get(timeout=60)
                result.forget()
                if (answer["host"], answer["pid"]) != (name, agent.proc.pid):
                    raise RuntimeError(f"compute.{name} answered by {answer}")
            time.sleep(args.settle)
            cpu_before = plane.cpu_seconds()
            time.sleep(args.idle)
            cpu_after = plane.cpu_seconds()
            memory = plane.memory()
        except Exception:
            for p in plane.procs:
                print(f"----- {p.name} -----\n{p.log_tail()}", flush=True)
            raise
        finally:
            plane.stop()
        cpu_idle = {
            role: round((cpu_after.get(role, 0) - cpu_before.get(role, 0)) / args.idle * 100, 1)
            for role in cpu_after
        }
        agent_mem = memory["agent"]
        runs.append(
            {
                "hosts": count,
                "ready_s": round(ready_s, 1),
                "agent_rss_mb": agent_mem["rss_mb"],
                "agent_pss_mb": agent_mem["pss_mb"],
                "agent_rss_per_host_mb": round(agent_mem["rss_mb"] / count, 2),
                "idle_cpu_percent": cpu_idle,
            }
        )
        if index == 0:
            idle_services = {role: memory[role] for role in ("web", "conductor") if role in memory}
    base = next((r for r in runs if r["hosts"] == 1), None)
    for run in runs:
        if base is not None and run["hosts"] > 1:
            run["marginal_rss_per_host_mb"] = round(
                (run["agent_rss_mb"] - base["agent_rss_mb"]) / (run["hosts"] - 1), 3
            )
    h.emit(
        {
            "benchmark": "agent_memory",
            **h.setup_label(settings),
            "runs": runs,
            "idle": idle_services,
            "target": {"rss_per_simulated_host_mb": 5},
        }
    )


if __name__ == "__main__":
    main()
