"""Host-side tasks of the storage role, consumed from ``storage.<host>``; and its heartbeat section.

Every task takes one ``workers.messages.VolumeRequest`` as a dict and answers a
``workers.messages.VolumeResult`` as a dict (the ``{"ok": bool, "error": ...}`` shape of every host
answer). The conductor sends, by name (``workers.tasknames``)::

    send_task(AGENT_CREATE_VOLUME, kwargs={"request": VolumeRequest(...).as_dict()},
              queue=f"storage.{host}")

- ``create_volume(request)``: ``request.source.kind`` "blank" (``size_gb``), "image" (``source.image``:
  the signed image spec a spawn gets: url, checksum, size, disk_format; the image is fetched,
  cached, converted from qcow2 to raw with qemu-img when the backend holds raw volumes (logical,
  rbd, a raw dir pool; a qcow2 dir pool keeps it as it is), and fully copied into the volume,
  progress in bytes), "snapshot" or "volume"
  (``source.name``: that volume of the same backend, fully copied). Answers with ``size_bytes``,
  ``allocation_bytes`` and ``connection``. A volume that already exists (a redelivered request)
  answers ok with ``existed: True``; one whose copy a killed agent left unfinished is made again.
- ``delete_volume(request)``: ok whether or not it existed (``existed`` says which).
- ``extend_volume(request)``: grow to ``size_gb`` (never shrink); ``size_bytes`` after. A file volume
  a running guest holds cannot grow here (QEMU has its write lock): the answer is ok with
  ``in_use: True`` and the old ``size_bytes``, and the compute host's ``resize_volume`` (libvirt's
  block resize) grows it; a conductor that cannot send that resize must not count it as extended.
- ``snapshot_volume(request)``: ``name`` is the snapshot's volume, ``source.name`` the volume: a full
  copy, a volume of its own in the same pool.
- ``upload_volume(request)``: the bytes of volume ``name`` PUT to ``request.upload_url`` (format:
  the answer's ``connection.format``), streamed with a Content-Length (the volume's stored size);
  answers ``size_bytes`` sent and their sha256 ``checksum``.

A hypervisor error is an answer (``ok: False`` with libvirt's message), not an exception. On libvirt's
test driver (a simulated host) pools and volumes live in memory with no bytes: an image source is
fetched and verified and the volume made at its size, the answer's message saying its bytes were not
copied; an upload is NotSupported (no stream download there).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from celery import shared_task

from .. import tasknames
from ..messages import (
    MessageError,
    StorageBackendReport,
    StorageReport,
    VolumeConnection,
    VolumeRequest,
    VolumeResult,
    VolumeSource,
)
from . import convert, images, runtime
from .drivers.base import BackendSpec, DriverError, VolumeInUse
from .progress import Progress, fetch, put_stream
from .runtime import host_name

log = logging.getLogger(__name__)

GiB = 1024**3
MiB = 1024**2


class RequestError(Exception):
    """A request this host cannot act on (unknown backend, malformed message)."""


def backends() -> dict[str, BackendSpec]:
    return {b.name: b for b in runtime.storage_backends()}


def _backend(name: str) -> BackendSpec:
    known = backends()
    if name not in known:
        raise RequestError(f"host {host_name()} has no storage backend {name!r} (it has {', '.join(known)})")
    return known[name]


def _building_marker(backend: BackendSpec, name: str) -> Path:
    """A file that exists while a copy into volume ``name`` runs: a redelivered create (the agent was
    killed mid-copy) finds it and starts again instead of taking a half-copied volume as done."""
    return runtime.host_dir() / "volumes-building" / f"{backend.name}--{name}"


def _result(backend: BackendSpec, name: str, info: dict, **extra) -> dict:
    drv = runtime.driver()
    connection = VolumeConnection.from_dict(drv.volume_connection(backend, name))
    return VolumeResult(
        ok=True,
        size_bytes=info["capacity_bytes"],
        allocation_bytes=info["allocation_bytes"],
        connection=connection,
        **extra,
    ).as_dict()


def _failure(exc: Exception) -> dict:
    return VolumeResult(ok=False, error=f"{type(exc).__name__}: {exc}").as_dict()


def _run(request: dict, work) -> dict:
    """Parse ``request``, run ``work(req, backend)``, and turn every failure into an answer."""
    try:
        req = VolumeRequest.from_dict(request)
        return work(req, _backend(req.backend))
    except (MessageError, RequestError, runtime.BackendConfigError) as exc:
        return VolumeResult(ok=False, error=str(exc)).as_dict()
    except (
        DriverError,
        images.ImageFetchError,
        convert.ConversionError,
        OSError,
        KeyError,
        ValueError,
    ) as exc:
        log.warning("storage task on %s failed: %s", host_name(), exc)
        return _failure(exc)


def _create(req: VolumeRequest, backend: BackendSpec) -> dict:
    drv = runtime.driver()
    size = int(req.size_gb) * GiB
    marker = _building_marker(backend, req.name)
    existing = drv.volume_info(backend, req.name)
    if existing is not None and marker.exists():
        drv.volume_delete(backend, req.name)  # an unfinished copy of an earlier delivery
        existing = None
    if existing is not None:
        if existing["capacity_bytes"] < size:
            return VolumeResult(
                ok=False,
                error=f"volume {req.name} already exists with {existing['capacity_bytes']} bytes, not {size}",
            ).as_dict()
        return _result(backend, req.name, existing, existed=True, message=f"{req.name} exists")
    kind = req.source.kind
    if kind == "blank":
        info = drv.volume_create(backend, req.name, size)
        return _result(backend, req.name, info, existed=False, message=f"{req.name} created")
    if kind not in ("image", "snapshot", "volume"):
        return VolumeResult(ok=False, error=f"unknown volume source {kind!r}").as_dict()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    try:
        if kind == "image":
            info, message = _from_image(req, backend, size)
        else:
            if not req.source.name:
                return VolumeResult(ok=False, error=f"a {kind} source names its volume").as_dict()
            info = drv.volume_copy(backend, req.name, req.source.name, size)
            message = f"{req.name} copied from {kind} {req.source.name}"
    except BaseException:
        with contextlib.suppress(Exception):
            drv.volume_delete(backend, req.name)
        raise
    finally:
        marker.unlink(missing_ok=True)
    return _result(backend, req.name, info, existed=False, message=message)


def _from_image(req: VolumeRequest, backend: BackendSpec, size: int) -> tuple[dict, str]:
    image = req.source.image or {}
    progress = Progress(req.operation_id) if req.operation_id else None
    total = max(int(image.get("size") or 0), 1)
    mib = max(1, total // MiB)
    drv = runtime.driver()
    fmt = "qcow2" if image.get("disk_format") == "qcow2" else "raw"
    converting = backend.needs_conversion(fmt) and not drv.simulated
    copy_from = 65 if converting else 50  # the conversion takes 50-65 % of the bar

    def fetched(done: int, _total: int) -> None:
        if progress is not None:
            progress(5 + int(45 * done / total), f"fetching image: {done // MiB}/{mib} MiB")

    def converted(percent: float) -> None:
        if progress is not None:
            progress(50 + int(15 * percent / 100), f"converting image from {fmt} to raw: {percent:.0f}%")

    path = fetch(image, fetched)
    if not converting:
        return _copied(req, backend, path, fmt, size, total, 50, progress)
    raw = runtime.host_dir() / "volumes-converting" / f"{backend.name}--{req.name}.raw"
    try:
        raw_size = convert.to_raw(path, fmt, raw, size, converted)
        info, message = _copied(req, backend, str(raw), "raw", size, max(raw_size, 1), copy_from, progress)
    finally:
        raw.unlink(missing_ok=True)
    return info, f"{message} (converted from {fmt} to raw)"


def _copied(req, backend, path: str, fmt: str, size: int, total: int, start: int, progress):
    """Volume ``req.name`` holding a copy of the file ``path``; progress from ``start`` to 95 %."""
    mib = max(1, total // MiB)

    def copied(done: int) -> None:
        if progress is not None:
            share = (95 - start) * done / total
            progress(start + int(share), f"copying image: {done // MiB}/{mib} MiB copied")

    info = runtime.driver().volume_create_from_file(backend, req.name, path, fmt, size, progress=copied)
    if info.get("copied"):
        return info, f"{req.name} created from image: {info['bytes_copied']} bytes copied"
    return info, (
        f"{req.name} created from image on a simulated host: the image was fetched and verified, but "
        "libvirt's test driver holds no volume bytes, so none were copied"
    )


@shared_task(name=tasknames.AGENT_CREATE_VOLUME, acks_late=True)
def create_volume(request: dict) -> dict:
    """Create volume ``request.name`` in backend ``request.backend`` (see the module docstring)."""
    return _run(request, _create)


def _delete(req: VolumeRequest, backend: BackendSpec) -> dict:
    existed = runtime.driver().volume_delete(backend, req.name)
    _building_marker(backend, req.name).unlink(missing_ok=True)
    message = f"{req.name} deleted" if existed else f"{req.name} was not there"
    return VolumeResult(ok=True, existed=existed, message=message).as_dict()


@shared_task(name=tasknames.AGENT_DELETE_VOLUME, acks_late=True)
def delete_volume(request: dict) -> dict:
    """Delete volume ``request.name``; ok when it was already gone (``existed: False``)."""
    return _run(request, _delete)


def _extend(req: VolumeRequest, backend: BackendSpec) -> dict:
    drv = runtime.driver()
    try:
        info = drv.volume_extend(backend, req.name, int(req.size_gb) * GiB)
    except VolumeInUse:
        info = drv.volume_info(backend, req.name)
        message = (
            f"{req.name} is open in a running guest: not grown here; its compute host's block resize "
            f"(resize_volume) grows it to {req.size_gb} GiB"
        )
        return _result(backend, req.name, info, in_use=True, message=message)
    return _result(backend, req.name, info, message=f"{req.name} is {req.size_gb} GiB")


@shared_task(name=tasknames.AGENT_EXTEND_VOLUME, acks_late=True)
def extend_volume(request: dict) -> dict:
    """Grow volume ``request.name`` to ``request.size_gb`` GiB (the same size: done already)."""
    return _run(request, _extend)


def _snapshot(req: VolumeRequest, backend: BackendSpec) -> dict:
    if not req.source.name:
        return VolumeResult(ok=False, error="a snapshot names its volume in source.name").as_dict()
    snapshot = VolumeRequest(
        backend=req.backend,
        name=req.name,
        size_gb=req.size_gb,
        source=VolumeSource(kind="volume", name=req.source.name),
        operation_id=req.operation_id,
    )
    return _create(snapshot, backend)


@shared_task(name=tasknames.AGENT_SNAPSHOT_VOLUME, acks_late=True)
def snapshot_volume(request: dict) -> dict:
    """Volume ``request.name``: a full copy of volume ``request.source.name`` in the same pool."""
    return _run(request, _snapshot)


def _upload(req: VolumeRequest, backend: BackendSpec) -> dict:
    if not req.upload_url:
        return VolumeResult(ok=False, error="an upload names its upload_url").as_dict()
    drv = runtime.driver()
    info = drv.volume_info(backend, req.name)
    if info is None:
        return VolumeResult(ok=False, error=f"no volume {req.name} in backend {backend.name}").as_dict()
    progress = Progress(req.operation_id) if req.operation_id else None
    length = drv.volume_stored_size(backend, req.name)
    total = max(length, 1)

    def counted(chunks):
        done = 0
        for chunk in chunks:
            done += len(chunk)
            if progress is not None:
                progress(
                    min(95, 5 + int(90 * done / total)),
                    f"uploading: {done // MiB}/{length // MiB} MiB sent",
                )
            yield chunk

    sent, checksum = put_stream(req.upload_url, counted(drv.volume_read(backend, req.name)), length)
    result = _result(backend, req.name, info, checksum=checksum, message=f"{req.name}: {sent} bytes uploaded")
    return {**result, "size_bytes": sent}


@shared_task(name=tasknames.AGENT_UPLOAD_VOLUME, acks_late=True)
def upload_volume(request: dict) -> dict:
    """PUT the bytes of volume ``request.name`` to ``request.upload_url``."""
    return _run(request, _upload)


# -- the heartbeat's ``storage`` section ---------------------------------------------------------


def report_section(host: str | None = None, drv=None) -> dict:
    """The ``storage`` section of this host's heartbeat: a ``workers.messages.StorageReport`` of each
    backend's pool capacity, which compute hosts reach it (``["*"]`` when shared, else this host)
    and whether it is simulated (libvirt's test driver). A backend whose pool cannot be read now is
    left out (logged): the others still report."""
    drv = drv or runtime.driver()
    host = host or host_name()
    reports = []
    try:
        configured = runtime.storage_backends()
    except runtime.BackendConfigError:  # the compute section still goes out; the agent's start said so
        log.exception("storage backends of %s misconfigured", host)
        configured = []
    for backend in configured:
        try:
            pool = drv.backend_report(backend)
            simulated = drv.resolved_domain_type() == "test"
        except DriverError:
            log.exception("storage backend %s of %s cannot report", backend.name, host)
            continue
        reports.append(
            StorageBackendReport(
                name=backend.name,
                type=backend.type,
                pool=pool["pool"],
                capacity_bytes=pool["capacity_bytes"],
                available_bytes=pool["available_bytes"],
                reaches=("*",) if backend.shared else (host,),
                simulated=simulated,
            )
        )
    return StorageReport(backends=tuple(reports)).as_dict()
