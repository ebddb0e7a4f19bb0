"""The fault-injection suite's cloud: real processes on PostgreSQL and a Redis of the test's own.

Per test: a redis-server on a private 127.0.0.1 port (no persistence: a restart loses every message, as
a crashed broker does), the portal under gunicorn, a conductor with beat (the sweeper), and the agents
of two simulated hosts (libvirt's test driver). Deadlines, sweeps, heartbeats and the broker's
visibility timeout are shortened (``FAST``) so that every case settles within a minute.

Runs in the PostgreSQL + Redis pass of ``make test`` (skipped in the embedded SQLite pass). Without a
``redis-server`` binary it is skipped with the reason, or failed under ``ZENITH_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection

from compute import services
from compute.models import Image
from identity import quotas
from identity import services as identity_services
from tests import enrollment
from tests.factories import PASSWORD
from tests.integration.conftest import PLANE_KEY, Plane, shut_down
from workers import processes
from workers.models import Host

SIM_URI = processes.simulated_host_uri()
HOSTS = ("sim-1", "sim-2")
# Large enough that a host's first spawn spends a moment downloading it (its spawns are in flight
# then, held unacknowledged by the agent), unique per test so that no host has it cached already.
IMAGE_MB = 48
MiB = 1024 * 1024
DEADLINE = 60  # seconds: every operation of the suite
# Shortened for the suite (the defaults are minutes): the same mechanisms, on a faster clock.
FAST = {
    "ZENITH_OPERATION_DEFAULT_DEADLINE": str(DEADLINE),
    "ZENITH_SWEEP_INTERVAL": "2",
    "ZENITH_OPERATION_RESEND_AFTER": "3",
    "ZENITH_OPERATION_REDRIVE_AFTER": "8",
    "ZENITH_BROKER_VISIBILITY_TIMEOUT": "8",
    "ZENITH_HEARTBEAT_INTERVAL": "1",
    "ZENITH_HOST_DOWN_AFTER": "5",
    "ZENITH_STOP_TIMEOUT": "2",
}
RESULTS: list[dict] = []  # one per case, printed at the end of the run (pytest_terminal_summary)


def _unavailable(reason: str) -> None:
    if os.environ.get("ZENITH_REQUIRE_SERVICES") == "1":
        pytest.fail(f"ZENITH_REQUIRE_SERVICES=1 but the fault suite cannot run: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of this test alone on 127.0.0.1:``port``, without persistence."""

    def __init__(self, binary: str, port: int, workdir: Path):
        self.binary, self.port, self.workdir = binary, port, workdir
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self, timeout: float = 10.0) -> None:
        with open(self.workdir / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ]
                + ["--dir", str(self.workdir), "--protected-mode", "yes"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.workdir / 'redis.log').read_text()}")
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout:.0f} s")

    def kill(self) -> None:
        """The broker dies (SIGKILL): every queued and unacknowledged message is gone with it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@dataclass
class FaultCloud:
    """The processes of one test and an API client of a project member."""

    plane: Plane
    redis: RedisServer
    web_url: str
    session: requests.Session
    image_id: str
    project: object
    accepted: list[str] = field(default_factory=list)  # instance ids the API answered 202 for
    hosts: dict[str, str] = field(default_factory=lambda: dict.fromkeys(HOSTS, SIM_URI))  # name: libvirt URI

    def launch_agent(self, host: str):
        enrollment.enroll(host)
        argv = processes.agent_argv(host, libvirt_uri=self.hosts[host])
        return self.plane._launch(f"agent-{host}", argv, "")

    def launch_conductor(self):
        argv = processes.conductor_argv(name="conductor-faults@%h", concurrency=4, beat=True)
        # Its own beat schedule file: a stale one from another run must not delay the sweeper.
        return self.plane._launch("conductor", argv + ["-s", str(self.plane.log_dir / "beat-schedule")], "")

    def kill(self, name: str) -> None:
        """SIGKILL a worker's process group (no warm shutdown: whatever it held is in flight)."""
        worker = self.plane.workers.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.proc.pid, 9)
        worker.proc.wait(timeout=10)


def wait_hosts_up(names=HOSTS, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for h in Host.objects.filter(name__in=names) if h.is_up()) == len(names):
            return
        time.sleep(0.1)
    raise AssertionError(f"hosts {names} did not come up within {timeout:.0f} s")


