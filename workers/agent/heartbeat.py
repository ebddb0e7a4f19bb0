"""The agent's heartbeat: register the host with its capacity on start, then say "alive" periodically.

The conductor task is sent by name (``workers.tasks.host_heartbeat``): the agent imports no model.
``install()`` (called by ``manage.py agent``) starts the loop on Celery's ``worker_ready``
and stops it on ``worker_shutdown``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import asdict

from celery import current_app
from celery.signals import worker_ready, worker_shutdown

from .. import tasknames
from . import runtime, storage
from .drivers.base import HostInfo

log = logging.getLogger(__name__)

TASK = tasknames.HOST_HEARTBEAT
SYNC_TASK = tasknames.POWER_SYNC
EVENT_TASK = tasknames.POWER_EVENT
QUEUE = "conductor"
INTERVAL_ENV = "ZENITH_HEARTBEAT_INTERVAL"
DEFAULT_INTERVAL = 10.0
POWER_SYNC_ENV = "ZENITH_POWER_SYNC"

_stop = threading.Event()
_thread: threading.Thread | None = None
_listener: tuple[object, int] | None = None  # (driver, listener id) of the lifecycle events


def interval() -> float:
    """Seconds between heartbeats (``ZENITH_HEARTBEAT_INTERVAL``, default 10)."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


def power_sync_enabled() -> bool:
    """``ZENITH_POWER_SYNC=0`` turns power sync off for this agent: it forwards no lifecycle events and
    its periodic domain list feeds the drift view only. The conductor then learns a guest's state only
    from the answers to its own actions, which is how the integration tests check what each action's
    callback sets."""
    return os.environ.get(POWER_SYNC_ENV, "1") != "0"


def report(host: str, uri: str | None = None) -> HostInfo:
    """Read the host's capacity from libvirt and send it to the conductor: the host's roles and URI,
    and a section per role (``compute``: vCPUs, RAM, disk, hypervisor; ``storage``: its backends,
    from ``storage.report_section``). Returns the capacity read."""
    info = runtime.driver(uri).host_info()
    roles = runtime.roles()
    message: dict = {"uri": info.uri, "roles": roles}
    if "compute" in roles:
        message["compute"] = asdict(info)
    if "storage" in roles:
        message["storage"] = storage.report_section(host, runtime.driver(uri))
    current_app.send_task(TASK, kwargs={"host": host, "info": message}, queue=QUEUE)
    return info


def sync(host: str, uri: str | None = None) -> int:
    """Send the conductor every domain libvirt lists here (power sync and the drift view)."""
    domains = runtime.driver(uri).list_domains()
    current_app.send_task(
        SYNC_TASK, kwargs={"host": host, "domains": domains, "apply": power_sync_enabled()}, queue=QUEUE
    )
    return len(domains)


def _loop(host: str, uri: str, every: float, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            report(host, uri)
            sync(host, uri)
        except Exception:  # libvirt or the broker unavailable for a moment: try again next time
            log.exception("heartbeat of host %s failed", host)
        stop.wait(every)


def _listen(host: str, uri: str) -> None:
    """Forward libvirt's lifecycle events (a guest powering itself off, ...) to the conductor."""
    drv = runtime.driver(uri)
    listen = getattr(drv, "listen_events", None)
    if listen is None or not power_sync_enabled():
        return

    def forward(domain_uuid: str, instance_id: str | None, power_state: str, event: str) -> None:
        if not instance_id:
            return
        try:
            current_app.send_task(
                EVENT_TASK,
                kwargs={"host": host, "instance_id": instance_id, "power_state": power_state, "event": event},
                queue=QUEUE,
            )
        except Exception:  # the periodic sync catches what an event could not carry
            log.exception("could not forward a lifecycle event of %s", domain_uuid)

    global _listener
    try:
        _listener = (drv, listen(forward))
    except Exception:
        log.exception("lifecycle events unavailable on %s; relying on the periodic sync", uri)


def start(host: str | None = None, uri: str | None = None, every: float | None = None) -> threading.Thread:
    """Report now, then every ``every`` seconds, from a daemon thread, until ``stop()``."""
    global _thread
    stop()
    _stop.clear()
    _listen(host or runtime.host_name(), uri or runtime.libvirt_uri())
    _thread = threading.Thread(
        target=_loop,
        args=(host or runtime.host_name(), uri or runtime.libvirt_uri(), every or interval(), _stop),
        name="zenith-heartbeat",
        daemon=True,
    )
    _thread.start()
    return _thread


def stop(timeout: float = 5.0) -> None:
    global _thread, _listener
    _stop.set()
    if _listener is not None:
        drv, listener_id = _listener
        with contextlib.suppress(Exception):
            drv.unlisten_events(listener_id)
        _listener = None
    if _thread is not None and _thread is not threading.current_thread():
        _thread.join(timeout)
    _thread = None


def _on_worker_ready(sender=None, **_kwargs) -> None:
    start()


def _on_worker_shutdown(sender=None, **_kwargs) -> None:
    # Celery sends this once the pool has finished its tasks: nothing uses the connection any more.
    stop()
    runtime.close_driver()


def install() -> None:
    """Heartbeat from this worker process (only an agent calls this; the conductor has no host)."""
    worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="zenith-agent-heartbeat-start")
    worker_shutdown.connect(_on_worker_shutdown, weak=False, dispatch_uid="zenith-agent-heartbeat-stop")
