"""Real worker processes for the integration tests: a conductor and host agents.

They run with the test process's broker (``CELERY_BROKER_URL``, or the embedded filesystem broker in
``$ZENITH_VAR_DIR/broker``) and the *test* database, so every test using them needs committed rows:
``pytest.mark.django_db(transaction=True)``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from celery import current_app
from django.conf import settings
from django.db import connection
from kombu import pools as kombu_pools

from tests import enrollment
from workers import processes

ROOT = Path(settings.BASE_DIR)
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
POLL = 0.05


def worker_database_url() -> str:
    """A DATABASE_URL for the test database (call after pytest-django created it)."""
    try:
        return processes.database_url(connection.settings_dict)
    except ValueError as exc:
        pytest.fail(f"worker processes cannot open the test database: {exc}")


def worker_environment() -> dict[str, str]:
    """The test process's environment, pointed at the test database and this run's var/broker dirs."""
    return processes.worker_environment(
        os.environ,
        database_url=worker_database_url(),
        broker_url=settings.CELERY_BROKER_URL,
        var_dir=settings.VAR_DIR,
        broker_dir=settings.BROKER_DIR,
        result_backend=settings.CELERY_RESULT_BACKEND,
    )


def clear_broker() -> None:
    """Drop messages (and results) left by earlier runs, so none of them reaches this run's workers."""
    url = settings.CELERY_BROKER_URL
    if url.startswith("redis"):
        import redis

        redis.Redis.from_url(url).flushdb()
    elif url.startswith("filesystem"):
        for sub in ("queue", "processed", "control"):
            folder = Path(settings.BROKER_DIR) / sub
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
    else:
        pytest.fail(f"the integration tests know how to clear redis and filesystem brokers, not {url}")
    # This process's pooled connections remember the queues they declared (kombu's declared_entities),
    # whose bindings were just dropped: start from new pools so they are declared again.
    kombu_pools.reset()
    app = current_app._get_current_object()
    app._pool = None
    app.amqp._producer_pool = None


def _signal_group(worker: Worker, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.proc.pid, sig)


