"""The agent's heartbeat: register the host with its capacity on start, then say "alive" periodically.

The conductor task is sent by name (``workers.tasks.host_heartbeat``): the agent imports no model.
``install()`` (called by ``manage.py agent``) starts the loop on Celery's ``worker_ready``
and stops it on ``worker_shutdown``.

A multi-host agent (``--simulate``, ``runtime.served_hosts()``) runs one loop for all its hosts: their
heartbeats in batches (``workers.tasks.host_heartbeats``), each host's domain list when it changed.
Every host -> conductor message leaves through one ``send_*`` function per message type.
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
from . import network, runtime, signing, storage
from .drivers.base import HostInfo

log = logging.getLogger(__name__)

TASK = tasknames.HOST_HEARTBEAT
BATCH_TASK = tasknames.HOST_HEARTBEATS
SYNC_TASK = tasknames.POWER_SYNC
EVENT_TASK = tasknames.POWER_EVENT
QUEUE = "conductor"
INTERVAL_ENV = "ZENITH_HEARTBEAT_INTERVAL"
DEFAULT_INTERVAL = 10.0
POWER_SYNC_ENV = "ZENITH_POWER_SYNC"
BATCH_ENV = "ZENITH_HEARTBEAT_BATCH"
DEFAULT_BATCH = 200
# A multi-host agent sends a host's domain list when it changed, and every host's every N heartbeats.
FULL_SYNC_ENV = "ZENITH_POWER_SYNC_FULL_EVERY"
DEFAULT_FULL_SYNC_EVERY = 6

_stop = threading.Event()
_thread: threading.Thread | None = None
_listeners: list[tuple[object, int]] = []  # (driver, listener id) of each host's lifecycle events


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


def heartbeat_info(uri: str | None = None, host: str | None = None) -> tuple[HostInfo, dict]:
    """The heartbeat of the current host (``runtime``; ``host`` names it otherwise): its URI and roles,
    and a section per role (``compute``: vCPUs, RAM, disk, hypervisor; ``storage``: its backends, from
    ``storage.report_section``; ``network``: its networks, from ``network.report_section``). Returns
    the capacity read and the message's info."""
    info = runtime.driver(uri).host_info()
    roles = runtime.roles()
    message: dict = {"uri": info.uri, "roles": roles}
    if "compute" in roles:
        message["compute"] = asdict(info)
    if "storage" in roles:
        message["storage"] = storage.report_section(host or runtime.host_name(), runtime.driver(uri))
    if "network" in roles:
        message["network"] = network.report_section(runtime.driver(uri))
    return info, message


# The host -> conductor sends, one function per message type. Each is signed as the host it speaks for
# (``signing.signing_as``), whatever thread sends it: a multi-host agent's loop, or libvirt's events.


def send_heartbeat(host: str, info: dict) -> None:
    """One host's heartbeat to the conductor (``workers.tasks.host_heartbeat``)."""
    with signing.signing_as(host):
        current_app.send_task(TASK, kwargs={"host": host, "info": info}, queue=QUEUE)


def heartbeat_entry(host: str, info: dict) -> dict:
    """One entry of a batch: ``{"host", "info", "auth"}``, ``auth`` what ``send_heartbeat`` would sign
    for that host with its own key (none when it has no usable key: the conductor refuses it)."""
    entry = {"host": host, "info": info}
    auth = signing.sign_entry(TASK, entry, host)
    if auth is not None:
        entry["auth"] = auth
    return entry


def send_heartbeats(batch: list[dict]) -> None:
    """Many hosts' heartbeats in one message (``workers.tasks.host_heartbeats``):
    ``[{"host", "info", "auth"}]``, each entry signed by its own host (``heartbeat_entry``); the
    message itself is not signed as any one host."""
    current_app.send_task(BATCH_TASK, kwargs={"batch": batch}, queue=QUEUE)


def send_power_sync(host: str, domains: list[dict]) -> None:
    """One host's domain list to the conductor (``compute.tasks.power_sync``)."""
    with signing.signing_as(host):
        current_app.send_task(
            SYNC_TASK, kwargs={"host": host, "domains": domains, "apply": power_sync_enabled()}, queue=QUEUE
        )


def send_power_event(host: str, instance_id: str, power_state: str, event: str) -> None:
    """One libvirt lifecycle event of a host's guest to the conductor (``compute.tasks.power_event``)."""
    with signing.signing_as(host):
        current_app.send_task(
            EVENT_TASK,
            kwargs={"host": host, "instance_id": instance_id, "power_state": power_state, "event": event},
            queue=QUEUE,
        )


def report(host: str, uri: str | None = None) -> HostInfo:
    """Read the host's capacity from libvirt and send it to the conductor. Returns the capacity read."""
    info, message = heartbeat_info(uri, host)
    send_heartbeat(host, message)
    return info


