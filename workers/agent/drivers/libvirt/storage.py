"""Storage pools and volumes: the agent's own instance-disk pool, images imported into it."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator

import libvirt

from workers.agent.drivers.base import (
    BackendSpec,
    ByteSource,
    DriverError,
    NotSupported,
    PoolConflict,
    Progress,
    VolumeNotFound,
)
from workers.agent.drivers.libvirt import xml as dx
from workers.agent.drivers.libvirt.connection import _errors, _is_missing, translate

log = logging.getLogger(__name__)

DEFAULT_POOL_PATH = "/var/lib/zenith/images"
CHUNK = 1024 * 1024


def pool_name_for(path: str, host: str = "") -> str:
    """The name of the pool at ``path``: ``zenith-[<host>-]<8 hex of the path>``.

    One libvirtd serves every agent (and test run) of a machine, and a pool definition outlives the
    checkout that made it: a name of its own per directory means two var dirs (two clones, two hosts)
    never share a pool, and a pool left by a removed clone is never taken for this one's.
    """
    digest = hashlib.sha1(os.path.normpath(path).encode()).hexdigest()[:8]
    return f"zenith-{host}-{digest}" if host else f"zenith-{digest}"


class StorageMixin:
    """The agent's ``dir`` pool ``self.pool_name`` at ``self.pool_path`` and its volumes."""

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
                pool = self._reconcile_dir_pool(self.pool_name, self.pool_path, "ZENITH_LIBVIRT_POOL_PATH")
                self.pool_name = pool.name()
                self._pool_reconciled = True
            return pool

    def _reconcile_dir_pool(self, name: str, path: str, setting: str) -> libvirt.virStoragePool:
        """Make the dir pool ``name`` at ``path`` match this agent's configuration, whatever an earlier
        run left in libvirtd (``setting``: the variable that configures ``path``, named in errors).

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
            pool = conn.storagePoolLookupByName(name)
        except libvirt.libvirtError as exc:
            if not _is_missing(exc, libvirt.VIR_ERR_NO_STORAGE_POOL):
                raise
        if pool is not None:
            current = os.path.normpath(dx.pool_path_from_xml(pool.XMLDesc(0)))
            if current != path:
                self._release_pool(pool, current, path, setting)
                pool = None
        if pool is None:
            pool = self._pool_at(path)
            if pool is not None:
                log.info("adopting libvirt pool %r: it is at this agent's %s", pool.name(), path)
        if pool is None:
            pool = conn.storagePoolDefineXML(dx.pool_xml(name, path), 0)
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

    def _release_pool(self, pool: libvirt.virStoragePool, current: str, path: str, setting: str) -> None:
        """Undefine our-named ``pool`` found at ``current`` (not our path), unless domains use it."""
        users = []
        for dom in self.conn.listAllDomains(0):
            with contextlib.suppress(libvirt.libvirtError):
                if any(p.startswith(current + os.sep) for p in dx.disk_paths_from_xml(dom.XMLDesc(0))):
                    users.append(dom.name())
        if users:
            raise PoolConflict(
                f"libvirt pool {pool.name()!r} is at {current}, not at this agent's {path}, and "
                f"domain(s) {', '.join(sorted(users))} use disks there: not redefining it. Start the agent "
                f"with {setting}={current}, or remove those domains first."
            )
        log.warning(
            "libvirt pool %r pointed at %s (an earlier checkout?): redefining it at %s",
            pool.name(),
            current,
            path,
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

    # -- storage backends: pools of their own, holding the volumes of the storage role ----------

    @property
    def simulated(self) -> bool:
        """libvirt's test driver: pools and volumes live in memory and hold no bytes."""
        return self.resolved_domain_type() == "test"

    def backend_pool(self, backend: BackendSpec) -> libvirt.virStoragePool:
        """The libvirt pool of ``backend``: defined, started and autostarted (a dir pool also built
        and reconciled like the instance pool); checked once per driver, then only looked up."""
        with _errors():
            name = backend.pool_name or pool_name_for(backend_identity(backend))
            if name in self._backend_pools:
                try:
                    pool = self.conn.storagePoolLookupByName(self._backend_pools[name])
                except libvirt.libvirtError as exc:
                    if not _is_missing(exc, libvirt.VIR_ERR_NO_STORAGE_POOL):
                        raise
                else:
                    if pool.isActive():
                        return pool
            with self._pool_lock:
                if backend.type == "dir":
                    path = os.path.normpath(backend.path)
                    pool = self._reconcile_dir_pool(name, path, "ZENITH_STORAGE_BACKENDS")
                else:
                    pool = self._define_pool(name, backend)
                self._backend_pools[name] = pool.name()
            return pool

    def _define_pool(self, name: str, backend: BackendSpec) -> libvirt.virStoragePool:
        """A logical or rbd pool: defined from the configuration and started, never built (building
        would make a volume group on a disk, or need a Ceph admin: that is the operator's)."""
        try:
            pool = self.conn.storagePoolLookupByName(name)
        except libvirt.libvirtError as exc:
            if not _is_missing(exc, libvirt.VIR_ERR_NO_STORAGE_POOL):
                raise
            pool = self.conn.storagePoolDefineXML(backend_pool_xml(name, backend), 0)
        if not pool.isActive():
            pool.create(0)
        if not pool.autostart():
            pool.setAutostart(1)
        return pool

    def backend_report(self, backend: BackendSpec) -> dict:
        """Capacity of ``backend``'s pool: ``{"pool", "capacity_bytes", "available_bytes"}``."""
        with _errors():
            pool = self.backend_pool(backend)
            with contextlib.suppress(libvirt.libvirtError):  # a refresh racing a volume's creation
                pool.refresh(0)
            _state, capacity, _allocation, available = pool.info()
            return {"pool": pool.name(), "capacity_bytes": int(capacity), "available_bytes": int(available)}

    def _volume(self, pool: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol | None:
        try:
            return pool.storageVolLookupByName(name)
        except libvirt.libvirtError as exc:
            if _is_missing(exc, libvirt.VIR_ERR_NO_STORAGE_VOL):
                return None
            raise

    def _existing(self, pool: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol:
        vol = self._volume(pool, name)
        if vol is None:
            raise VolumeNotFound(f"no volume {name!r} in pool {pool.name()!r}")
        return vol

    def _info(self, vol: libvirt.virStorageVol) -> dict:
        _type, capacity, allocation = vol.info()
        return {
            "name": vol.name(),
            "path": vol.path(),
            "capacity_bytes": int(capacity),
            "allocation_bytes": int(allocation),
            "format": dx.volume_format_from_xml(vol.XMLDesc(0)),
        }

    def _new_volume_xml(
        self, backend: BackendSpec, name: str, size_bytes: int, fmt: str | None = None
    ) -> str:
        fmt = fmt or backend.volume_format
        vol_type = {"dir": "file", "logical": "block", "rbd": "network"}[backend.type]
        return dx.volume_xml(name, int(size_bytes), fmt if backend.type == "dir" else None, vol_type=vol_type)

    def volume_info(self, backend: BackendSpec, name: str) -> dict | None:
        """``{"name", "path", "capacity_bytes", "allocation_bytes", "format"}``; None if missing."""
        with _errors():
            vol = self._volume(self.backend_pool(backend), name)
            return None if vol is None else self._info(vol)

    def volume_create(self, backend: BackendSpec, name: str, size_bytes: int) -> dict:
        """A blank volume (qcow2 in a dir pool, raw elsewhere). Idempotent: an existing volume of at
        least that size is answered as it is; a smaller one is an error (someone else's)."""
        with _errors():
            pool = self.backend_pool(backend)
            vol = self._volume(pool, name)
            if vol is None:
                vol = pool.createXML(self._new_volume_xml(backend, name, size_bytes), 0)
            info = self._info(vol)
            if info["capacity_bytes"] < size_bytes:
                raise DriverError(
                    f"volume {name!r} already exists in pool {pool.name()!r} with "
                    f"{info['capacity_bytes']} bytes, not {size_bytes}"
                )
            return info

    def volume_create_from_file(
        self,
        backend: BackendSpec,
        name: str,
        path: str,
        fmt: str,
        size_bytes: int,
        progress: Progress | None = None,
    ) -> dict:
        """A volume holding a full copy of the image file ``path`` (of format ``fmt``), at least
        ``size_bytes`` large: not a backing-file link, so it outlives the image. The bytes go through
        libvirt's stream upload (``progress(bytes_sent)`` after each chunk), then the volume grows to
        ``size_bytes``. A qcow2 image into a raw-only backend (logical, rbd) needs a conversion this
        driver does not do: NotSupported. On failure the half-written volume is deleted.

        On libvirt's test driver (no upload, no bytes in volumes) the volume is created at its size
        without the image's content, and the answer says ``"copied": False``.
        """
        fmt = fmt if fmt in ("qcow2", "raw") else "raw"
        if backend.type != "dir" and fmt != "raw":
            raise NotSupported(
                f"backend {backend.name!r} ({backend.type}) holds raw volumes only; converting a "
                f"{fmt} image into it is not supported"
            )
        file_size = os.path.getsize(path)
        with _errors():
            pool = self.backend_pool(backend)
            if self.simulated:
                capacity = max(int(size_bytes), file_size)
                vol = self._volume(pool, name) or pool.createXML(
                    self._new_volume_xml(backend, name, capacity, fmt), 0
                )
                return {**self._info(vol), "copied": False, "bytes_copied": 0}
            if self._volume(pool, name) is not None:
                raise DriverError(f"volume {name!r} already exists in pool {pool.name()!r}")
            vol = pool.createXML(self._new_volume_xml(backend, name, file_size, fmt), 0)
            try:
                sent = self._upload(vol, path, file_size, progress)
                pool.refresh(0)
                vol = pool.storageVolLookupByName(name)
                if vol.info()[1] < size_bytes:
                    vol.resize(int(size_bytes), 0)
            except BaseException:
                with contextlib.suppress(libvirt.libvirtError):
                    vol.delete(0)
                raise
            return {**self._info(vol), "copied": True, "bytes_copied": sent}

    def _upload(self, vol: libvirt.virStorageVol, source: ByteSource, size: int, progress) -> int:
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
            return sent
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
            raise

    def volume_copy(self, backend: BackendSpec, name: str, source: str, size_bytes: int = 0) -> dict:
        """Volume ``name``: a full copy of volume ``source`` of the same pool (a clone, a snapshot,
        a volume from a snapshot: libvirt's createXMLFrom), grown to ``size_bytes`` when larger.
        An existing ``name`` is answered as it is (a redelivered request)."""
        with _errors():
            pool = self.backend_pool(backend)
            vol = self._volume(pool, name)
            if vol is None:
                src = self._existing(pool, source)
                src_info = self._info(src)
                capacity = max(int(size_bytes), src_info["capacity_bytes"])
                xml = self._new_volume_xml(backend, name, src_info["capacity_bytes"], src_info["format"])
                vol = pool.createXMLFrom(xml, src, 0)
                if capacity > self._info(vol)["capacity_bytes"]:
                    try:
                        self._grow(pool, vol, backend, capacity)
                    except BaseException:
                        with contextlib.suppress(libvirt.libvirtError):
                            vol.delete(0)
                        raise
                    vol = pool.storageVolLookupByName(name)
            return self._info(vol)

    def volume_extend(self, backend: BackendSpec, name: str, size_bytes: int) -> dict:
        """Grow volume ``name`` to ``size_bytes`` (never shrinks: a smaller size is an error; the
        same size is done already). The guest of an attached volume learns it from the compute host
        (``resize_disk``)."""
        with _errors():
            pool = self.backend_pool(backend)
            vol = self._existing(pool, name)
            current = self._info(vol)["capacity_bytes"]
            if size_bytes < current:
                raise DriverError(f"volume {name!r} has {current} bytes: it cannot shrink to {size_bytes}")
            if size_bytes > current:
                self._grow(pool, vol, backend, int(size_bytes))
            return self._info(pool.storageVolLookupByName(name))

    def _grow(self, pool, vol, backend: BackendSpec, size_bytes: int) -> None:
        """libvirt's volume resize; on the test driver, which has none and holds no bytes, the
        equivalent: the volume made again at the new size (there is no content to lose)."""
        try:
            vol.resize(size_bytes, 0)
        except libvirt.libvirtError as exc:
            if not (self.simulated and isinstance(translate(exc), NotSupported)):
                raise
            info = self._info(vol)
            vol.delete(0)
            pool.createXML(self._new_volume_xml(backend, info["name"], size_bytes, info["format"]), 0)

    def volume_delete(self, backend: BackendSpec, name: str) -> bool:
        """Delete volume ``name``; False when it was not there (idempotent)."""
        with _errors():
            pool = self.backend_pool(backend)
            vol = self._volume(pool, name)
            if vol is None:
                return False
            vol.delete(0)
            return True

    def volume_connection(self, backend: BackendSpec, name: str) -> dict:
        """How a compute host attaches volume ``name``: ``workers.messages.VolumeConnection``'s fields
        (a file, a block device, or an rbd image with its monitors and secret)."""
        with _errors():
            info = self._info(self._existing(self.backend_pool(backend), name))
        if backend.type == "rbd":
            return {
                "type": "network",
                "path": f"{backend.source}/{name}",
                "format": "raw",
                "protocol": "rbd",
                "hosts": tuple(backend.hosts),
                "secret_uuid": backend.secret_uuid,
            }
        return {
            "type": "file" if backend.type == "dir" else "block",
            "path": info["path"],
            "format": info["format"] if backend.type == "dir" else "raw",
            "protocol": "",
            "hosts": (),
            "secret_uuid": "",
        }

    def volume_read(self, backend: BackendSpec, name: str) -> Iterator[bytes]:
        """The bytes of volume ``name`` as stored (libvirt's stream download), in chunks. The test
        driver has no download: NotSupported, raised before the first chunk."""
        with _errors():
            vol = self._existing(self.backend_pool(backend), name)
            stream = self.conn.newStream(0)
            vol.download(stream, 0, 0, 0)

        def chunks() -> Iterator[bytes]:
            try:
                while True:
                    with _errors():
                        data = stream.recv(CHUNK)
                    if data == -2:
                        continue  # would block: a non-blocking stream only
                    if not data:
                        break
                    yield data
                with _errors():
                    stream.finish()
            except BaseException:
                with contextlib.suppress(libvirt.libvirtError):
                    stream.abort()
                raise

        return chunks()


def backend_identity(backend: BackendSpec) -> str:
    """What makes two backend pools the same: a dir pool's directory, a logical pool's volume group,
    an rbd pool's monitors and Ceph pool."""
    if backend.type == "dir":
        return os.path.normpath(backend.path)
    if backend.type == "logical":
        return f"logical:{backend.source}"
    return f"rbd:{','.join(sorted(backend.hosts))}/{backend.source}"


def backend_pool_xml(name: str, backend: BackendSpec) -> str:
    return dx.pool_xml(
        name,
        backend.path,
        pool_type=backend.type,
        source=backend.source,
        hosts=backend.hosts,
        auth_user=backend.auth_user,
        secret_uuid=backend.secret_uuid,
    )


def _chunks(source: ByteSource) -> Iterable[bytes]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fh:
            while chunk := fh.read(CHUNK):
                yield chunk
    else:
        for chunk in source:
            if chunk:
                yield bytes(chunk)
