"""The agent signs every message it publishes to the conductor with its host's key.

One hook on Celery's ``before_task_publish`` (installed by ``manage.py agent``) adds ``auth`` (see
``workers.hostauth``) to the keyword arguments of each message this process sends: heartbeats,
power syncs and events, progress reports, and also the answers of host tasks, which Celery publishes
here as the ``link`` callback (``transition_done(result, operation_id=..., ...)``) or errback
(``host_task_failed``). So every host task, present or future (storage's included), is answered
signed without doing anything itself.

The key is read from ``ZENITH_HOST_KEY_FILE`` (``{host}`` in it is replaced by the host's name), by
default ``$ZENITH_VAR_DIR/agent/<host>/host.key``, written by ``manage.py enroll_host``; it is read
again when the file changes (a rotation needs no restart). A process serving several hosts
(``--simulate``) signs as the host set by ``signing_as(host)`` around the work of that host, else as
runtime's current host: while a task runs, the host whose queue delivered it (``runtime``'s
contextvar, set by ``install_task_binding``), so its answer and errback are signed by that host. A
batch of heartbeats is not signed as one host: each entry carries its own host's ``auth``
(``sign_entry``).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from celery.signals import before_task_publish

from .. import hostauth, tasknames
from . import runtime

log = logging.getLogger(__name__)

_as_host: contextvars.ContextVar[str | None] = contextvars.ContextVar("zenith_signing_host", default=None)
_keys: dict[Path, tuple[float, bytes]] = {}
_lock = threading.Lock()
_warned: set[str] = set()


def key_path(host: str) -> Path:
    return hostauth.key_path(runtime.var_dir(), host)


def key_for(host: str) -> bytes:
    """The host's key, from its key file (re-read when the file changes). Raises OSError or
    HostAuthError when it has none or a bad one."""
    path = key_path(host)
    mtime = path.stat().st_mtime_ns
    with _lock:
        hit = _keys.get(path)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    key = hostauth.decode_key(hostauth.read_key_file(path))
    with _lock:
        _keys[path] = (mtime, key)
    return key


@contextlib.contextmanager
def signing_as(host: str) -> Iterator[None]:
    """Sign what is published inside as ``host`` (an agent process serving several hosts)."""
    token = _as_host.set(host)
    try:
        yield
    finally:
        _as_host.reset(token)


def current_host() -> str:
    return _as_host.get() or runtime.host_name()


def sign(task: str, args=(), kwargs: dict | None = None, host: str | None = None) -> dict:
    """The ``auth`` of one message of ``host`` (default: this agent's)."""
    host = host or current_host()
    return hostauth.sign(key_for(host), host, task, args, kwargs or {})


def sign_body(task: str, body, host: str | None = None) -> bool:
    """Add ``auth`` to a Celery message body (protocol 2: ``(args, kwargs, embed)``; protocol 1: a
    dict) in place. False (and a logged error) when this host has no usable key."""
    if isinstance(body, dict):  # protocol 1
        args, kwargs = body.setdefault("args", []), body.setdefault("kwargs", {})
    elif isinstance(body, (tuple, list)) and len(body) >= 2 and isinstance(body[1], dict):
        args, kwargs = body[0], body[1]
    else:
        return False
    host = host or current_host()
    try:
        kwargs[hostauth.AUTH_KWARG] = sign(task, args, kwargs, host)
    except (OSError, hostauth.HostAuthError) as exc:
        _cannot_sign(host, exc)
        return False
    _warned.discard(host)
    return True


def sign_entry(task: str, kwargs: dict, host: str) -> dict | None:
    """The ``auth`` of one entry of a batch (``{"host", "info"}`` of a heartbeat, verified as the
    message ``task`` with those keyword arguments), signed by ``host``; None (and a logged error)
    when that host has no usable key."""
    try:
        auth = sign(task, (), kwargs, host)
    except (OSError, hostauth.HostAuthError) as exc:
        _cannot_sign(host, exc)
        return None
    _warned.discard(host)
    return auth


def _cannot_sign(host: str, exc: Exception) -> None:
    if host not in _warned:
        _warned.add(host)
        log.error(
            "host %s cannot sign its messages (%s): the conductor refuses them. Enroll it with "
            "`manage.py enroll_host %s` (key file %s, or set %s).",
            host,
            exc,
            host,
            key_path(host),
            hostauth.KEY_FILE_ENV,
        )


# Messages whose entries each carry their own host's signature: the message is not signed as one host.
SELF_SIGNED = frozenset({tasknames.HOST_HEARTBEATS})


def _on_before_publish(sender=None, body=None, **_kwargs) -> None:
    if sender and str(sender) not in SELF_SIGNED:
        sign_body(str(sender), body)


def install() -> None:
    """Sign everything this process publishes (only an agent calls this)."""
    before_task_publish.connect(_on_before_publish, weak=False, dispatch_uid="zenith-agent-signing")


def uninstall() -> None:
    before_task_publish.disconnect(dispatch_uid="zenith-agent-signing")


def has_key(host: str) -> bool:
    try:
        key_for(host)
    except (OSError, hostauth.HostAuthError):
        return False
    return True
