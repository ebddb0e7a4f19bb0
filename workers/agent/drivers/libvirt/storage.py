"""Storage pools and volumes: the agent's own instance-disk pool, images imported into it."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable

import libvirt

from workers.agent.drivers.base import (
    ByteSource,
    DriverError,
    PoolConflict,
    Progress,
)
from workers.agent.drivers.libvirt import xml as dx
from workers.agent.drivers.libvirt.connection import _errors, _is_missing

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
            try:
                self._upload(vol, source, size, progress)
            except BaseException:
                with contextlib.suppress(libvirt.libvirtError):
                    vol.delete(0)
                raise
            return vol.path()

    def _upload(self, vol: libvirt.virStorageVol, source: ByteSource, size: int, progress) -> int:
        """Send ``source`` (a path or bytes chunks) into ``vol`` through libvirt's stream upload;
        ``progress(bytes_sent)`` after each chunk. The bytes sent. The test driver: NotSupported."""
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


def _chunks(source: ByteSource) -> Iterable[bytes]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fh:
            while chunk := fh.read(CHUNK):
                yield chunk
    else:
        for chunk in source:
            if chunk:
                yield bytes(chunk)
