"""Volumes one at a time through the real HTTP API and real workers (libvirt's test driver).

Starts the portal under gunicorn, a conductor and ``--hosts`` agents carrying the compute and
storage roles on the simulated host; launches one instance per host to attach to. Measures, per
volume: the POST's answer (202), create-to-available (blank volume; the volume's GET polled every
``--poll`` ms), attach-to-in-use (POST instances/{id}/volume-attachments/ until the volume is
in-use), detach-to-available and delete-to-gone.

Usage: .venv/bin/python bench/volume_create.py [--runs 30] [--hosts 1] [--poll 5]
Embedded defaults unless DATABASE_URL / CELERY_BROKER_URL are set (the database is dropped and
recreated: its name must contain "bench"). Prints JSON.
"""

from __future__ import annotations

import argparse
import time

import _harness as h

VOLUMES = "/api/v1/storage/volumes/"
INSTANCES = "/api/v1/compute/instances/"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--hosts", type=int, default=1)
    parser.add_argument("--poll", type=float, default=5.0, help="ms between GETs while waiting")
    args = parser.parse_args()

    settings = h.prepare("volumes")
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
        wait_pools(hosts)
        api = h.Api(plane.url)
        api.login(user.username, password, project.name)
        poll = args.poll / 1000

        def wait(path: str, done, what: str) -> dict:
            deadline = time.monotonic() + 60
            while True:
                status, data = api.request("GET", path)
                if status == 200 and done(data):
                    return data
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what} not reached after 60 s: {status} {data}")
                time.sleep(poll)

        def volume_in(volume_id: str, status: str) -> dict:
            return wait(f"{VOLUMES}{volume_id}/", lambda d: d["status"] in (status, "error"), status)

        instances = []
        for n, _host in enumerate(hosts):
            status, body = api.request(
                "POST", INSTANCES, {"name": f"vm-{n}", "flavor": "m1.tiny", "image": image.name}
            )
            if status != 202:
                raise RuntimeError(f"launch: {status} {body}")
            wait(
                f"{INSTANCES}{body['id']}/",
                lambda d: d["status"] == "ACTIVE" and not d["task_state"],
                "ACTIVE",
            )
            instances.append(body["id"])

        samples = []
        for n in range(args.runs):
            start = time.perf_counter()
            status, body = api.request("POST", VOLUMES, {"name": f"v-{n}", "size": 1})
            answered = time.perf_counter()
            if status != 202:
                raise RuntimeError(f"create: {status} {body}")
            volume_id = body["id"]
            data = volume_in(volume_id, "available")
            available = time.perf_counter()
            if data["status"] != "available":
                raise RuntimeError(f"volume {volume_id}: {data}")
            instance_id = instances[n % len(instances)]
            attach_start = time.perf_counter()
            status, body = api.request(
                "POST", f"{INSTANCES}{instance_id}/volume-attachments/", {"volume": volume_id}
            )
            if status != 202:
                raise RuntimeError(f"attach: {status} {body}")
            data = volume_in(volume_id, "in-use")
            in_use = time.perf_counter()
            if data["status"] != "in-use":
                raise RuntimeError(f"attach of {volume_id}: {data}")
            detach_start = time.perf_counter()
            status, body = api.request("DELETE", f"{INSTANCES}{instance_id}/volume-attachments/{volume_id}/")
            if status != 202:
                raise RuntimeError(f"detach: {status} {body}")
            volume_in(volume_id, "available")
            detached = time.perf_counter()
            status, body = api.request("DELETE", f"{VOLUMES}{volume_id}/")
            if status != 202:
                raise RuntimeError(f"delete: {status} {body}")
            deadline = time.monotonic() + 60
            while api.request("GET", f"{VOLUMES}{volume_id}/")[0] != 404:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"volume {volume_id} not gone after 60 s")
                time.sleep(poll)
            gone = time.perf_counter()
            samples.append(
                {
                    "create_ms": (answered - start) * 1000,
                    "available_ms": (available - start) * 1000,
                    "in_use_ms": (in_use - attach_start) * 1000,
                    "detach_ms": (detached - detach_start) * 1000,
                    "delete_ms": (gone - detached) * 1000,
                }
            )
    except Exception:
        for p in plane.procs:
            print(f"----- {p.name} -----\n{p.log_tail()}", flush=True)
        raise
    finally:
        plane.stop()

    h.emit(
        {
            "benchmark": "volume_create",
            **h.setup_label(settings),
            "hosts": args.hosts,
            "runs": args.runs,
            "poll_ms": args.poll,
            "create_answered": h.summary([s["create_ms"] for s in samples]),
            "create_to_available": h.summary([s["available_ms"] for s in samples]),
            "attach_to_in_use": h.summary([s["in_use_ms"] for s in samples]),
            "detach_to_available": h.summary([s["detach_ms"] for s in samples]),
            "delete_to_gone": h.summary([s["delete_ms"] for s in samples]),
            "targets": {"create_to_available_p50_ms": 150, "attach_to_in_use_p50_ms": 300},
        }
    )


def wait_pools(hosts, timeout: float = 30.0) -> None:
    from storage.models import StoragePool

    deadline = time.monotonic() + timeout
    while StoragePool.objects.filter(host__name__in=list(hosts)).count() < len(hosts):
        if time.monotonic() > deadline:
            raise RuntimeError("the storage hosts reported no pool")
        time.sleep(0.1)


if __name__ == "__main__":
    main()
