"""The one host-side driver, over libvirt-python (DESIGN.md section 5).

URIs: ``test:///default`` (libvirt's in-memory test driver, no daemon), ``test:///abs/host.xml``,
``qemu:///system``, ``qemu+ssh://...``. What the connected driver cannot do raises
``NotSupported`` with libvirt's own message; it is never reported as success.

Events: libvirt's default event loop implementation is registered when this module is imported
(it must be, before the first connection is opened) and run by one daemon thread per process,
started by the first ``LibvirtDriver``. Lifecycle events (``listen_events``) and the soft reboot's
wait for the guest to reset (``reboot_with_fallback``) go through it.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import platform
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from urllib.parse import urlparse

import libvirt

from workers.agent.drivers import domain_xml as dx
from workers.agent.drivers.base import (
    CRASHED,
    DETACH_TIMEOUT,
    NOSTATE,
    PAUSED,
    RUNNING,
    SHUTDOWN,
    SUSPENDED,
    ByteSource,
    ComputeDriver,
    DiskSpec,
    DomainNotFound,
    DomainSpec,
    DriverError,
    HostInfo,
    LifecycleCallback,
    NotSupported,
    PoolConflict,
    Progress,
)

log = logging.getLogger(__name__)

# libvirt prints every error on stderr by default; we raise them instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

DEFAULT_POOL_PATH = "/var/lib/zenith/images"
CHUNK = 1024 * 1024
# How long a soft reboot waits for the guest to reset before pressing reset (Nova waits 120 s).
SOFT_REBOOT_TIMEOUT = 120.0
START_WAIT = 60.0  # seconds a spawn waits for another caller's start of its domain to finish

_STARTING = [libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_STARTING_UP]  # QEMU up, vCPUs not yet
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


# -- the event loop: registered before any connection is opened, run by one thread per process --

libvirt.virEventRegisterDefaultImpl()
_event_loop_lock = threading.Lock()
_event_loop_pid: int | None = None


def _run_event_loop() -> None:
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except Exception:  # one bad callback must not end event delivery for the process
            log.exception("libvirt event loop iteration failed")
            time.sleep(0.1)


def ensure_event_loop() -> None:
    """Run libvirt's default event loop in a daemon thread of this process (again after a fork)."""
    global _event_loop_pid
    with _event_loop_lock:
        if _event_loop_pid == os.getpid():
            return
        threading.Thread(target=_run_event_loop, name="libvirt-events", daemon=True).start()
        _event_loop_pid = os.getpid()


