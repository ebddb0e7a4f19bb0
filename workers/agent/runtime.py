"""What an agent process knows about itself: its host name and hypervisor (set by ``manage.py agent``)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .drivers.libvirt import LibvirtDriver

HOST_ENV = "ZENITH_AGENT_HOST"
URI_ENV = "ZENITH_LIBVIRT_URI"
DEFAULT_URI = "test:///default"
VAR_ENV = "ZENITH_VAR_DIR"
POOL_ENV = "ZENITH_LIBVIRT_POOL_PATH"
ROLES_ENV = "ZENITH_AGENT_ROLES"
DOMAIN_TYPE_ENV = "ZENITH_DOMAIN_TYPE"

_driver: LibvirtDriver | None = None
_driver_lock = threading.Lock()


def host_name() -> str:
    return os.environ.get(HOST_ENV) or socket.gethostname()


def libvirt_uri() -> str:
    return os.environ.get(URI_ENV) or DEFAULT_URI


def roles() -> list[str]:
    """The roles this agent carries (``ZENITH_AGENT_ROLES``, comma-separated; default compute):
    it consumes ``<role>.<host>`` for each and reports a heartbeat section for each."""
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
    from .drivers.libvirt import pool_name_for

    return pool_name_for(pool_path(), host_name())


def driver(uri: str | None = None) -> LibvirtDriver:
    """The one hypervisor driver of this process (libvirt's test driver keeps its state per connection).

    ``uri`` defaults to the agent's (``--libvirt-uri``); asking for another one replaces it.
    """
    global _driver
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