def sync(host: str, uri: str | None = None) -> int:
    """Send the conductor every domain libvirt lists here (power sync and the drift view)."""
    domains = runtime.driver(uri).list_domains()
    send_power_sync(host, domains)
    return len(domains)


def report_many(hosts: list[runtime.AgentHost], batch_size: int | None = None) -> int:
    """The heartbeats of many served hosts, ``batch_size`` hosts a message (``ZENITH_HEARTBEAT_BATCH``,
    default 200). A host whose libvirt connection fails is logged and left out (it goes down if that
    lasts). Returns how many hosts were reported."""
    size = batch_size or _batch_size()
    batch: list[dict] = []
    sent = 0
    for host in hosts:
        with runtime.serving(host):
            try:
                _, message = heartbeat_info()
            except Exception:
                log.exception("heartbeat of host %s failed", host.name)
                continue
        batch.append(heartbeat_entry(host.name, message))
        if len(batch) >= size:
            send_heartbeats(batch)
            sent, batch = sent + len(batch), []
    if batch:
        send_heartbeats(batch)
        sent += len(batch)
    return sent


def sync_many(
    hosts: list[runtime.AgentHost], last: dict[str, list], tick: int = 0, full_every: int = 1
) -> int:
    """Power sync of many served hosts: a host's domain list is sent when it changed since the last one
    sent (``last``, updated here), and in any case every ``full_every`` ticks (host ``i`` at the ticks
    where ``(tick + i) % full_every == 0``: the full resends spread over the ticks, not all at once).
    Returns how many were sent."""
    sent = 0
    for index, host in enumerate(hosts):
        with runtime.serving(host):
            try:
                domains = runtime.driver().list_domains()
                if (tick + index) % full_every == 0 or last.get(host.name) != domains:
                    send_power_sync(host.name, domains)
                    last[host.name] = domains
                    sent += 1
            except Exception:
                log.exception("power sync of host %s failed", host.name)
    return sent


def _batch_size() -> int:
    try:
        return max(1, int(os.environ.get(BATCH_ENV, DEFAULT_BATCH)))
    except ValueError:
        return DEFAULT_BATCH


def _full_sync_every() -> int:
    try:
        return max(1, int(os.environ.get(FULL_SYNC_ENV, DEFAULT_FULL_SYNC_EVERY)))
    except ValueError:
        return DEFAULT_FULL_SYNC_EVERY


def _loop(host: str, uri: str, every: float, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            report(host, uri)
            sync(host, uri)
        except Exception:  # libvirt or the broker unavailable for a moment: try again next time
            log.exception("heartbeat of host %s failed", host)
        stop.wait(every)


def _loop_many(hosts: list[runtime.AgentHost], every: float, stop: threading.Event) -> None:
    last: dict[str, list] = {}
    tick = 0
    full_every = _full_sync_every()
    while not stop.is_set():
        try:
            report_many(hosts)
            sync_many(hosts, last, tick, full_every)
        except Exception:  # the broker unavailable for a moment: try again next time
            log.exception("heartbeat of %d hosts failed", len(hosts))
        tick += 1
        stop.wait(every)


def _listen(host: str, uri: str) -> None:
    """Forward libvirt's lifecycle events (a guest powering itself off, ...) to the conductor."""
    drv = runtime.driver(uri)
    listen = getattr(drv, "listen_events", None)
    if listen is None or not power_sync_enabled():
        return

    def forward(domain_uuid: str, instance_id: str | None, power_state: str, event: str) -> None:
        if not instance_id or runtime.acted_on(instance_id):
            return  # a foreign domain; or one a task here acts on: its answer reports the state
        try:
            send_power_event(host, instance_id, power_state, event)
        except Exception:  # the periodic sync catches what an event could not carry
            log.exception("could not forward a lifecycle event of %s", domain_uuid)

    try:
        _listeners.append((drv, listen(forward)))
    except Exception:
        log.exception("lifecycle events unavailable on %s; relying on the periodic sync", uri)


def start(host: str | None = None, uri: str | None = None, every: float | None = None) -> threading.Thread:
    """Report now, then every ``every`` seconds, from a daemon thread, until ``stop()``."""
    global _thread
    stop()
    _stop.clear()
    hosts = runtime.served_hosts() if host is None else []
    if hosts:  # a multi-host agent: every host's events, and one loop batching their heartbeats
        for served in hosts:
            with runtime.serving(served):
                _listen(served.name, served.uri)
        _thread = threading.Thread(
            target=_loop_many, args=(hosts, every or interval(), _stop), name="zenith-heartbeat", daemon=True
        )
        _thread.start()
        return _thread
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
    global _thread
    _stop.set()
    while _listeners:
        drv, listener_id = _listeners.pop()
        with contextlib.suppress(Exception):
            drv.unlisten_events(listener_id)
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
