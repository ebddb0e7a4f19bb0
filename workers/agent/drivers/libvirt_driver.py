"""The one host-side driver, over libvirt-python (DESIGN.md section 5).

URIs: ``test:///default`` (libvirt's in-memory test driver, no daemon), ``test:///abs/host.xml``,
``qemu:///system``, ``qemu+ssh://...``. What the connected driver cannot do raises
``NotSupported`` with libvirt's own message; it is never reported as success.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from urllib.parse import urlparse

import libvirt

from workers.agent.drivers import domain_xml as dx
from workers.agent.drivers.base import (
    CRASHED,
    NOSTATE,
    PAUSED,
    RUNNING,
    SHUTDOWN,
    SUSPENDED,
    ByteSource,
    ComputeDriver,
    DomainNotFound,
    DomainSpec,
    DriverError,
    HostInfo,
    NotSupported,
    Progress,
)

# libvirt prints every error on stderr by default; we raise them instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

DEFAULT_POOL_PATH = "/var/lib/zenith/images"
CHUNK = 1024 * 1024

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


def translate(exc: libvirt.libvirtError) -> DriverError:
    message = exc.get_error_message() or str(exc)
    code = exc.get_error_code()
    if code == libvirt.VIR_ERR_NO_SUPPORT or "not supported by the connection driver" in message:
        return NotSupported(message, code)
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return DomainNotFound(message, code)
    return DriverError(message, code)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except libvirt.libvirtError as exc:
        raise translate(exc) from exc


def _is_missing(exc: libvirt.libvirtError, *codes: int) -> bool:
    return exc.get_error_code() in codes


class LibvirtDriver(ComputeDriver):
    def __init__(
        self,
        uri: str = "test:///default",
        domain_type: str = "auto",
        pool_name: str = "zenith",
        pool_path: str = DEFAULT_POOL_PATH,
    ):
        if domain_type not in ("auto", "kvm", "qemu", "test"):
            raise ValueError(f"domain_type must be auto, kvm, qemu or test, not {domain_type!r}")
        self.uri = uri
        self.domain_type = domain_type
        self.pool_name = pool_name
        self.pool_path = pool_path
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.Lock()
        self._resolved_type: str | None = None

    # -- connection ------------------------------------------------------------------------

    @property
    def conn(self) -> libvirt.virConnect:
        """The connection, opened on first use and again if it was closed or dropped."""
        with self._lock:
            if self._conn is not None:
                try:
                    if self._conn.isAlive():
                        return self._conn
                except libvirt.libvirtError:
                    pass
                self._conn = None
            with _errors():
                self._conn = libvirt.open(self.uri)
            return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    self._conn.close()
                self._conn = None

    def __enter__(self) -> LibvirtDriver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def resolved_domain_type(self) -> str:
        """The <domain type> to define: test on the test driver, kvm when usable, else qemu."""
        if self._resolved_type is None:
            if self.domain_type != "auto":
                self._resolved_type = self.domain_type
            else:
                with _errors():
                    driver = self.conn.getType().lower()
                    caps = self.conn.getCapabilities()
                if driver == "test":
                    self._resolved_type = "test"
                else:
                    remote = bool(urlparse(self.uri).netloc)  # /dev/kvm is on the other machine
                    kvm_usable = remote or os.access("/dev/kvm", os.R_OK | os.W_OK)
                    self._resolved_type = dx.choose_domain_type(caps, kvm_usable)
        return self._resolved_type

    # -- host ------------------------------------------------------------------------------

    def host_info(self) -> HostInfo:
        with _errors():
            conn = self.conn
            model, memory_mb, cpus, mhz, *_ = conn.getInfo()
            disk_bytes = 0
            try:
                disk_bytes = conn.storagePoolLookupByName(self.pool_name).info()[1]
            except libvirt.libvirtError as exc:
                if not _is_missing(exc, libvirt.VIR_ERR_NO_STORAGE_POOL):
                    raise
            return HostInfo(
                hostname=conn.getHostname(),
                vcpus=int(cpus),
                memory_mb=int(memory_mb),
                disk_gb=int(disk_bytes // dx.GiB),
                hypervisor_type=conn.getType(),
                hypervisor_version=int(conn.getVersion()),
                uri=self.uri,
                arch=model,
                cpu_mhz=int(mhz),
            )

    # -- storage ---------------------------------------------------------------------------

    def ensure_pool(self) -> libvirt.virStoragePool:
        """The ``dir`` pool ``pool_name`` at ``pool_path``: defined, built, started, autostarted."""
        with _errors():
            try:
                pool = self.conn.storagePoolLookupByName(self.pool_name)
            except libvirt.libvirtError as exc:
                if not _is_missing(exc, libvirt.VIR_ERR_NO_STORAGE_POOL):
                    raise
                pool = self.conn.storagePoolDefineXML(dx.pool_xml(self.pool_name, self.pool_path), 0)
                pool.build(0)
            if not pool.isActive():
                pool.create(0)
            if not pool.autostart():
                pool.setAutostart(1)
            return pool

    def _find_volume(self, pool: libvirt.virStoragePool, ref: str) -> libvirt.virStorageVol | None:
        """A volume by name in the pool, or by path anywhere libvirt knows; None if unknown."""
        missing = (libvirt.VIR_ERR_NO_STORAGE_VOL,)
        try:
            return pool.storageVolLookupByName(ref)
        except libvirt.libvirtError as exc:
            if not _is_missing(exc, *missing):
                raise
        if ref.startswith("/"):
            try:
                return self.conn.storageVolLookupByPath(ref)
            except libvirt.libvirtError as exc:
                if not _is_missing(exc, *missing):
                    raise
        return None

    def create_disk_from_image(
        self, name: str, base: str | None, size_gb: int, backing_format: str = "qcow2"
    ) -> str:
        """A qcow2 disk ``name`` in the pool; its path. Idempotent: an existing volume is returned.

        ``base`` (a volume name in the pool, or a path) becomes the backing store of a
        copy-on-write overlay; ``base=None`` gives an empty disk of ``size_gb``. A ``base`` that
        neither libvirt nor the filesystem knows is an error, not an empty disk.
        """
        with _errors():
            pool = self.ensure_pool()
            existing = self._find_volume(pool, name)
            if existing is not None:
                return existing.path()
            capacity = int(size_gb) * dx.GiB
            if base is None:
                xml = dx.volume_xml(name, capacity, "qcow2")
            else:
                base_vol = self._find_volume(pool, base)
                if base_vol is not None:
                    base_root = ET.fromstring(base_vol.XMLDesc(0))
                    fmt_el = base_root.find("target/format")
                    fmt = fmt_el.get("type") if fmt_el is not None else backing_format
                    capacity = max(capacity, int(base_vol.info()[1]))
                    xml = dx.volume_xml(name, capacity, "qcow2", base_vol.path(), fmt)
                elif base.startswith("/") and os.path.exists(base):
                    xml = dx.volume_xml(name, capacity, "qcow2", base, backing_format)
                else:
                    raise DriverError(
                        f"image {base!r} is neither a volume of pool {self.pool_name!r} nor a file"
                    )
            return pool.createXML(xml, 0).path()

    def delete_volume(self, ref: str) -> bool:
        """Delete a volume of the pool by name or path; False when it was not there."""
        with _errors():
            pool = self.ensure_pool()
            vol = self._find_volume(pool, ref)
            if vol is None:
                return False
            vol.delete(0)
            return True

    def import_image(
        self, name: str, source: ByteSource, size: int, progress: Progress | None = None, fmt: str = "qcow2"
    ) -> str:
        """Create volume ``name`` of ``size`` bytes and upload ``source`` into it through a stream.

        ``source`` is a file path or an iterable of bytes chunks; ``progress(bytes_sent)`` is
        called after each chunk. On failure the half-written volume is deleted. The test driver
        has no virStorageVolUpload: that raises NotSupported.
        """
        with _errors():
            pool = self.ensure_pool()
            if self._find_volume(pool, name) is not None:
                raise DriverError(f"volume {name!r} already exists in pool {self.pool_name!r}")
            vol = pool.createXML(dx.volume_xml(name, int(size), fmt), 0)
            stream = self.conn.newStream(0)
            try:
                vol.upload(stream, 0, int(size), 0)
                sent = 0
                for chunk in _chunks(source):
                    view = memoryview(chunk)
                    while view:
                        n = stream.send(bytes(view))
                        if n < 0:
                            raise DriverError(f"stream send failed after {sent} bytes")
                        view = view[n:]
                        sent += n
                    if progress is not None:
                        progress(sent)
                stream.finish()
            except BaseException:
                with contextlib.suppress(libvirt.libvirtError):
                    stream.abort()
                with contextlib.suppress(libvirt.libvirtError):
                    vol.delete(0)
                raise
            return vol.path()

    # -- domains ---------------------------------------------------------------------------

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
                xml = dx.domain_xml(spec, self.resolved_domain_type())
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

    def reboot(self, name: str, hard: bool = False) -> str:
        """Soft: ACPI reboot inside the guest; hard: reset, like the reset button."""
        with _errors():
            dom = self._lookup(name)
            if hard:
                dom.reset(0)
            else:
                dom.reboot(0)
            return self._power_state(dom)

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


def _chunks(source: ByteSource) -> Iterable[bytes]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fh:
            while chunk := fh.read(CHUNK):
                yield chunk
    else:
        for chunk in source:
            if chunk:
                yield bytes(chunk)
