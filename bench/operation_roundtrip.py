"""Round trip of one operation through real worker processes: enqueue -> conductor -> host -> callback.

Usage: .venv/bin/python bench/operation_roundtrip.py [--runs 50]
Uses the broker and database from the environment (embedded defaults when unset), in a private
ZENITH_VAR_DIR (var/bench-roundtrip) unless one is set; like the others it drops and recreates the
database (named *bench*) and flushes the broker first. Prints JSON.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import time

import _harness as h

ROOT = h.ROOT


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    settings = h.prepare("roundtrip")
    from django.core.management import call_command

    from identity.context import system_context
    from workers import services
    from workers.models import Operation

    call_command("enroll_host", "bench-host", verbosity=0)
    from workers import processes

    env = processes.worker_environment(
        os.environ,
        database_url=processes.database_url(settings.DATABASES["default"]),
        broker_url=settings.CELERY_BROKER_URL,
        var_dir=settings.VAR_DIR,
        broker_dir=settings.BROKER_DIR,
        result_backend=settings.CELERY_RESULT_BACKEND,
    )
    commands = [
        processes.conductor_argv(name="bench-conductor@%h", concurrency=4, loglevel="WARNING"),
        processes.agent_argv("bench-host", loglevel="WARNING"),
    ]
    procs = [
        subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for argv in commands
    ]
    ctx = system_context()

    def roundtrip(timeout: float = 30.0) -> float:
        start = time.perf_counter()
        op = services.ping_host(ctx, "bench-host")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = Operation.objects.filter(pk=op.pk).values_list("state", flat=True).get()
            if state == Operation.SUCCEEDED:
                return (time.perf_counter() - start) * 1000
            if state == Operation.FAILED:
                raise RuntimeError("operation failed")
            time.sleep(0.002)
        raise TimeoutError("operation did not finish")

    try:
        roundtrip(timeout=60)  # warm-up: workers start and connect
        samples = sorted(roundtrip() for _ in range(args.runs))
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=20)
    print(
        json.dumps(
            {
                "benchmark": "operation_roundtrip",
                "broker": settings.CELERY_BROKER_URL.split(":")[0],
                "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
                "runs": args.runs,
                "p50_ms": round(statistics.median(samples), 1),
                "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 1),
                "max_ms": round(samples[-1], 1),
            }
        )
    )


if __name__ == "__main__":
    main()
