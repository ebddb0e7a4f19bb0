"""What an agent process knows about itself: its host name and hypervisor (set by ``manage.py agent``).

One agent process serves one host, or (``manage.py agent --simulate N``) many simulated hosts: each
an :class:`AgentHost` with its own name, roles, libvirt connection (the test driver keeps its state
per connection) and directory. While a task runs, the host it was sent to (the ``<role>.<host>`` queue
it came from: ``install_task_binding``) is the *current* host, so ``host_name()``, ``roles()``, ``driver()``
and the paths below answer for that host, and the tasks need not know how many hosts the process has.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .drivers.base import BackendSpec
    from .drivers.libvirt import LibvirtDriver

HOST_ENV = "ZENITH_AGENT_HOST"
URI_ENV = "ZENITH_LIBVIRT_URI"
DEFAULT_URI = "test:///default"
VAR_ENV = "ZENITH_VAR_DIR"
POOL_ENV = "ZENITH_LIBVIRT_POOL_PATH"
ROLES_ENV = "ZENITH_AGENT_ROLES"
DOMAIN_TYPE_ENV = "ZENITH_DOMAIN_TYPE"
BACKENDS_ENV = "ZENITH_STORAGE_BACKENDS"
DEFAULT_ROLES = ("compute", "storage")

_driver: LibvirtDriver | None = None
_driver_lock = threading.Lock()


class AgentHost:
    """One host served by this process (``--simulate``): its name, libvirt URI, roles, and its own
    hypervisor connection, opened on first use."""

    __slots__ = ("name", "uri", "roles", "_driver", "_lock")

    def __init__(self, name: str, uri: str, roles: list[str] | tuple[str, ...] = DEFAULT_ROLES):
        self.name = name
        self.uri = uri
        self.roles = list(roles)
        self._driver: LibvirtDriver | None = None
        self._lock = threading.Lock()

    def driver(self) -> LibvirtDriver:
        with self._lock:
            if self._driver is None:
                from .drivers.libvirt import LibvirtDriver, pool_name_for

                path = os.path.abspath(str(var_dir() / "agent" / self.name / "pool"))
                self._driver = LibvirtDriver(
                    self.uri,
                    domain_type=os.environ.get(DOMAIN_TYPE_ENV) or "auto",
                    pool_name=pool_name_for(path, self.name),
                    pool_path=path,
                )
            return self._driver

    def close(self) -> None:
        with self._lock:
            if self._driver is not None:
                self._driver.close()
                self._driver = None

    def __repr__(self) -> str:
        return f"AgentHost({self.name!r}, {self.uri!r}, {self.roles!r})"


_hosts: dict[str, AgentHost] = {}  # the hosts of a multi-host agent, by name (empty: one host, from env)
_current: contextvars.ContextVar[AgentHost | None] = contextvars.ContextVar("zenith_agent_host", default=None)


def configure_hosts(hosts: list[AgentHost]) -> None:
    """Serve ``hosts`` from this process (``manage.py agent --simulate``); an empty list: one host."""
    close_hosts()
    _hosts.update((h.name, h) for h in hosts)


def served_hosts() -> list[AgentHost]:
    """The hosts of a multi-host agent, in order; empty for a one-host agent."""
    return list(_hosts.values())


def multi_host() -> bool:
    return bool(_hosts)


def current_host() -> AgentHost | None:
    return _current.get()


@contextlib.contextmanager
def serving(host: AgentHost) -> Iterator[AgentHost]:
    """Run the block as ``host``: ``host_name()``, ``roles()``, ``driver()``... answer for it."""
    token = _current.set(host)
    try:
        yield host
    finally:
        _current.reset(token)


def host_of_queue(queue: str | None) -> AgentHost | None:
    """The served host a ``<role>.<host>`` queue (or routing key) belongs to; None when none is."""
    if not queue or not _hosts:
        return None
    role, _, name = queue.partition(".")
    host = _hosts.get(name)
    return host if host is not None and role in host.roles else None


# Instances a host task is acting on (spawn, lifecycle action), and until when their libvirt events
# say nothing the task's own answer does not already: instance id -> monotonic deadline.
ACTION_EVENT_GRACE = 2.0
_acting: dict[str, float] = {}
_acting_lock = threading.Lock()


@contextlib.contextmanager
def acting_on(instance_id: str) -> Iterator[None]:
    """While the block runs, and ``ACTION_EVENT_GRACE`` seconds after, ``acted_on(instance_id)`` is
    true: the lifecycle events of the guest are the ones this action causes (a spawn's "started"),
    which its answer to the conductor reports (and the conductor ignores events of an instance with a
    task in progress anyway). Not forwarding them spares the conductor one task per action."""
    if not instance_id:
        yield
        return
    with _acting_lock:
        _acting[instance_id] = float("inf")
    try:
        yield
    finally:
        with _acting_lock:
            now = time.monotonic()
            _acting[instance_id] = now + ACTION_EVENT_GRACE
            for stale in [i for i, until in _acting.items() if until < now]:
                del _acting[stale]


def acted_on(instance_id: str | None) -> bool:
    if not instance_id:
        return False
    with _acting_lock:
        return _acting.get(instance_id, 0.0) >= time.monotonic()


def install_task_binding() -> None:
    """In a multi-host agent, run each task as the host whose queue delivered it (Celery's
    ``task_prerun`` runs in the thread that then runs the task; ``task_postrun`` clears it)."""
    from celery.signals import task_postrun, task_prerun

    def bind(sender=None, task=None, **_kwargs) -> None:
        request = getattr(task, "request", None)
        _current.set(host_of_queue((getattr(request, "delivery_info", None) or {}).get("routing_key")))

    def clear(**_kwargs) -> None:
        _current.set(None)

    task_prerun.connect(bind, weak=False, dispatch_uid="zenith-agent-bind-host")
    task_postrun.connect(clear, weak=False, dispatch_uid="zenith-agent-unbind-host")


def host_name() -> str:
    host = _current.get()
    if host is not None:
        return host.name
    return os.environ.get(HOST_ENV) or socket.gethostname()


def libvirt_uri() -> str:
    host = _current.get()
    if host is not None:
        return host.uri
    return os.environ.get(URI_ENV) or DEFAULT_URI


def roles() -> list[str]:
    """The roles of the current host (a multi-host agent's: those given to the process), else this
    agent's (``ZENITH_AGENT_ROLES``, comma-separated; default compute and storage): it consumes
    ``<role>.<host>`` for each and reports a heartbeat section for each."""
    host = _current.get()
    if host is not None:
        return list(host.roles)
    named = [r.strip() for r in os.environ.get(ROLES_ENV, ",".join(DEFAULT_ROLES)).split(",") if r.strip()]
    return named or list(DEFAULT_ROLES)


def var_dir() -> Path:
    return Path(os.environ.get(VAR_ENV) or "var").resolve()


def host_dir() -> Path:
    """This host's working directory: ``$ZENITH_VAR_DIR/agent/<host>`` (image cache, console logs)."""
    return var_dir() / "agent" / host_name()


def console_log_path(instance_id: str) -> str:
    """Where a guest's serial console is logged on this host."""
    return str(host_dir() / "console" / f"{instance_id}.log")


def pool_path() -> str:
    """The directory of the agent's libvirt ``dir`` pool (``ZENITH_LIBVIRT_POOL_PATH``)."""
    return os.path.abspath(os.environ.get(POOL_ENV) or str(host_dir() / "pool"))


def pool_name() -> str:
    """The name of the agent's pool: its host name and a digest of its directory, so that no two
    agents (two hosts, or two checkouts' var dirs) on one libvirtd ever share one."""
    from .drivers.libvirt import pool_name_for

    return pool_name_for(pool_path(), host_name())


def volumes_path() -> str:
    """The directory of the default ``local`` storage backend: ``<host dir>/volumes``, beside (not
    inside) the instance-disk pool."""
    return str(host_dir() / "volumes")


class BackendConfigError(ValueError):
    """``ZENITH_STORAGE_BACKENDS`` is not a list of backends."""


_BACKEND_KEYS = {"name", "type", "path", "source", "hosts", "auth_user", "secret_uuid", "shared", "format"}


def storage_backends() -> list[BackendSpec]:
    """The storage backends of this agent (``ZENITH_STORAGE_BACKENDS``: a JSON list of objects with
    ``name``, ``type`` (dir, logical, rbd), ``path`` (dir: the directory), ``source`` (logical: the
    volume group; rbd: the Ceph pool), ``hosts`` (rbd monitors), ``auth_user``, ``secret_uuid``,
    ``shared``, ``format`` (dir: "qcow2", the default, or "raw")). Default: one ``dir`` backend
    ``local`` at ``volumes_path()``. Each gets a libvirt pool named after the host and what the pool
    is (its directory, volume group or Ceph pool), so no two agents' var dirs ever share one."""
    from .drivers.base import BackendSpec
    from .drivers.libvirt.storage import pool_name_for
    from .drivers.libvirt.volumes import backend_identity

    raw = os.environ.get(BACKENDS_ENV, "").strip()
    try:
        items = json.loads(raw) if raw else [{"name": "local", "type": "dir"}]
    except ValueError as exc:
        raise BackendConfigError(f"{BACKENDS_ENV} is not JSON: {exc}") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise BackendConfigError(f"{BACKENDS_ENV} must be a JSON list of objects")
    backends, names = [], set()
    for item in items:
        unknown = sorted(set(item) - _BACKEND_KEYS)
        name, kind = str(item.get("name") or ""), str(item.get("type") or "dir")
        if unknown or not name or name in names or kind not in ("dir", "logical", "rbd"):
            raise BackendConfigError(
                f"{BACKENDS_ENV}: backend {item!r} needs a unique name and a type dir, logical or rbd"
                + (f"; unknown keys {', '.join(unknown)}" if unknown else "")
            )
        if kind != "dir" and not item.get("source"):
            raise BackendConfigError(f"{BACKENDS_ENV}: backend {name!r} ({kind}) needs a source")
        fmt = str(item.get("format") or "")
        if fmt not in ("", "raw", "qcow2") or (kind != "dir" and fmt == "qcow2"):
            raise BackendConfigError(
                f"{BACKENDS_ENV}: backend {name!r} ({kind}) has format {fmt!r}: a dir pool holds qcow2 "
                "or raw volumes, the others raw only"
            )
        names.add(name)
        path = str(item.get("path") or "")
        if kind == "dir":
            path = os.path.abspath(path or (volumes_path() if name == "local" else str(host_dir() / name)))
        spec = BackendSpec(
            name=name,
            type=kind,
            path=path,
            source=str(item.get("source") or ""),
            hosts=tuple(str(h) for h in item.get("hosts") or ()),
            auth_user=str(item.get("auth_user") or ""),
            secret_uuid=str(item.get("secret_uuid") or ""),
            shared=bool(item.get("shared", kind == "rbd")),
            format=fmt,
        )
        backends.append(
            dataclasses.replace(spec, pool_name=pool_name_for(backend_identity(spec), host_name()))
        )
    return backends


def driver(uri: str | None = None) -> LibvirtDriver:
    """The one hypervisor driver of this process (libvirt's test driver keeps its state per connection).

    ``uri`` defaults to the agent's (``--libvirt-uri``); asking for another one replaces it.
    """
    global _driver
    host = _current.get()
    if host is not None and (uri is None or uri == host.uri):
        return host.driver()
    uri = uri or libvirt_uri()
    with _driver_lock:
        if _driver is None or _driver.uri != uri:
            from .drivers.libvirt import LibvirtDriver

            if _driver is not None:
                _driver.close()
            _driver = LibvirtDriver(
                uri,
                domain_type=os.environ.get(DOMAIN_TYPE_ENV) or "auto",
                pool_name=pool_name(),
                pool_path=pool_path(),
            )
        return _driver


def close_driver() -> None:
    """Close this process's hypervisor connection (the agent's shutdown). A virConnect still open when
    the interpreter exits is closed by its ``__del__`` after libvirt's C module is already torn down,
    which prints ``TypeError: 'NoneType' object is not callable`` on every stop."""
    global _driver
    with _driver_lock:
        if _driver is not None:
            _driver.close()
            _driver = None
    for host in list(_hosts.values()):
        host.close()


def close_hosts() -> None:
    """Close every served host's connection and forget the hosts."""
    for host in list(_hosts.values()):
        host.close()
    _hosts.clear()
