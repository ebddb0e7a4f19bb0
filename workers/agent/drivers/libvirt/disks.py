"""Disks of a defined domain: plug, unplug and resize (volumes); a flattened copy (snapshots).

A running guest gets the change live and in its definition; a shut-off domain in its definition
only. libvirt's test driver (a simulated host) has no device hot-plug: there the persistent
definition is rewritten (``defineXML``) and the answer says ``live: False``; nothing pretends the
guest saw it.
"""

from __future__ import annotations

import os
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt

from workers.agent.drivers.base import DETACH_TIMEOUT, DiskSpec, DriverError, NotSupported
from workers.agent.drivers.libvirt import xml as dx
from workers.agent.drivers.libvirt.connection import _errors

CONVERT_TIMEOUT = 600.0  # seconds a qemu-img convert of one disk may take


def flatten_disk(source: str, source_format: str, dest: str, timeout: float = CONVERT_TIMEOUT) -> None:
    """``qemu-img convert`` ``source`` (``source_format``) into a standalone qcow2 at ``dest``: the
    backing chain is folded in, unallocated clusters stay unallocated. ``-U`` (force share) reads a
    disk a QEMU process holds open (the caller made it consistent: a paused guest); the copy is
    checked by qemu-img as it reads. A failure is a DriverError with qemu-img's own words."""
    argv = ["qemu-img", "convert", "-U", "-f", source_format, "-O", "qcow2", source, dest]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise NotSupported("qemu-img is not installed on this host") from None
    except subprocess.TimeoutExpired:
        raise DriverError(f"qemu-img convert of {source} took longer than {timeout:g} s") from None
    if done.returncode != 0:
        raise DriverError(
            f"qemu-img convert of {source} failed: {(done.stderr or done.stdout).strip()[:500]}"
        )


class DisksMixin:
    def attach_disk(self, name: str, disk: DiskSpec) -> dict:
        """Plug ``disk`` into domain ``name``: live into a running guest, and into the definition so
        that it stays after a restart. Its target is ``disk.target_dev`` or the first free one.
        Idempotent: a disk whose source is already attached is reported where it is.
        Returns ``{"target": "vdb", "attached": True, "live": True}`` (attached False when it was
        already there; live False when only the definition changed: a shut-off domain, or a
        simulated host)."""
        with _errors():
            dom = self._lookup(name)
            simulated = self.resolved_domain_type() == "test"
            live = dom.isActive() and not simulated
            disks = dx.disks_of(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            if live:
                disks = {**disks, **dx.disks_of(dom.XMLDesc(0))}
            for target, (path, _xml) in disks.items():
                if path == disk.path:
                    return {"target": target, "attached": False, "live": live}
            target = disk.target_dev or dx.free_disk_dev(set(disks), disk.bus)
            if target in disks:
                raise DriverError(f"domain {name} already has another disk at {target}")
            if simulated:
                inactive = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                self.conn.defineXML(dx.with_disk(inactive, disk, target))
                return {"target": target, "attached": True, "live": False}
            flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
            if live:
                flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
            dom.attachDeviceFlags(dx.disk_xml(disk, target), flags)
            return {"target": target, "attached": True, "live": live}

    def detach_disk(self, name: str, disk: str, timeout: float = DETACH_TIMEOUT) -> dict:
        """Unplug ``disk`` (a target such as "vdb", or its source path) from domain ``name``: from
        the running guest and from the definition. Unplugging from a running guest is a request its
        kernel answers: this waits up to ``timeout`` seconds for the disk to be gone and otherwise
        raises DriverError (the disk stays attached; asking again is safe). Idempotent: a disk that
        is not attached gives ``{"detached": False}``. ``live`` says whether a running guest
        released it (False on a shut-off domain or a simulated host)."""
        with _errors():
            dom = self._lookup(name)
            simulated = self.resolved_domain_type() == "test"

            def find(flags: int) -> tuple[str, str] | None:
                for target, (path, xml) in dx.disks_of(dom.XMLDesc(flags)).items():
                    if disk in (target, path):
                        return target, xml
                return None

            live = find(0) if dom.isActive() and not simulated else None
            config = find(libvirt.VIR_DOMAIN_XML_INACTIVE)
            if live is None and config is None:
                return {"target": None, "detached": False, "live": False}
            if simulated:
                inactive = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                self.conn.defineXML(dx.without_disk(inactive, config[0]))
                return {"target": config[0], "detached": True, "live": False}
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
            return {"target": (live or config)[0], "detached": True, "live": live is not None}

    def resize_disk(self, name: str, disk: str, size_bytes: int) -> dict:
        """Tell the running guest of domain ``name`` that its disk ``disk`` (a target or a source
        path) now has ``size_bytes`` (libvirt's block resize: the guest sees the new size at once).
        The volume itself is grown by its storage host first. A shut-off domain, or a simulated
        host, has no guest to tell: ``live: False`` (a guest booted later reads the volume's size).
        ``{"target": "vdb", "live": bool}``; a disk the domain does not have is an error."""
        with _errors():
            dom = self._lookup(name)
            simulated = self.resolved_domain_type() == "test"
            active = dom.isActive() and not simulated
            flags = 0 if active else libvirt.VIR_DOMAIN_XML_INACTIVE
            for target, (path, _xml) in dx.disks_of(dom.XMLDesc(flags)).items():
                if disk in (target, path):
                    break
            else:
                raise DriverError(f"domain {name} has no disk {disk}")
            if active:
                dom.blockResize(target, int(size_bytes), libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
            return {"target": target, "live": active}

    def export_disk(self, name: str, dest: str, target: str = "vda", marker: str | None = None) -> dict:
        """A consistent, flattened qcow2 copy of domain ``name``'s disk ``target`` at ``dest``.

        A running guest is paused for the copy (QEMU drains and flushes its block layer when it
        stops the vCPUs, so the file holds every write the guest issued) and resumed afterwards,
        whatever happened; a paused or shut-off one is copied as it is and left so. The guest's
        own page cache is the guest's: what it has not written is not in the copy (as with Nova's
        cold snapshot). ``marker`` (a file path) exists while this copy holds the guest paused: a
        copy that finds it and a paused guest (its agent was killed mid-copy and the task came
        again) resumes the guest after its own copy. ``{"source", "paused"}``. libvirt's test
        driver holds no disk bytes: NotSupported (the caller decides what a simulated host's
        snapshot is)."""
        with _errors():
            dom = self._lookup(name)
            if self.resolved_domain_type() == "test":
                raise NotSupported(f"{name} is on libvirt's test driver: its disks hold no bytes")
            disks = dx.disks_of(dom.XMLDesc(0))
            if target not in disks or not disks[target][0]:
                raise DriverError(f"domain {name} has no disk {target} with a source")
            source, disk_xml = disks[target]
            driver = ET.fromstring(disk_xml).find("driver")
            source_format = (driver.get("type") if driver is not None else None) or "raw"
            state = dom.state()[0] if dom.isActive() else libvirt.VIR_DOMAIN_SHUTOFF
            left_paused = bool(marker) and os.path.exists(marker) and state == libvirt.VIR_DOMAIN_PAUSED
            pause = state == libvirt.VIR_DOMAIN_RUNNING
            if pause:
                if marker:
                    Path(marker).parent.mkdir(parents=True, exist_ok=True)
                    Path(marker).write_text(name)
                dom.suspend()
            try:
                flatten_disk(source, source_format, dest)
            finally:
                if pause or left_paused:
                    dom.resume()
                if marker:
                    Path(marker).unlink(missing_ok=True)
            return {"source": source, "paused": pause or left_paused}
