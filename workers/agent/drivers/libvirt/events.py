"""Lifecycle events of the host's domains, forwarded to listeners (power sync)."""

from __future__ import annotations

import contextlib
import logging

import libvirt

from workers.agent.drivers.base import (
    CRASHED,
    NOSTATE,
    PAUSED,
    RUNNING,
    SHUTDOWN,
    SUSPENDED,
    LifecycleCallback,
)
from workers.agent.drivers.libvirt import xml as dx
from workers.agent.drivers.libvirt.connection import _errors, ensure_event_loop

log = logging.getLogger(__name__)

_EVENT_NAMES = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "defined",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: "pmsuspended",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
}


def lifecycle_power_state(event: int, detail: int) -> str | None:
    """The power state a lifecycle event leaves the domain in; None when it says nothing about it.

    "defined" changes no state, and "shutdown" (the guest finished its shutdown) is followed either
    by "stopped" or, during an ACPI reboot, by a reset and "resumed": neither is reported.
    """
    if event in (libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_RESUMED):
        return RUNNING
    if event == libvirt.VIR_DOMAIN_EVENT_SUSPENDED:
        return PAUSED
    if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
        if detail == libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED:
            return SUSPENDED  # managedSave
        if detail == libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED:
            return CRASHED
        return SHUTDOWN
    if event == libvirt.VIR_DOMAIN_EVENT_CRASHED:
        return CRASHED
    if event == libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED:
        return SUSPENDED
    if event == libvirt.VIR_DOMAIN_EVENT_UNDEFINED:
        return NOSTATE
    return None


class EventsMixin:
    """``listen_events``: lifecycle events of every domain, to callbacks that survive reconnection."""

    def listen_events(self, callback: LifecycleCallback) -> int:
        """Call ``callback(domain_uuid, instance_id, power_state, event)`` for each lifecycle event.

        ``power_state`` is one of base.POWER_STATES (see ``lifecycle_power_state``); ``event`` is
        libvirt's event name: "started", "suspended", "resumed", "stopped", "crashed",
        "pmsuspended" or "undefined" ("defined" and "shutdown" are not reported: they change no
        power state). ``instance_id`` comes from the domain's <metadata>, None for foreign domains.
        The callback runs in the libvirt event thread: keep it short (hand the work to a queue);
        its exceptions are logged, never raised. Every call adds a listener; the returned id
        removes it (``unlisten_events``). Listeners survive a reconnection of the driver.
        """
        ensure_event_loop()
        conn = self.conn
        with self._lock:
            listener_id = next(self._listener_ids)
            self._listeners[listener_id] = callback
            if self._lifecycle_cb is None and self._conn is conn:
                with _errors():
                    self._register_lifecycle(conn)
        return listener_id

    def unlisten_events(self, listener_id: int) -> None:
        with self._lock:
            self._listeners.pop(listener_id, None)
            if not self._listeners and self._conn is not None and self._lifecycle_cb is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    self._conn.domainEventDeregisterAny(self._lifecycle_cb)
                self._lifecycle_cb = None

    def _register_lifecycle(self, conn: libvirt.virConnect) -> None:
        self._lifecycle_cb = conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None
        )

    def _instance_id_of(self, dom: libvirt.virDomain, uuid: str) -> str | None:
        if uuid not in self._instance_ids:
            try:
                self._instance_ids[uuid] = dx.instance_id_from_xml(dom.XMLDesc(0))
            except libvirt.libvirtError:
                return None  # already gone (an "undefined" event of a domain we never saw)
        return self._instance_ids[uuid]

    def _on_lifecycle(self, _conn, dom: libvirt.virDomain, event: int, detail: int, _opaque) -> None:
        try:
            power_state = lifecycle_power_state(event, detail)
            if power_state is None:
                return
            uuid = dom.UUIDString()
            instance_id = self._instance_id_of(dom, uuid)
            if event == libvirt.VIR_DOMAIN_EVENT_UNDEFINED:
                self._instance_ids.pop(uuid, None)
            name = _EVENT_NAMES.get(event, str(event))
            for callback in list(self._listeners.values()):
                try:
                    callback(uuid, instance_id, power_state, name)
                except Exception:
                    log.exception("lifecycle listener failed on %s %s", uuid, name)
        except Exception:
            log.exception("could not handle a lifecycle event")
