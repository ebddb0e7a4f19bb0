"""Disks of a defined domain: plug and unplug (volumes)."""

from __future__ import annotations

import time

import libvirt

from workers.agent.drivers.base import DETACH_TIMEOUT, DiskSpec, DriverError
from workers.agent.drivers.libvirt import xml as dx
from workers.agent.drivers.libvirt.connection import _errors


class DisksMixin:
    def attach_disk(self, name: str, disk: DiskSpec) -> dict:
        """Plug ``disk`` into domain ``name``: live into a running guest, and into the definition so
        that it stays after a restart. Its target is ``disk.target_dev`` or the first free one.
        Idempotent: a disk whose source is already attached is reported where it is.
        Returns ``{"target": "vdb", "attached": True}`` (False when it was already there)."""
        with _errors():
            dom = self._lookup(name)
            live = dom.isActive()
            disks = dx.disks_of(dom.XMLDesc(0))
            for target, (path, _xml) in disks.items():
                if path == disk.path:
                    return {"target": target, "attached": False}
            target = disk.target_dev or dx.free_disk_dev(set(disks), disk.bus)
            if target in disks:
                raise DriverError(f"domain {name} already has another disk at {target}")
            flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
            if live:
                flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
            dom.attachDeviceFlags(dx.disk_xml(disk, target), flags)
            return {"target": target, "attached": True}

    def detach_disk(self, name: str, disk: str, timeout: float = DETACH_TIMEOUT) -> dict:
        """Unplug ``disk`` (a target such as "vdb", or its source path) from domain ``name``: from
        the running guest and from the definition. Unplugging from a running guest is a request its
        kernel answers: this waits up to ``timeout`` seconds for the disk to be gone and otherwise
        raises DriverError (the disk stays attached; asking again is safe). Idempotent: a disk that
        is not attached gives ``{"detached": False}``."""
        with _errors():
            dom = self._lookup(name)

            def find(flags: int) -> tuple[str, str] | None:
                for target, (path, xml) in dx.disks_of(dom.XMLDesc(flags)).items():
                    if disk in (target, path):
                        return target, xml
                return None

            live = find(0) if dom.isActive() else None
            config = find(libvirt.VIR_DOMAIN_XML_INACTIVE)
            if live is None and config is None:
                return {"target": None, "detached": False}
            if config is not None:
                dom.detachDeviceFlags(config[1], libvirt.VIR_DOMAIN_AFFECT_CONFIG)
            if live is not None:
                dom.detachDeviceFlags(live[1], libvirt.VIR_DOMAIN_AFFECT_LIVE)
                deadline = time.monotonic() + timeout
                while dom.isActive() and find(0) is not None:
                    if time.monotonic() > deadline:
                        raise DriverError(
                            f"the guest of {name} did not release disk {live[0]} within {timeout:g} s"
                        )
                    time.sleep(0.1)
            return {"target": (live or config)[0], "detached": True}