@pytest.fixture
def redis_server(tmp_path):
    """A redis-server of this test alone (no PostgreSQL needed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable("no redis-server binary on PATH: the fault suite starts a Redis of its own")
    server = RedisServer(binary, int(os.environ.get("ZENITH_FAULTS_REDIS_PORT") or _free_port()), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def require_services() -> str:
    """The redis-server binary, in the PostgreSQL pass; else the test is skipped (or failed) with why."""
    if connection.vendor != "postgresql":
        # By design, not for want of a service: this is the embedded pass; the suite runs in the next one.
        pytest.skip("the fault suite runs in the PostgreSQL + Redis pass (DATABASE_URL on PostgreSQL)")
    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable("no redis-server binary on PATH: the fault suite starts a Redis of its own")
    return binary


@contextlib.contextmanager
def running_cloud(
    request, cloud, django_db_blocker, tmp_path, settings, image_id: str, hosts: dict[str, str]
):
    """Redis, the portal, the conductor and an agent per host (``{name: libvirt URI}``), all up; stopped
    after. The flavors, the image ``image_id`` and room in the project's quota are ready before."""
    binary = require_services()
    settings.ZENITH_HOST_DOWN_AFTER = timedelta(seconds=int(FAST["ZENITH_HOST_DOWN_AFTER"]))
    port = int(os.environ.get("ZENITH_FAULTS_REDIS_PORT") or _free_port())
    redis_server = RedisServer(binary, port, tmp_path)
    redis_server.start()
    web_port = _free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    plane = Plane(tmp_path)
    plane.env.update(FAST)
    plane.env.update(
        CELERY_BROKER_URL=redis_server.url, CELERY_RESULT_BACKEND=redis_server.url, ZENITH_PORTAL_URL=web_url
    )
    request.node.stash[PLANE_KEY] = plane
    quotas.set_limits(cloud.project, {"instances": -1, "cores": -1, "ram": -1})
    token = identity_services.issue_token(
        username=cloud.member.username, password=PASSWORD, project=cloud.project.name
    )
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token.token}"
    fc = FaultCloud(plane, redis_server, web_url, session, image_id, cloud.project, hosts=dict(hosts))
    try:
        plane._launch("web", processes.web_argv(web_port, workers=2, threads=4), "")
        fc.launch_conductor()
        for host in hosts:
            fc.launch_agent(host)
        wait_hosts_up(tuple(hosts))
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(requests.RequestException):
                if session.get(f"{web_url}/api/v1/compute/flavors/", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the portal did not answer:\n{plane.logs()}")
            time.sleep(0.1)
        yield fc
    finally:
        shut_down(plane, django_db_blocker)
        redis_server.kill()


@pytest.fixture
def fault_cloud(request, cloud, django_db_blocker, tmp_path, settings):
    require_services()
    # What the cloud needs before the processes start: flavors, an image with its bytes.
    services.seed_flavors()
    admin = cloud.ctx(cloud.admin)
    image = services.create_image(admin, name="tiny", disk_format="qcow2", visibility="public")
    tag = uuid.uuid4().bytes
    chunks = (b"QFI\xfb" + tag + b"\0" * (MiB - 20) if i == 0 else b"\0" * MiB for i in range(IMAGE_MB))
    services.upload_image_data(admin, image, chunks)
    image.refresh_from_db()
    assert image.status == Image.ACTIVE
    hosts = dict.fromkeys(HOSTS, SIM_URI)
    try:
        with running_cloud(request, cloud, django_db_blocker, tmp_path, settings, str(image.pk), hosts) as fc:
            yield fc
    finally:
        # The image's bytes, in the portal's store and the hosts' caches: 48 MB each, every test.
        services.delete_image(admin, image)
        for host in HOSTS:
            shutil.rmtree(Path(settings.VAR_DIR) / "agent" / host / "images", ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    terminalreporter.section("fault injection: time from fault to every resource stable")
    for row in RESULTS:
        terminalreporter.write_line(json.dumps(row))
    out = Path(settings.VAR_DIR) / "faults-results.json"
    with contextlib.suppress(OSError):
        out.write_text(json.dumps(RESULTS, indent=1) + "\n")
        terminalreporter.write_line(f"(also in {out})")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the processes' logs (portal, conductor, agents) to the report."""
    report = yield
    plane = item.stash.get(PLANE_KEY, None)
    if report.failed and plane is not None:
        report.sections.append(("fault suite process logs", plane.logs()[-60000:]))
    return report
