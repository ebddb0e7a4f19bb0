"""Real QEMU guests through the whole stack: API create -> ACTIVE, and API create -> the guest's
"ZENITH GUEST READY" line on its serial console (read through the console-log API), on this
machine's libvirtd (software emulation here: /dev/kvm is not usable).

Sets up the real host (workers/agent/realhost.sh setup) and the guest (tests/guest/build.sh),
registers the zenith-guest image, starts the portal, a conductor and an agent on qemu:///system,
then launches ``--guests`` guests one after another (each deleted before the next).

Usage: .venv/bin/python bench/real_guest.py [--guests 5]
Prints JSON; {"skipped": reason} where no real host can be set up.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import time

import _harness as h

URL = "/api/v1/compute/instances/"
MARKER = "ZENITH GUEST READY"
DEADLINE = 180.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--guests", type=int, default=5)
    parser.add_argument("--poll", type=float, default=50.0, help="ms between GETs while waiting")
    args = parser.parse_args()

    for cmd in (["workers/agent/realhost.sh", "setup"], ["tests/guest/build.sh"]):
        done = subprocess.run(cmd, cwd=h.ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            h.emit({"benchmark": "real_guest", "skipped": f"{' '.join(cmd)}: {done.stderr.strip()[-500:]}"})
            return

    settings = h.prepare("real")
    from django.core.management import call_command

    user, project, password = h.bench_user()
    h.seed_compute()
    call_command("register_guest_image", stdout=io.StringIO())

    plane = h.Plane(settings)
    plane.env["ZENITH_LIBVIRT_POOL_PATH"] = str(settings.VAR_DIR / "realhost-pool")
    try:
        plane.web()
        plane.conductor()
        plane.agent("real-1", libvirt_uri="qemu:///system")
        plane.wait_ready()
        plane.wait_hosts(["real-1"])
        api = h.Api(plane.url)
        api.login(user.username, password, project.name)
        poll = args.poll / 1000
        answered, to_active, to_marker = [], [], []
        for n in range(args.guests):
            start = time.perf_counter()
            status, body = api.request(
                "POST", URL, {"name": f"real-{n}", "flavor": "m1.tiny", "image": "zenith-guest"}
            )
            if status != 202:
                raise RuntimeError(f"create: {status} {body}")
            answered.append((time.perf_counter() - start) * 1000)
            instance_id = body["id"]
            deadline = time.monotonic() + DEADLINE
            active = None
            while True:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"guest {instance_id} not ready in {DEADLINE:.0f} s")
                if active is None:
                    _, data = api.request("GET", f"{URL}{instance_id}/")
                    if data["status"] == "ERROR":
                        raise RuntimeError(f"guest {instance_id} failed: {data['fault']}")
                    if data["status"] == "ACTIVE" and not data["task_state"]:
                        active = time.perf_counter() - start
                else:
                    _, log = api.request("GET", f"{URL}{instance_id}/console-log/?lines=200")
                    if MARKER in log.get("output", ""):
                        to_marker.append(time.perf_counter() - start)
                        to_active.append(active)
                        break
                time.sleep(poll)
            api.request("DELETE", f"{URL}{instance_id}/")
            while api.request("GET", f"{URL}{instance_id}/")[0] != 404:
                time.sleep(poll)
        h.emit(
            {
                "benchmark": "real_guest",
                "setup": h.setup_label(settings),
                "guests": args.guests,
                "create_answered": h.summary(answered),
                "create_to_active": h.summary([s * 1000 for s in to_active]),
                "create_to_console_marker": h.summary([s * 1000 for s in to_marker]),
            }
        )
    finally:
        plane.stop()


if __name__ == "__main__":
    main()