def kvm_usable(device: str = "/dev/kvm", cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether local guests can use KVM: /dev/kvm is read-writable and, on x86, the CPU has
    hardware virtualisation (vmx/svm). Some nested clouds expose a /dev/kvm without it (the
    kvm_pvm module): QEMU starts there but the guest never boots, so that counts as unusable."""
    if not os.access(device, os.R_OK | os.W_OK):
        return False
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    try:
        with open(cpuinfo) as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"vmx", "svm"})
    except OSError:
        return False
    return False


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


def pool_name_for(path: str, host: str = "") -> str:
    """The name of the pool at ``path``: ``zenith-[<host>-]<8 hex of the path>``.

    One libvirtd serves every agent (and test run) of a machine, and a pool definition outlives the
    checkout that made it: a name of its own per directory means two var dirs (two clones, two hosts)
    never share a pool, and a pool left by a removed clone is never taken for this one's.
    """
    digest = hashlib.sha1(os.path.normpath(path).encode()).hexdigest()[:8]
    return f"zenith-{host}-{digest}" if host else f"zenith-{digest}"


class LibvirtDriver(ComputeDriver):
    def __init__(
        self,
        uri: str = "test:///default",
        domain_type: str = "auto",
        pool_name: str | None = None,
        pool_path: str = DEFAULT_POOL_PATH,
    ):
        if domain_type not in ("auto", "kvm", "qemu", "test"):
            raise ValueError(f"domain_type must be auto, kvm, qemu or test, not {domain_type!r}")
        self.uri = uri
        self.domain_type = domain_type
        self.pool_path = os.path.normpath(pool_path)
        self.pool_name = pool_name or pool_name_for(self.pool_path)
        self._pool_reconciled = False  # once per driver: the definition checked against pool_path
        self._pool_lock = threading.Lock()  # one reconciliation at a time (task threads start together)
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.Lock()
        self._resolved_type: str | None = None
        self._listeners: dict[int, LifecycleCallback] = {}
        self._listener_ids = itertools.count(1)
        self._lifecycle_cb: int | None = None  # libvirt's id of our callback on ``_conn``
        self._instance_ids: dict[str, str | None] = {}  # domain uuid -> instance id, for events
        ensure_event_loop()

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
                self._lifecycle_cb = None
            with _errors():
                self._conn = libvirt.open(self.uri)
                if self._listeners:
                    self._register_lifecycle(self._conn)
            return self._conn

    def close(self) -> None:
        """Close the connection; listeners stay and are registered again if it is reopened."""
        with self._lock:
            if self._conn is not None:
                if self._lifecycle_cb is not None:
                    with contextlib.suppress(libvirt.libvirtError):
                        self._conn.domainEventDeregisterAny(self._lifecycle_cb)
                    self._lifecycle_cb = None
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
                    # A remote URI: /dev/kvm is on the other machine, trust its capabilities.
                    usable = self._is_remote() or kvm_usable()
                    self._resolved_type = dx.choose_domain_type(caps, usable)
        return self._resolved_type

    def _is_remote(self) -> bool:
        return bool(urlparse(self.uri).netloc)

    # -- lifecycle events ------------------------------------------------------------------

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

    # -- host ------------------------------------------------------------------------------

    def host_info(self) -> HostInfo:
        with _errors():
            conn = self.conn
            model, memory_mb, cpus, mhz, *_ = conn.getInfo()
            # The host's local disk is its instance pool: made here, so that a new host (no pool
            # until its first spawn) reports its real capacity instead of 0 GB, which no launch fits.
            disk_bytes = self.ensure_pool().info()[1]
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
        """The agent's own ``dir`` pool ``pool_name`` at ``pool_path``: defined, built, started,
        autostarted. The first call (the agent's start) reconciles what libvirtd already has: see
        ``_reconcile_pool``; later calls only start it again if it was stopped."""
        with _errors():
            if self._pool_reconciled:
                try:
                    pool = self.conn.storagePoolLookupByName(self.pool_name)
                except libvirt.libvirtError as exc:
                    if not _is_missing(exc, libvirt.VIR_ERR_NO_STORAGE_POOL):
                        raise
                else:
                    if pool.isActive():
                        return pool
            with self._pool_lock:
                pool = self._reconcile_pool()
                self._pool_reconciled = True
            return pool

    def _reconcile_pool(self) -> libvirt.virStoragePool:
        """Make the pool match this agent's configuration, whatever an earlier run left in libvirtd.

        - A pool of our name at another directory is redefined at ours, unless a domain uses disks
          in that directory: then ``PoolConflict`` (the agent refuses to start, saying which). Those
          disks belong to someone's instances; silently moving the pool away would orphan them.
        - A pool of another name already at our directory (an older agent's "zenith") is adopted:
          libvirt allows one pool per directory, and that directory is ours.
        - A directory that is gone (a checkout removed and cloned again while libvirtd ran: the pool
          still says active) is built again; libvirt notices on refresh and stops the pool.
        """
        conn = self.conn
        pool = None
        try:
            pool = conn.storagePoolLookupByName(self.pool_name)
        except libvirt.libvirtError as exc:
            if not _is_missing(exc, libvirt.VIR_ERR_NO_STORAGE_POOL):
                raise
        if pool is not None:
            current = os.path.normpath(dx.pool_path_from_xml(pool.XMLDesc(0)))
            if current != self.pool_path:
                self._release_pool(pool, current)
                pool = None
        if pool is None:
            pool = self._pool_at(self.pool_path)
            if pool is not None:
                log.info("adopting libvirt pool %r: it is at this agent's %s", pool.name(), self.pool_path)
                self.pool_name = pool.name()
        if pool is None:
            pool = conn.storagePoolDefineXML(dx.pool_xml(self.pool_name, self.pool_path), 0)
        if pool.isActive():
            try:
                pool.refresh(0)
            except libvirt.libvirtError:
                # Its directory is gone: libvirt stops the pool on a failed refresh (make sure).
                if pool.isActive():
                    pool.destroy()
        if not pool.isActive():
            pool.build(0)  # a dir pool's build makes its directory; an existing one is fine
            pool.create(0)
        if not pool.autostart():
            pool.setAutostart(1)
        return pool

    def _pool_at(self, path: str) -> libvirt.virStoragePool | None:
        """The pool (any name) whose target directory is ``path``; None if there is none."""
        for pool in self.conn.listAllStoragePools(0):
            with contextlib.suppress(libvirt.libvirtError):  # one vanishing meanwhile
                if os.path.normpath(dx.pool_path_from_xml(pool.XMLDesc(0))) == path:
                    return pool
        return None

    def _release_pool(self, pool: libvirt.virStoragePool, current: str) -> None:
        """Undefine our-named ``pool`` found at ``current`` (not our path), unless domains use it."""
        users = []
        for dom in self.conn.listAllDomains(0):
            with contextlib.suppress(libvirt.libvirtError):
                if any(p.startswith(current + os.sep) for p in dx.disk_paths_from_xml(dom.XMLDesc(0))):
                    users.append(dom.name())
        if users:
            raise PoolConflict(
                f"libvirt pool {self.pool_name!r} is at {current}, not at this agent's {self.pool_path}, and "
                f"domain(s) {', '.join(sorted(users))} use disks there: not redefining it. Start the agent "
                f"with ZENITH_LIBVIRT_POOL_PATH={current}, or remove those domains first."
            )
        log.warning(
            "libvirt pool %r pointed at %s (an earlier checkout?): redefining it at %s",
            self.pool_name,
            current,
            self.pool_path,
        )
        if pool.isActive():
            pool.destroy()  # a dir pool's destroy only stops it: the files stay
        pool.undefine()

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
            # A start still under way (the agent that began it was killed, its spawn redelivered): wait
            # for it, or this answers "paused" for a guest about to run (found by tests/faults).
            deadline = time.monotonic() + START_WAIT
            while dom.state(0) == _STARTING and time.monotonic() < deadline:
                time.sleep(0.1)
            return {
                "name": dom.name(),
                "uuid": dom.UUIDString(),
                "state": self._power_state(dom),
                "created": created,
                "domain_type": self.resolved_domain_type(),
                "console_log": spec.console_log,
            }

    # -- disks of a defined domain (volumes) ---------------------------------------------------

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


def _chunks(source: ByteSource) -> Iterable[bytes]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fh:
            while chunk := fh.read(CHUNK):
                yield chunk
    else:
        for chunk in source:
            if chunk:
                yield bytes(chunk)
