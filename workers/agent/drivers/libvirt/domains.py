"""Domains: define and start, power actions, delete, list."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

import libvirt

from workers.agent.drivers.base import (
    CRASHED,
    NOSTATE,
    PAUSED,
    RUNNING,
    SHUTDOWN,
    SUSPENDED,
    DomainSpec,
    DriverError,
)
from workers.agent.drivers.libvirt import xml as dx
from workers.agent.drivers.libvirt.connection import _errors, _is_missing, translate

log = logging.getLogger(__name__)

# How long a soft reboot waits for the guest to reset before pressing reset (Nova waits 120 s).
SOFT_REBOOT_TIMEOUT = 120.0

_STATE = {
    libvirt.VIR_DOMAIN_NOSTATE: NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: SHUTDOWN,  # being shut down
    libvirt.VIR_DOMAIN_SHUTOFF: SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: SUSPENDED,
}


def libvirt_state_to_power_state(state: int, has_managed_save: bool = False) -> str:
    """Nova's power state of a libvirt state; a shut-off domain with a saved image is suspended."""
    if state == libvirt.VIR_DOMAIN_SHUTOFF and has_managed_save:
        return SUSPENDED
    return _STATE.get(state, NOSTATE)


class DomainsMixin:
    """The domains of the host, by name."""

    def _lookup(self, name: str) -> libvirt.virDomain:
        try:
            return self.conn.lookupByName(name)
        except libvirt.libvirtError as exc:
            raise translate(exc) from exc

    def _power_state(self, dom: libvirt.virDomain) -> str:
        state, _reason = dom.state(0)
        managed = False
        if state == libvirt.VIR_DOMAIN_SHUTOFF:
            try:
                managed = bool(dom.hasManagedSaveImage(0))
            except libvirt.libvirtError:
                managed = False
        return libvirt_state_to_power_state(state, managed)

    def spawn(self, spec: DomainSpec) -> dict:
        """Define ``spec`` and start it. Idempotent: an existing domain of that uuid is started."""
        with _errors():
            created = False
            try:
                dom = self.conn.lookupByUUIDString(spec.uuid)
            except libvirt.libvirtError as exc:
                if not _is_missing(exc, libvirt.VIR_ERR_NO_DOMAIN):
                    raise
                if spec.console_log and self.resolved_domain_type() != "test" and not self._is_remote():
                    _prepare_console_log(spec.console_log)
                xml = dx.domain_xml(spec, self.resolved_domain_type())
                self._instance_ids[spec.uuid.lower()] = spec.instance_id or spec.uuid
                dom = self.conn.defineXML(xml)
                created = True
            if dom.name() != spec.name:
                raise DriverError(f"domain uuid {spec.uuid} is already defined as {dom.name()!r}")
            if not dom.isActive():
                dom.create()
            return {
                "name": dom.name(),
                "uuid": dom.UUIDString(),
                "state": self._power_state(dom),
                "created": created,
                "domain_type": self.resolved_domain_type(),
                "console_log": spec.console_log,
            }

    def start(self, name: str) -> str:
        """Boot a shut-off domain (restoring a managed save). Idempotent."""
        with _errors():
            dom = self._lookup(name)
            if not dom.isActive():
                dom.create()
            return self._power_state(dom)

    def stop(self, name: str, timeout: float = 60.0, force: bool = False) -> str:
        """ACPI shutdown, then destroy after ``timeout`` seconds; ``force`` destroys at once."""
        with _errors():
            dom = self._lookup(name)
            if dom.isActive() and not force:
                dom.shutdown()
                deadline = time.monotonic() + timeout
                while dom.isActive() and time.monotonic() < deadline:
                    time.sleep(0.2)
            if dom.isActive():
                dom.destroy()
            return self._power_state(dom)

    def reboot(self, name: str, hard: bool = False, timeout: float | None = None) -> str:
        """Soft: ACPI reboot inside the guest; hard: reset, like the reset button. The power state.

        A soft reboot with ``timeout`` is ``reboot_with_fallback``: reset when the guest has not
        rebooted within ``timeout`` seconds. Without it, the ACPI request is sent and not followed.
        """
        if not hard and timeout is not None:
            return self.reboot_with_fallback(name, timeout)["power_state"]
        with _errors():
            dom = self._lookup(name)
            if hard:
                dom.reset(0)
            else:
                dom.reboot(0)
            return self._power_state(dom)

    def reboot_with_fallback(self, name: str, timeout: float = SOFT_REBOOT_TIMEOUT) -> dict:
        """ACPI reboot; if the guest has not reset within ``timeout`` seconds, reset it.

        Returns ``{"method": "acpi" | "reset", "power_state": str, "seconds": float}``. The guest
        counts as rebooted when libvirt reports VIR_DOMAIN_EVENT_ID_REBOOT (QEMU reset the
        machine: on an ACPI reboot libvirt presses the power button and resets the guest when it
        powers off) or the domain stops and starts again. The request itself failing (no ACPI in
        the guest) goes straight to reset. The test driver reboots at once and emits no event:
        there the ACPI request is the whole reboot. A domain that is not running is an error.
        With a reset fallback, libvirt may still turn a later power-off of the guest into a
        reboot (its pending ACPI reboot is not cancelled by the reset).
        """
        started = time.monotonic()
        with _errors():
            dom = self._lookup(name)
            if dom.state(0)[0] not in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED):
                raise DriverError(f"domain {name!r} is not running: nothing to reboot")
            if self.resolved_domain_type() == "test":
                dom.reboot(0)
                return self._reboot_result("acpi", dom, started)
            conn = self.conn
            rebooted = threading.Event()
            stopped = threading.Event()

            def on_reboot(_conn, _dom, _opaque) -> None:
                rebooted.set()

            def on_lifecycle(_conn, _dom, event: int, _detail: int, _opaque) -> None:
                if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
                    stopped.set()
                elif event == libvirt.VIR_DOMAIN_EVENT_STARTED and stopped.is_set():
                    rebooted.set()

            callbacks = [
                conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, on_reboot, None),
                conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None),
            ]
            try:
                try:
                    dom.reboot(0)
                except libvirt.libvirtError as exc:
                    if _is_missing(exc, libvirt.VIR_ERR_NO_DOMAIN):
                        raise
                    log.warning("ACPI reboot of %s refused (%s): resetting", name, exc)
                else:
                    if rebooted.wait(timeout):
                        return self._reboot_result("acpi", dom, started)
                    log.warning("%s did not reboot %.0f s after the ACPI request: resetting", name, timeout)
                if not dom.isActive():  # it powered off meanwhile: boot it
                    dom.create()
                else:
                    dom.reset(0)
                return self._reboot_result("reset", dom, started)
            finally:
                for cb in callbacks:
                    with contextlib.suppress(libvirt.libvirtError):
                        conn.domainEventDeregisterAny(cb)

    def _reboot_result(self, method: str, dom: libvirt.virDomain, started: float) -> dict:
        return {
            "method": method,
            "power_state": self._power_state(dom),
            "seconds": round(time.monotonic() - started, 3),
        }

    def pause(self, name: str) -> str:
        """Freeze the vCPUs (libvirt's suspend). Idempotent."""
        with _errors():
            dom = self._lookup(name)
            if dom.state(0)[0] != libvirt.VIR_DOMAIN_PAUSED:
                dom.suspend()
            return self._power_state(dom)

    def unpause(self, name: str) -> str:
        """Thaw the vCPUs (libvirt's resume). Idempotent."""
        with _errors():
            dom = self._lookup(name)
            if dom.state(0)[0] == libvirt.VIR_DOMAIN_PAUSED:
                dom.resume()
            return self._power_state(dom)

    def suspend(self, name: str) -> str:
        """Save the memory to disk and stop (managedSave). Idempotent."""
        with _errors():
            dom = self._lookup(name)
            if dom.isActive():
                dom.managedSave(0)
            elif not dom.hasManagedSaveImage(0):
                raise DriverError(f"domain {name!r} is not running: nothing to suspend")
            return self._power_state(dom)

    def resume(self, name: str) -> str:
        """Restore a suspended (managed-saved) domain. Idempotent on a running one."""
        with _errors():
            dom = self._lookup(name)
            if not dom.isActive():
                if not dom.hasManagedSaveImage(0):
                    raise DriverError(f"domain {name!r} is not suspended: use start")
                dom.create()
            return self._power_state(dom)

    def destroy_and_undefine(self, name: str, delete_disks: bool = True) -> dict:
        """Delete a domain and (by default) its disk volumes in the pool. A missing domain is fine."""
        with _errors():
            try:
                dom = self.conn.lookupByName(name)
            except libvirt.libvirtError as exc:
                if _is_missing(exc, libvirt.VIR_ERR_NO_DOMAIN):
                    return {"name": name, "deleted": False, "disks_deleted": []}
                raise
            disks = dx.disk_paths_from_xml(dom.XMLDesc(0))
            if dom.isActive():
                dom.destroy()
            flags = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            dom.undefineFlags(flags)
            deleted = []
            if delete_disks:
                pool = self.ensure_pool()
                pool_names = set(pool.listVolumes())
                for path in disks:
                    vol = self._find_volume(pool, path)
                    # Only the pool's own volumes: never a base image or a file elsewhere.
                    if vol is not None and vol.name() in pool_names and vol.path() == path:
                        vol.delete(0)
                        deleted.append(path)
            return {"name": name, "deleted": True, "disks_deleted": deleted}

    def power_state(self, name: str) -> str:
        with _errors():
            return self._power_state(self._lookup(name))

    def list_domains(self) -> list[dict]:
        """Every domain of the host, defined or running, for drift detection."""
        with _errors():
            result = []
            for dom in self.conn.listAllDomains(0):
                try:
                    instance_id = dx.instance_id_from_xml(dom.XMLDesc(0))
                    state = self._power_state(dom)
                except libvirt.libvirtError as exc:
                    if _is_missing(exc, libvirt.VIR_ERR_NO_DOMAIN):
                        continue  # deleted while we listed
                    raise
                self._instance_ids[dom.UUIDString()] = instance_id
                result.append(
                    {
                        "name": dom.name(),
                        "uuid": dom.UUIDString(),
                        "power_state": state,
                        "instance_id": instance_id,
                    }
                )
            return result

    def domain_xml(self, name: str) -> str:
        """The definition libvirt stores for a domain (dumpxml)."""
        with _errors():
            return self._lookup(name).XMLDesc(0)


def _prepare_console_log(path: str) -> None:
    """Create the serial log file before QEMU does, so it belongs to the agent and stays readable
    (group/other read) whatever user QEMU runs as; libvirt appends to it (append="on")."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        if os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, 0o644)
    finally:
        os.close(fd)
