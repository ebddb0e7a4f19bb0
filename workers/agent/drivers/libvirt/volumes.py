"""Storage backends of the storage role: pools of the agent's own (dir, logical, rbd from one code
path: only the pool XML and the disk source type differ) and their volumes: create blank, from an
image file (a full copy), copy (clone, snapshot), extend, delete, connection info, read.

On libvirt's test driver (a simulated host) pools and volumes live in memory and hold no bytes:
what it cannot do raises NotSupported, except where the same end state needs no bytes (a volume
from an image is made at its size, its answer saying nothing was copied; a resize makes the volume
again at the new size).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import libvirt

from workers.agent.drivers.base import (
    BackendSpec,
    DriverError,
    NotSupported,
    Progress,
    VolumeInUse,
    VolumeNotFound,
)
from workers.agent.drivers.libvirt import xml as dx
from workers.agent.drivers.libvirt.connection import _errors, _is_missing, translate
from workers.agent.drivers.libvirt.storage import CHUNK, pool_name_for


class VolumesMixin:
    """The backends' pools (``backend_pool``) and the volumes in them (``volume_*``)."""

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
        ``size_bytes``. A qcow2 image into a backend of raw volumes (logical, rbd, a raw dir pool)
        must be converted first (``workers.agent.convert``, the storage task does it): given
        unconverted it is NotSupported. On failure the half-written volume is deleted.

        On libvirt's test driver (no upload, no bytes in volumes) the volume is created at its size
        without the image's content, and the answer says ``"copied": False``.
        """
        fmt = fmt if fmt in ("qcow2", "raw") else "raw"
        file_size = os.path.getsize(path)
        with _errors():
            pool = self.backend_pool(backend)
            if self.simulated:  # no bytes: the volume in the format the backend would hold
                capacity = max(int(size_bytes), file_size)
                held = backend.volume_format if backend.needs_conversion(fmt) else fmt
                vol = self._volume(pool, name) or pool.createXML(
                    self._new_volume_xml(backend, name, capacity, held), 0
                )
                return {**self._info(vol), "copied": False, "bytes_copied": 0}
            if backend.needs_conversion(fmt):
                raise NotSupported(
                    f"backend {backend.name!r} ({backend.type}) holds raw volumes: a {fmt} image is "
                    "converted to raw before it is copied in"
                )
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
                try:
                    vol = pool.createXMLFrom(xml, src, 0)
                except libvirt.libvirtError as exc:
                    if backend.type == "dir" and _write_locked(exc):
                        raise VolumeInUse(
                            f"volume {source!r} is open in a running guest (QEMU holds its write lock): "
                            "copy it once it is detached or its guest is shut off"
                        ) from exc
                    raise
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
                try:
                    self._grow(pool, vol, backend, int(size_bytes))
                except libvirt.libvirtError as exc:
                    if backend.type == "dir" and _write_locked(exc):
                        raise VolumeInUse(
                            f"volume {name!r} is open in a running guest (QEMU holds its write lock): a file "
                            "volume in use grows through its compute host's block resize (resize_volume)"
                        ) from exc
                    raise
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

    def volume_stored_size(self, backend: BackendSpec, name: str) -> int:
        """The length of ``volume_read``'s bytes: libvirt's physical size of the volume (a file's
        length, which for qcow2 is neither its capacity nor its allocated blocks; a device's size)."""
        with _errors():
            vol = self._existing(self.backend_pool(backend), name)
            try:
                return int(vol.infoFlags(libvirt.VIR_STORAGE_VOL_GET_PHYSICAL)[2])
            except libvirt.libvirtError as exc:
                if not isinstance(translate(exc), NotSupported):
                    raise
            path = vol.path()
            if backend.type == "dir" and os.path.isfile(path):
                return os.path.getsize(path)
            return int(vol.info()[1])

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


def _write_locked(exc: libvirt.libvirtError) -> bool:
    """qemu-img refused a file a running QEMU holds ("Failed to get ... "write" lock")."""
    return '"write" lock' in (exc.get_error_message() or "")


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
