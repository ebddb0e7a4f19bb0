"""What the benchmarks share: a private var dir and database, the worker processes and the portal under
gunicorn (command lines from ``workers.processes``), an HTTP client, percentiles.

A benchmark owns its database and broker: ``prepare()`` drops and recreates them, so it refuses a
PostgreSQL database whose name lacks "bench" and a Redis database 0. Embedded defaults: SQLite and the
filesystem broker in ``var/bench-<name>``.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workers import processes  # noqa: E402  (needs ROOT on the path; imports nothing of Django)

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


# --- database and broker ---------------------------------------------------------------------------


def _reset_database() -> None:
    import dj_database_url

    var_dir = Path(os.environ["ZENITH_VAR_DIR"]).resolve()
    url = os.environ.get("DATABASE_URL")
    if not url:
        for suffix in ("", "-wal", "-shm", "-journal"):
            (var_dir / f"zenith.sqlite3{suffix}").unlink(missing_ok=True)
        return
    db = dj_database_url.parse(url)
    if db["ENGINE"] == "django.db.backends.sqlite3":
        path = Path(db["NAME"]).resolve()
        if var_dir not in path.parents:
            sys.exit(f"bench: the SQLite database must live in {var_dir} (it is deleted): {path}")
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    if "bench" not in db["NAME"]:
        sys.exit(
            f"bench: refusing to drop database {db['NAME']!r}: use one named *bench* (e.g. zenith_bench)"
        )
    import psycopg2

    conn = psycopg2.connect(
        dbname="postgres",
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{db["NAME"]}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{db["NAME"]}"')
    conn.close()


def _clear_broker(settings) -> None:
    url = settings.CELERY_BROKER_URL
    if url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(url)
        if client.connection_pool.connection_kwargs.get("db", 0) == 0:
            sys.exit("bench: refusing to flush Redis database 0: give CELERY_BROKER_URL a database, e.g. /12")
        client.flushdb()
    elif url.startswith("filesystem"):
        for sub in ("queue", "processed", "control"):
            folder = Path(settings.BROKER_DIR) / sub
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
    else:
        sys.exit(f"bench: knows how to clear redis and filesystem brokers, not {url}")


def prepare(name: str, *, fresh: bool = True):
    """Private var dir, empty database (migrated), empty broker; Django set up. Returns settings."""
    os.environ.setdefault("ZENITH_VAR_DIR", str(ROOT / "var" / f"bench-{name}"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    Path(os.environ["ZENITH_VAR_DIR"]).mkdir(parents=True, exist_ok=True)
    if fresh:
        _reset_database()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    _clear_broker(settings)
    return settings


def setup_label(settings) -> dict:
    return {
        "broker": settings.CELERY_BROKER_URL.split(":")[0],
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "cpus": os.cpu_count(),
    }


def bench_user(password: str = "bench-password-1"):
    """A project ``bench`` with a member ``bench`` and unlimited quotas. Returns (user, project, password)."""
    from identity import quotas, services
    from identity.context import system_context
    from identity.models import Role

    ctx = system_context()
    project = services.create_project(ctx, name="bench", description="benchmarks")
    user = services.create_user(ctx, username="bench", password=password)
    services.assign_role(ctx, user=user, project=project, role=Role.objects.get(name=Role.MEMBER))
    quotas.set_limits(project, {"instances": -1, "cores": -1, "ram": -1})
    return user, project, password


def seed_compute():
    """Flavors (m1.*) and the public demo image (an empty 1 GiB qcow2). Returns the image."""
    from django.db import transaction

    from compute import services
    from compute.models import Image

    services.seed_flavors()
    with transaction.atomic():
        services.seed_images()
    return Image.objects.get(name=services.DEMO_IMAGE_NAME)


# --- processes ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Proc:
    name: str
    queue: str | None  # for the readiness probe (None: the web server)
    proc: subprocess.Popen
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


class Plane:
    """The portal, a conductor and agents, as separate processes; all stopped on exit or failure."""

    def __init__(self, settings, *, heartbeat_interval: float | None = None):
        self.settings = settings
        self.log_dir = Path(settings.VAR_DIR) / "logs"
        shutil.rmtree(self.log_dir, ignore_errors=True)
        self.log_dir.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = processes.worker_environment(
            os.environ,
            database_url=processes.database_url(settings.DATABASES["default"]),
            broker_url=settings.CELERY_BROKER_URL,
            var_dir=settings.VAR_DIR,
            broker_dir=settings.BROKER_DIR,
            result_backend=settings.CELERY_RESULT_BACKEND,
            portal_url=self.url,
            heartbeat_interval=heartbeat_interval,
        )
        self.procs: list[Proc] = []
        atexit.register(self.stop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        self.stop()
        sys.exit(128 + signum)

    def _launch(self, name: str, argv: list[str], queue: str | None) -> Proc:
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        launched = Proc(name, queue, proc, log_path)
        self.procs.append(launched)
        return launched

    def web(self, workers: int = 2, threads: int = 4) -> Proc:
        return self._launch("web", processes.web_argv(self.port, workers=workers, threads=threads), None)

    def conductor(self, concurrency: int = 4) -> Proc:
        argv = processes.conductor_argv(
            name="bench-conductor@%h", concurrency=concurrency, loglevel="WARNING"
        )
        return self._launch("conductor", argv, "conductor")

    def agent(self, host: str, concurrency: int | None = None, libvirt_uri: str | None = None) -> Proc:
        from workers import hostauth, services

        # Enrolled as `make run` does: the conductor accepts signed messages of enrolled hosts only.
        services.enroll_host(host, key_file=hostauth.key_path(self.settings.VAR_DIR, host))
        argv = processes.agent_argv(
            host,
            libvirt_uri=libvirt_uri or processes.simulated_host_uri(),
            concurrency=concurrency,
            loglevel="WARNING",
        )
        return self._launch(f"agent-{host}", argv, f"compute.{host}")

    def simulated_agents(
        self, count: int, host_prefix: str = "sim-", concurrency: int | None = None, name: str | None = None
    ) -> Proc:
        """One agent process serving ``count`` simulated hosts ``<host_prefix>1`` ... (``--simulate``),
        enrolled first as ``manage.py enroll_host --simulate count --host-prefix host_prefix`` does."""
        from workers import hostauth, services

        services.enroll_hosts(
            processes.simulated_host_names(count, host_prefix),
            key_file_for=lambda name: hostauth.key_path(self.settings.VAR_DIR, name),
        )
        argv = processes.agent_argv(
            None, simulate=count, host_prefix=host_prefix, concurrency=concurrency, loglevel="WARNING"
        )
        return self._launch(name or f"agent-sim-{host_prefix}", argv, f"compute.{host_prefix}1")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Every worker answered a ping on its own queue; the web server answers HTTP."""
        from celery import current_app

        deadline = time.monotonic() + timeout
        pending = {}
        for p in self.procs:
            if p.queue is not None:
                pending[p.name] = (
                    p,
                    current_app.send_task(
                        "workers.agent.tasks.ping", kwargs={"nonce": f"ready-{uuid.uuid4()}"}, queue=p.queue
                    ),
                )
        web = next((p for p in self.procs if p.queue is None), None)
        while pending or web is not None:
            for name, (p, result) in list(pending.items()):
                if result.ready():
                    answer = result.get(timeout=1)
                    result.forget()
                    if answer["pid"] != p.proc.pid:
                        raise RuntimeError(f"{name}: queue {p.queue} answered by another process {answer}")
                    del pending[name]
            if web is not None:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                    web = None
            for p in self.procs:
                if p.proc.poll() is not None:
                    raise RuntimeError(f"{p.name} exited with {p.proc.returncode}:\n{p.log_tail()}")
            if time.monotonic() > deadline:
                late = list(pending) + (["web"] if web else [])
                raise RuntimeError(f"not ready after {timeout:.0f} s: {late}")
            time.sleep(0.05)

    def wait_hosts(self, names, timeout: float = READY_TIMEOUT) -> None:
        from workers.models import Host

        deadline = time.monotonic() + timeout
        while Host.objects.up().filter(name__in=list(names), enabled=True).count() < len(names):
            if time.monotonic() > deadline:
                raise RuntimeError(f"hosts not registered after {timeout:.0f} s")
            time.sleep(0.1)

    def memory(self) -> dict[str, dict]:
        """Resident memory of each launched process and its children (Linux /proc), in MB: ``rss``
        (counts pages shared between processes once per process, e.g. gunicorn's workers) and
        ``pss`` (shared pages divided among their sharers: what adding it up means)."""
        groups: dict[int, str] = {p.proc.pid: p.name for p in self.procs}
        used: dict[str, dict] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                name = groups.get(int(fields[2]))
                if name is None:
                    continue
                rollup = (stat.parent / "smaps_rollup").read_text()
            except (OSError, IndexError):
                continue
            kb = {}
            for line in rollup.splitlines():
                key, _, rest = line.partition(":")
                if key in ("Rss", "Pss"):
                    kb[key] = int(rest.split()[0])
            entry = used.setdefault(name, {"rss_mb": 0.0, "pss_mb": 0.0, "processes": 0})
            entry["rss_mb"] += kb.get("Rss", 0) / 1024
            entry["pss_mb"] += kb.get("Pss", 0) / 1024
            entry["processes"] += 1
        return {
            name: {**e, "rss_mb": round(e["rss_mb"], 1), "pss_mb": round(e["pss_mb"], 1)}
            for name, e in sorted(used.items())
        }

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each role's processes: web, conductor, agents
        (summed over every process of each group, children included; Linux /proc, else empty)."""
        ticks = os.sysconf("SC_CLK_TCK")
        groups = {p.proc.pid: ("agents" if p.name.startswith("agent-") else p.name) for p in self.procs}
        used: dict[str, float] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            role = groups.get(int(fields[2]))  # process group id
            if role is not None:
                used[role] = used.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
        return {role: round(value, 1) for role, value in sorted(used.items())}

    def stop(self) -> None:
        procs, self.procs = self.procs, []
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.proc.wait(timeout=5)


# --- HTTP -------------------------------------------------------------------------------------------


class Api:
    """A keep-alive JSON client of the portal, one connection per thread."""

    def __init__(self, base_url: str, token: str | None = None):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.token = token
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        return conn

    def request(self, method: str, path: str, body=None, headers=None) -> tuple[int, object]:
        head = {"Accept": "application/json"}
        if self.token:
            head["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            head["Content-Type"] = "application/json"
        head.update(headers or {})
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request(method, path, body=data, headers=head)
                response = conn.getresponse()
                raw = response.read()
                break
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            self._local.conn = None
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        return response.status, payload

    def login(self, username: str, password: str, project: str) -> None:
        status, body = self.request(
            "POST", "/api/v1/auth/tokens", {"username": username, "password": password, "project": project}
        )
        if status != 201:
            raise RuntimeError(f"token: {status} {body}")
        self.token = body["token"]


# --- figures ------------------------------------------------------------------------------------------


def pct(samples, q: float) -> float:
    data = sorted(samples)
    if not data:
        return float("nan")
    return data[min(len(data) - 1, round(q * (len(data) - 1)))]


def summary(samples, unit: str = "ms") -> dict:
    """p50/p95/max (and mean) of ``samples`` rounded to 0.1."""
    if not samples:
        return {}
    return {
        f"p50_{unit}": round(statistics.median(samples), 1),
        f"p95_{unit}": round(pct(samples, 0.95), 1),
        f"max_{unit}": round(max(samples), 1),
        f"mean_{unit}": round(statistics.fmean(samples), 1),
    }


def load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages (what else was running)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def emit(result: dict) -> None:
    print(json.dumps({**result, "load_average": load_average()}))
