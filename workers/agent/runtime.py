"""What an agent process knows about itself: its host name and hypervisor (set by ``manage.py agent``)."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
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


def host_name() -> str:
    return os.environ.get(HOST_ENV) or socket.gethostname()


def libvirt_uri() -> str:
    return os.environ.get(URI_ENV) or DEFAULT_URI


def roles() -> list[str]:
    """The roles this agent carries (``ZENITH_AGENT_ROLES``, comma-separated; default compute and
    storage): it consumes ``<role>.<host>`` for each and reports a heartbeat section for each."""
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


_BACKEND_KEYS = {"name", "type", "path", "source", "hosts", "auth_user", "secret_uuid", "shared"}


def storage_backends() -> list[BackendSpec]:
    """The storage backends of this agent (``ZENITH_STORAGE_BACKENDS``: a JSON list of objects with
    ``name``, ``type`` (dir, logical, rbd), ``path`` (dir: the directory), ``source`` (logical: the
    volume group; rbd: the Ceph pool), ``hosts`` (rbd monitors), ``auth_user``, ``secret_uuid``,
    ``shared``). Default: one ``dir`` backend ``local`` at ``volumes_path()``. Each gets a libvirt
    pool named after the host and what the pool is (its directory, volume group or Ceph pool), so
    no two agents' var dirs ever share one."""
    from .drivers.base import BackendSpec
    from .drivers.libvirt.storage import backend_identity, pool_name_for

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
