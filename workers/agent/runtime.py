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
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .drivers.libvirt_driver import LibvirtDriver

HOST_ENV = "ZENITH_AGENT_HOST"
URI_ENV = "ZENITH_LIBVIRT_URI"
DEFAULT_URI = "test:///default"
VAR_ENV = "ZENITH_VAR_DIR"
POOL_ENV = "ZENITH_LIBVIRT_POOL_PATH"
ROLES_ENV = "ZENITH_AGENT_ROLES"
DOMAIN_TYPE_ENV = "ZENITH_DOMAIN_TYPE"

_driver: LibvirtDriver | None = None
_driver_lock = threading.Lock()


class AgentHost:
    """One host served by this process (``--simulate``): its name, libvirt URI, roles, and its own
    hypervisor connection, opened on first use."""

    __slots__ = ("name", "uri", "roles", "_driver", "_lock")

    def __init__(self, name: str, uri: str, roles: list[str] | tuple[str, ...] = ("compute",)):
        self.name = name
        self.uri = uri
        self.roles = list(roles)
        self._driver: LibvirtDriver | None = None
        self._lock = threading.Lock()

    def driver(self) -> LibvirtDriver:
        with self._lock:
            if self._driver is None:
                from .drivers.libvirt_driver import LibvirtDriver, pool_name_for

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
    """The roles this agent carries (``ZENITH_AGENT_ROLES``, comma-separated; default compute):
    it consumes ``<role>.<host>`` for each and reports a heartbeat section for each."""
    host = _current.get()
    if host is not None:
        return list(host.roles)
    named = [r.strip() for r in os.environ.get(ROLES_ENV, "compute").split(",") if r.strip()]
    return named or ["compute"]


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
    from .drivers.libvirt_driver import pool_name_for

    return pool_name_for(pool_path(), host_name())


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
            from .drivers.libvirt_driver import LibvirtDriver

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
