"""Command lines and environment of Zenith's worker processes: a conductor and a host agent.

Used by whatever starts them outside of a Procfile (the integration tests, the benchmarks). Pure
functions over plain values: no Django settings or models are read here, so a caller that has not
set Django up (or set it up for another database) can use them.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
# A simulated 16-CPU, 64 GiB host for libvirt's test driver (see the file's comment).
SIMHOST_XML = ROOT / "workers" / "agent" / "simhost.xml"
AGENT_HOST_ENV = "ZENITH_AGENT_HOST"


def simulated_host_uri(xml: Path = SIMHOST_XML) -> str:
    """The libvirt URI of a simulated host described by ``xml`` (test driver, no daemon)."""
    return f"test://{Path(xml).resolve()}"


def celery_command(python: str | None = None) -> list[str]:
    """How to run Celery with ``python`` (its virtualenv's ``celery`` script when there is one)."""
    python = python or sys.executable
    script = Path(python).parent / "celery"
    return [str(script)] if script.exists() else [python, "-m", "celery"]


def conductor_argv(
    *,
    name: str = "conductor@%h",
    concurrency: int = 4,
    loglevel: str = "INFO",
    beat: bool = False,
    python: str | None = None,
) -> list[str]:
    """A conductor: the Celery worker of the ``conductor`` queue (threads: it mostly waits on the DB)."""
    argv = [
        *celery_command(python),
        "-A",
        "portal",
        "worker",
        "-Q",
        "conductor",
        "--pool=threads",
        "-c",
        str(concurrency),
        "-n",
        name,
        "--without-gossip",
        "--without-mingle",
        f"--loglevel={loglevel}",
    ]
    if beat:
        argv.append("--beat")
    return argv


def agent_argv(
    host: str | None,
    *,
    libvirt_uri: str | None = None,
    concurrency: int | None = None,
    loglevel: str | None = None,
    python: str | None = None,
    simulate: int | None = None,
    host_prefix: str = "sim-",
    roles: list[str] | tuple[str, ...] | None = None,
) -> list[str]:
    """The agent of compute host ``host`` (``manage.py agent``, run from the repository root); with
    ``simulate``, one agent of that many simulated hosts ``<host_prefix>1`` ... (``host`` None);
    ``roles`` (default: the command's, compute and storage) the queues it consumes."""
    argv = [python or sys.executable, "manage.py", "agent"]
    if simulate:
        argv += ["--simulate", str(simulate), "--host-prefix", host_prefix]
    else:
        argv += ["--host", host]
    if libvirt_uri is not None:
        argv += ["--libvirt-uri", libvirt_uri]
    if roles is not None:
        argv += ["--roles", ",".join(roles)]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    if loglevel is not None:
        argv.append(f"--loglevel={loglevel}")
    return argv


def simulated_host_names(count: int, host_prefix: str = "sim-") -> list[str]:
    """The names ``manage.py agent --simulate count --host-prefix host_prefix`` gives its hosts."""
    return [f"{host_prefix}{n}" for n in range(1, count + 1)]


def web_argv(port: int, *, workers: int = 2, threads: int = 4, python: str | None = None) -> list[str]:
    """The portal under gunicorn on 127.0.0.1:``port`` (as in the Procfile, without an access log)."""
    python = python or sys.executable
    script = Path(python).parent / "gunicorn"
    prefix = [str(script)] if script.exists() else [python, "-m", "gunicorn"]
    return [
        *prefix,
        "portal.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--log-level",
        "warning",
    ]


def database_url(settings_dict: Mapping) -> str:
    """A ``DATABASE_URL`` naming the database of a Django ``DATABASES`` entry (SQLite file or
    PostgreSQL), so that child processes open the very database the caller uses."""
    engine = settings_dict["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        name = str(settings_dict["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            raise ValueError("worker processes need a file-based SQLite database, not an in-memory one")
        return f"sqlite:///{Path(name).resolve()}"
    if engine == "django.db.backends.postgresql":
        auth = quote(settings_dict.get("USER") or "", safe="")
        if settings_dict.get("PASSWORD"):
            auth += ":" + quote(settings_dict["PASSWORD"], safe="")
        host = settings_dict.get("HOST") or "localhost"
        port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
        return f"postgres://{auth}{'@' if auth else ''}{host}{port}/{quote(settings_dict['NAME'], safe='')}"
    raise ValueError(f"no DATABASE_URL for database engine {engine}")


def worker_environment(
    base: Mapping[str, str],
    *,
    database_url: str,
    broker_url: str,
    var_dir: Path | str,
    broker_dir: Path | str | None = None,
    result_backend: str | None = None,
    portal_url: str | None = None,
    heartbeat_interval: float | None = None,
) -> dict[str, str]:
    """``base`` (usually ``os.environ``) pointed at one database, broker and var directory.

    Relative paths (the var and broker dirs, a ``file://`` result backend) are made absolute: the
    children may resolve them from another working directory. A host name inherited from the caller
    is dropped (each agent gets its own with ``--host``).
    """
    env = dict(base)
    env.pop(AGENT_HOST_ENV, None)
    env.update(
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        ZENITH_VAR_DIR=str(Path(var_dir).resolve()),
        DJANGO_SETTINGS_MODULE="portal.settings",
        PYTHONUNBUFFERED="1",
    )
    if broker_dir is not None:
        env["ZENITH_BROKER_DIR"] = str(Path(broker_dir).resolve())
    if result_backend and result_backend.startswith("file://"):
        result_backend = f"file://{Path(result_backend.removeprefix('file://')).resolve()}"
    if result_backend:
        env["CELERY_RESULT_BACKEND"] = result_backend
    if portal_url is not None:
        env["ZENITH_PORTAL_URL"] = portal_url
    if heartbeat_interval is not None:
        env["ZENITH_HEARTBEAT_INTERVAL"] = f"{heartbeat_interval:g}"
    return env