@dataclass
class Worker:
    name: str
    argv: list[str]
    queue: str  # a queue this worker consumes, for the readiness probe
    log_path: Path
    proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class Plane:
    """The worker processes of one test module: start, probe, stop, and their logs."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.env = worker_environment()
        self.workers: dict[str, Worker] = {}
        self._simulated: dict[str, list[str]] = {}  # a multi-host agent's name -> its hosts
        self._starts = 0

    # --- processes -------------------------------------------------------------------------------

    def _launch(self, name: str, argv: list[str], queue: str) -> Worker:
        self._starts += 1
        log_path = self.log_dir / f"{self._starts:02d}-{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped with everything it started
            )
        worker = Worker(name, argv, queue, log_path, proc)
        self.workers[name] = worker
        return worker

    def launch_conductor(self) -> Worker:
        argv = processes.conductor_argv(name="conductor-test@%h", concurrency=4, loglevel="INFO")
        return self._launch("conductor", argv, "conductor")

    def launch_agent(
        self, host: str, libvirt_uri: str | None = None, roles: list[str] | None = None
    ) -> Worker:
        enrollment.enroll(host)  # as `make run` does: the conductor accepts enrolled hosts only
        argv = processes.agent_argv(host, libvirt_uri=libvirt_uri, roles=roles)
        return self._launch(f"agent-{host}", argv, f"compute.{host}")

    def launch_simulated_agent(self, count: int, host_prefix: str, concurrency: int | None = None) -> Worker:
        """One agent process serving ``count`` simulated hosts ``<host_prefix>1`` ... (``--simulate``);
        probed on its first host's queue. Its hosts are enrolled first (each signs with its own key)."""
        names = processes.simulated_host_names(count, host_prefix)
        enrollment.enroll(*names)
        self._simulated[f"simulated-{host_prefix}"] = names
        argv = processes.agent_argv(None, simulate=count, host_prefix=host_prefix, concurrency=concurrency)
        return self._launch(f"simulated-{host_prefix}", argv, f"compute.{host_prefix}1")

    def start(self, *launched: Worker) -> None:
        """Wait until every launched worker answered a real message on its own queue."""
        for worker in launched:
            self.wait_ready(worker)

    def wait_ready(self, worker: Worker, timeout: float = READY_TIMEOUT) -> dict:
        """Round trip through the broker: ``workers.agent.tasks.ping`` on the worker's queue.

        Every worker process registers that task (the Celery app autodiscovers workers.agent), and
        it stores a result, so this proves the worker consumes its queue, not just that it started.
        """
        result = current_app.send_task(
            "workers.agent.tasks.ping", kwargs={"nonce": f"ready-{uuid.uuid4()}"}, queue=worker.queue
        )
        deadline = time.monotonic() + timeout
        while not result.ready():
            if worker.proc.poll() is not None:
                raise RuntimeError(
                    f"{worker.name} exited with {worker.proc.returncode} before it was ready:\n{worker.log()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{worker.name} not ready after {timeout:.0f} s:\n{worker.log()}")
            time.sleep(POLL)
        answer = result.get(timeout=1)
        result.forget()
        if worker.name.startswith("agent-"):
            assert answer["host"] == worker.name.removeprefix("agent-"), answer
        if answer["pid"] != worker.pid:
            raise RuntimeError(
                f"{worker.name} (pid {worker.pid}): its queue {worker.queue} was answered by pid "
                f"{answer['pid']}; is another test run using the same broker ({settings.CELERY_BROKER_URL}, "
                f"{settings.BROKER_DIR})?"
            )
        return answer

    def stop(self, *names: str) -> None:
        """Warm shutdown (SIGTERM) of the workers' process groups at once; SIGKILL for any that lingers.

        An idle Celery worker on the filesystem transport takes ~3-4 s to shut down (its loop drains
        events with a 2 s timeout), so they are stopped in parallel.
        """
        workers = [self.workers.pop(name) for name in names or list(self.workers) if name in self.workers]
        enrollment.forget(*(w.name.removeprefix("agent-") for w in workers if w.name.startswith("agent-")))
        for worker in workers:
            enrollment.forget(*self._simulated.pop(worker.name, []))
        for worker in workers:
            _signal_group(worker, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            # The group may hold children that outlived their parent (none expected with --pool=threads).
            _signal_group(worker, signal.SIGKILL)
            worker.proc.wait(timeout=5)

    # --- diagnostics -----------------------------------------------------------------------------

    def logs(self) -> str:
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            parts.append(f"----- {path.name} -----\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def log_of(self, name: str) -> str:
        return self.workers[name].log()


@pytest.fixture(scope="module")
def plane(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """A conductor and agents ``host-a`` and ``host-b``, started once for the module."""
    log_dir = tmp_path_factory.mktemp("worker-logs")
    clear_broker()
    workers = Plane(log_dir)
    request.node.stash[PLANE_KEY] = workers
    try:
        launched = [
            workers.launch_conductor(),
            workers.launch_agent("host-a"),
            workers.launch_agent("host-b"),
        ]
        workers.start(*launched)
        yield workers
    finally:
        shut_down(workers, django_db_blocker)


PLANE_KEY = pytest.StashKey[Plane]()


def shut_down(workers: Plane, django_db_blocker) -> None:
    """Stop a module's workers, then drop the hosts they registered: a heartbeat handled between the
    last test's flush and the stop would otherwise leave a Host row for the next module's tests."""
    stopped = [name.removeprefix("agent-") for name in workers.workers if name.startswith("agent-")]
    workers.stop()
    from workers.models import Host, HostCredential

    with django_db_blocker.unblock():
        Host.objects.all().delete()
        HostCredential.objects.filter(host_name__in=stopped).delete()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the worker processes' logs to the report."""
    report = yield
    if report.failed:
        module = item.getparent(pytest.Module)
        workers = module.stash.get(PLANE_KEY, None) if module is not None else None
        if workers is not None:
            report.sections.append(("worker logs", workers.logs()))
    return report


@contextlib.contextmanager
def agent_plane_for(
    request, django_db_blocker, live_server, tmp_path_factory, host: str, roles: str = "compute"
):
    """A conductor and one agent carrying ``roles`` on libvirt's test driver, for a module of tests
    (API or browser), its portal the live server. Heartbeats every 3 s, not every second: the flush
    between tests (TRUNCATE) deadlocked once on PostgreSQL with a heartbeat's UPDATE."""
    from workers import processes

    clear_broker()
    workers = Plane(tmp_path_factory.mktemp("worker-logs"))
    workers.env.update(
        ZENITH_PORTAL_URL=live_server.url,
        ZENITH_HEARTBEAT_INTERVAL="3",
        ZENITH_POWER_SYNC="0",
        ZENITH_AGENT_ROLES=roles,
    )
    request.node.stash[PLANE_KEY] = workers
    try:
        workers.start(workers.launch_conductor(), workers.launch_agent(host, processes.simulated_host_uri()))
        yield workers
    finally:
        shut_down(workers, django_db_blocker)


def storage_plane_for(request, django_db_blocker, live_server, tmp_path_factory, host: str):
    """``agent_plane_for`` with the compute and storage roles (the volume tests)."""
    return agent_plane_for(request, django_db_blocker, live_server, tmp_path_factory, host, "compute,storage")
