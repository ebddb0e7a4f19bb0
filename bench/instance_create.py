"""Launch instances one at a time through the real HTTP API and real workers (libvirt's test driver).

Starts the portal under gunicorn (2 workers x 4 threads) on a free port, a conductor and ``--hosts``
agents on the simulated host (workers/agent/simhost.xml); agents fetch the image from the portal over a
signed URL. Measures, per instance: the POST's answer (202), create-to-ACTIVE (the instance's GET polled
every ``--poll`` ms), and delete-to-gone (DELETE's 202 until GET answers 404). The first launch on each
host (cold image cache) is a warm-up, reported apart. Server-side phases come from the Operation rows.

Usage: .venv/bin/python bench/instance_create.py [--runs 30] [--hosts 2] [--poll 10]
Embedded defaults unless DATABASE_URL / CELERY_BROKER_URL are set (the database is dropped and
recreated: its name must contain "bench"). Prints JSON.
"""

from __future__ import annotations

import argparse
import time

import _harness as h

URL = "/api/v1/compute/instances/"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--poll", type=float, default=10.0, help="ms between GETs while waiting")
    parser.add_argument("--flavor", default="m1.tiny")
    args = parser.parse_args()

    settings = h.prepare("create")
    user, project, password = h.bench_user()
    image = h.seed_compute()
    hosts = [f"bench-{n + 1}" for n in range(args.hosts)]

    plane = h.Plane(settings)
    try:
        plane.web()
        plane.conductor()
        for host in hosts:
            plane.agent(host)
        plane.wait_ready()
        plane.wait_hosts(hosts)
        api = h.Api(plane.url)
        api.login(user.username, password, project.name)
        poll = args.poll / 1000

        def launch(n: int) -> dict:
            start = time.perf_counter()
            status, body = api.request(
                "POST", URL, {"name": f"b-{n}", "flavor": args.flavor, "image": image.name}
            )
            answered = time.perf_counter()
            if status != 202:
                raise RuntimeError(f"create: {status} {body}")
            instance_id = body["id"]
            deadline = time.monotonic() + 60
            while True:
                status, data = api.request("GET", f"{URL}{instance_id}/")
                if status == 200 and data["status"] == "ACTIVE" and not data["task_state"]:
                    break
                if status == 200 and data["status"] == "ERROR":
                    raise RuntimeError(f"instance {instance_id} in ERROR: {data['fault']}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"instance {instance_id} not ACTIVE after 60 s: {data}")
                time.sleep(poll)
            active = time.perf_counter()
            return {
                "id": instance_id,
                "operation": data["operation"]["id"],
                "create_ms": (answered - start) * 1000,
                "active_ms": (active - start) * 1000,
            }

        def delete(instance_id: str) -> float:
            start = time.perf_counter()
            status, body = api.request("DELETE", f"{URL}{instance_id}/")
            if status != 202:
                raise RuntimeError(f"delete: {status} {body}")
            deadline = time.monotonic() + 60
            while api.request("GET", f"{URL}{instance_id}/")[0] != 404:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"instance {instance_id} not gone after 60 s")
                time.sleep(poll)
            return (time.perf_counter() - start) * 1000

        # Warm-up: one launch per host fills each host's image cache (spread puts them on different hosts).
        warm = [launch(-n - 1) for n in range(args.hosts)]
        samples = [launch(n) for n in range(args.runs)]
        deletes = [delete(s["id"]) for s in samples]
        phases = server_phases([s["operation"] for s in samples])
    except Exception:
        for p in plane.procs:
            print(f"----- {p.name} -----\n{p.log_tail()}", flush=True)
        raise
    finally:
        plane.stop()

    h.emit(
        {
            "benchmark": "instance_create",
            **h.setup_label(settings),
            "hosts": args.hosts,
            "runs": args.runs,
            "poll_ms": args.poll,
            "flavor": args.flavor,
            "create_answered": h.summary([s["create_ms"] for s in samples]),
            "create_to_active": h.summary([s["active_ms"] for s in samples]),
            "delete_to_gone": h.summary(deletes),
            "cold_image_cache_to_active_ms": [round(w["active_ms"], 1) for w in warm],
            "server_phases": phases,
            "targets": {"create_answered_p50_ms": 50, "create_to_active_p50_ms": 300},
        }
    )


def server_phases(operation_ids) -> dict:
    """Where the time went, from the Operation rows: request commit -> conductor start -> finished."""
    from workers.models import Operation

    rows = Operation.objects.filter(pk__in=operation_ids).values_list(
        "created", "sent_at", "started_at", "finished_at"
    )
    to_sent, to_start, to_finish = [], [], []
    for created, sent, started, finished in rows:
        to_sent.append((sent - created).total_seconds() * 1000)
        to_start.append((started - sent).total_seconds() * 1000)
        to_finish.append((finished - started).total_seconds() * 1000)
    return {
        "operation_created_to_sent": h.summary(to_sent),
        "sent_to_conductor_started": h.summary(to_start),
        "conductor_started_to_succeeded": h.summary(to_finish),
    }


if __name__ == "__main__":
    main()
