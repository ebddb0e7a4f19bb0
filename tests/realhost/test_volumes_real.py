"""Volumes on real guests, at driver level (qemu:///system): a volume of a real ``dir`` backend
pool attached to a running guest is seen by it, holds what the guest writes, is read back by a
second guest after detach and attach there, grows while in use (the guest sees the new size), and
leaves nothing in the pool once deleted; and a guest boots from a volume made from its image.

The test guest (tests/guest/build.sh) prints ``ZENITH DISK vdb <bytes>`` when a disk appears, reads
or writes a marker in its first sector (``zenith.mark=<marker>`` on the kernel command line:
``ZENITH DISK WROTE vdb <marker>``, else ``ZENITH DISK DATA vdb <marker>``) and reports size changes.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid

import libvirt
import pytest

from workers.agent.drivers.base import BackendSpec, DiskSpec, DomainSpec, VolumeInUse
from workers.agent.drivers.libvirt import pool_name_for
from workers.agent.tasks import disk_spec
from workers.messages import VolumeAttachment, VolumeConnection

from .conftest import MARKER, record_timing, var_dir, wait_for_console

pytestmark = pytest.mark.realhost

GiB = 1024**3


@pytest.fixture
def backend(driver):
    """The real host's ``local`` backend: a dir pool of its own under the tests' state directory
    (``realhost.sh teardown`` undefines it), and every volume a test made deleted after it."""
    path = str(var_dir() / "realhost" / "volumes")
    spec = BackendSpec(name="local", type="dir", path=path, pool_name=pool_name_for(path, "realhost"))
    driver.backend_pool(spec)
    made: list[str] = []
    spec_and_made = (spec, made)
    yield spec_and_made
    for name in made:
        driver.volume_delete(spec, name)


def attachment(driver, spec: BackendSpec, volume: str, domain: str) -> DiskSpec:
    """The disk the compute side plugs: from the storage side's connection info, as the tasks do."""
    connection = VolumeConnection.from_dict(driver.volume_connection(spec, volume))
    return disk_spec(VolumeAttachment(domain=domain, connection=connection))


def extend_task(driver, spec: BackendSpec, volume: str, size_gb: int, monkeypatch):
    """The storage role's extend task on this real host, with the tests' driver and backend."""
    from workers.agent import runtime, storage
    from workers.messages import VolumeRequest, VolumeResult

    monkeypatch.setenv(runtime.HOST_ENV, "realhost")
    monkeypatch.setenv(runtime.URI_ENV, driver.uri)
    monkeypatch.setenv(runtime.BACKENDS_ENV, f'[{{"name": "local", "path": "{spec.path}"}}]')
    monkeypatch.setattr(runtime, "_driver", driver)
    request = VolumeRequest(backend="local", name=volume, size_gb=size_gb)
    return VolumeResult.from_dict(storage.extend_volume(request.as_dict()))


def test_a_volume_carries_data_from_one_guest_to_another_and_grows_in_use(
    driver, guests, backend, monkeypatch
):
    spec, made = backend
    mark = uuid.uuid4().hex[:12]
    writer, reader = guests.spec(f"zenith.mark={mark}"), guests.spec()
    driver.spawn(writer)
    driver.spawn(reader)
    volume = f"volume-{uuid.uuid4()}"
    made.append(volume)
    info = driver.volume_create(spec, volume, GiB)
    assert info["format"] == "qcow2" and info["capacity_bytes"] == GiB
    wait_for_console(driver, writer, MARKER, 1)
    wait_for_console(driver, reader, MARKER, 1)

    started = time.monotonic()
    done = driver.attach_disk(writer.name, attachment(driver, spec, volume, writer.name))
    record_timing("volume attach call (libvirt, live + persistent)", time.monotonic() - started)
    assert done == {"target": "vdb", "attached": True, "live": True}
    wait_for_console(driver, writer, f"ZENITH DISK vdb {GiB}", 1, deadline=30)
    record_timing("volume attach to seen in the guest", time.monotonic() - started)
    wait_for_console(driver, writer, f"ZENITH DISK WROTE vdb {mark}", 1, deadline=30)
    assert driver.detach_disk(writer.name, info["path"])["detached"] is True
    wait_for_console(driver, writer, "ZENITH DISK GONE vdb", 1, deadline=30)

    started = time.monotonic()
    assert driver.attach_disk(reader.name, attachment(driver, spec, volume, reader.name))["live"] is True
    wait_for_console(driver, reader, f"ZENITH DISK DATA vdb {mark}", 1, deadline=30)
    record_timing("volume attach to marker read in the second guest", time.monotonic() - started)

    # In use, QEMU holds the qcow2 file: the storage side says so, the compute side's block resize
    # grows it, and the guest sees the new size.
    with pytest.raises(VolumeInUse, match="block resize"):
        driver.volume_extend(spec, volume, 2 * GiB)
    snapshot = f"snapshot-{uuid.uuid4()}"
    made.append(snapshot)
    with pytest.raises(VolumeInUse, match="detached"):  # qemu-img cannot read it either
        driver.volume_copy(spec, snapshot, volume)
    assert snapshot not in driver.backend_pool(spec).listVolumes()
    answer = extend_task(driver, spec, volume, 2, monkeypatch)
    assert answer.ok and answer.in_use and answer.size_bytes == GiB, answer  # not grown, and says so
    started = time.monotonic()
    assert driver.resize_disk(reader.name, info["path"], 2 * GiB) == {"target": "vdb", "live": True}
    wait_for_console(driver, reader, f"ZENITH DISK SIZE vdb {2 * GiB}", 1, deadline=30)
    record_timing("in-use extend to new size seen in the guest", time.monotonic() - started)
    assert driver.volume_info(spec, volume)["capacity_bytes"] == 2 * GiB
    assert driver.volume_extend(spec, volume, 2 * GiB)["capacity_bytes"] == 2 * GiB  # done already
    done = extend_task(driver, spec, volume, 2, monkeypatch)
    assert done.ok and not done.in_use and done.size_bytes == 2 * GiB

    assert driver.detach_disk(reader.name, "vdb")["detached"] is True
    persistent = driver.conn.lookupByName(reader.name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert info["path"] not in persistent
    assert driver.volume_delete(spec, volume) is True
    assert driver.volume_delete(spec, volume) is False
    assert volume not in driver.backend_pool(spec).listVolumes()
    assert not os.path.exists(info["path"])


def test_a_guest_boots_from_a_volume_made_from_its_image(driver, guests, backend, realhost):
    """The image's bytes fully copied into a volume (no backing file: it outlives the image), grown to
    1 GiB, and used as the root disk; a snapshot of it is a volume of its own."""
    spec, made = backend
    volume, snapshot = f"volume-{uuid.uuid4()}", f"snapshot-{uuid.uuid4()}"
    made += [snapshot, volume]
    sent = []
    info = driver.volume_create_from_file(
        spec, volume, realhost.root_disk, "qcow2", GiB, progress=sent.append
    )
    assert info["copied"] and info["bytes_copied"] == os.path.getsize(realhost.root_disk) == sent[-1]
    assert info["capacity_bytes"] == GiB
    assert "backingStore><path" not in driver.conn.storageVolLookupByPath(info["path"]).XMLDesc(0)
    copy = driver.volume_copy(spec, snapshot, volume)
    assert copy["path"] != info["path"] and copy["capacity_bytes"] == GiB
    # Its bytes as stored, streamed out of libvirt (what upload_volume PUTs to the portal).
    with open(copy["path"], "rb") as fh:
        on_disk = hashlib.sha256(fh.read()).hexdigest()
    streamed = hashlib.sha256(b"".join(driver.volume_read(spec, snapshot))).hexdigest()
    assert streamed == on_disk

    instance = str(uuid.uuid4())
    boot = DomainSpec(
        name=f"zenith-{instance}",
        uuid=instance,
        vcpus=1,
        memory_mb=192,
        disks=[attachment(driver, spec, volume, f"zenith-{instance}")],
        console_log=str(guests.console_dir / f"{instance}.log"),
        kernel=realhost.kernel,
        ramdisk=realhost.ramdisk,
        cmdline=realhost.cmdline,
    )
    guests.names.append(boot.name)
    started = time.monotonic()
    driver.spawn(boot)
    wait_for_console(driver, boot, MARKER, 1)
    record_timing("boot from a volume to ready", time.monotonic() - started)
    assert f"ZENITH DISK vda {GiB}" in driver.console_log(boot.console_log, 2000)
    # Deleting the instance leaves the volume (it is not the instance pool's disk).
    driver.destroy_and_undefine(boot.name)
    assert driver.volume_info(spec, volume) is not None


@pytest.fixture
def image_url(realhost):
    """The guest's root-disk image served over HTTP on 127.0.0.1, as the portal's signed URL does."""
    import http.server
    import threading

    with open(realhost.root_disk, "rb") as fh:
        data = fh.read()

    uploads = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self):  # a Content-Length body, as upload_volume sends it (never chunked)
            assert "Transfer-Encoding" not in self.headers
            uploads.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {
        "url": f"http://127.0.0.1:{server.server_port}/image",
        "checksum": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "disk_format": "qcow2",
        "uploads": uploads,
        "base": f"http://127.0.0.1:{server.server_port}",
    }
    server.shutdown()


def test_the_create_task_copies_an_image_into_a_real_pool_with_progress(image_url, monkeypatch, tmp_path):
    """``workers.agent.storage.create_volume`` on qemu:///system: the image fetched, its bytes copied
    into the volume (progress reported in bytes), the answer's connection a qcow2 file; no guest."""
    from workers.agent import runtime, storage
    from workers.messages import VolumeRequest, VolumeResult, VolumeSource

    path = var_dir() / "realhost" / "volumes-tasks"
    monkeypatch.setenv(runtime.HOST_ENV, "realhost-tasks")
    monkeypatch.setenv(runtime.URI_ENV, "qemu:///system")
    monkeypatch.setenv(runtime.VAR_ENV, str(tmp_path))
    monkeypatch.setenv(runtime.POOL_ENV, str(var_dir() / "realhost" / "pool"))
    monkeypatch.setenv(runtime.BACKENDS_ENV, f'[{{"name": "local", "type": "dir", "path": "{path}"}}]')
    monkeypatch.setattr(runtime, "_driver", None)
    messages = []
    monkeypatch.setattr(
        storage.Progress, "__call__", lambda self, percent, message="": messages.append((percent, message))
    )
    volume = f"volume-{uuid.uuid4()}"
    image = {k: image_url[k] for k in ("url", "checksum", "size", "disk_format")}
    request = VolumeRequest(
        backend="local",
        name=volume,
        size_gb=1,
        source=VolumeSource(kind="image", image=image),
        operation_id="op",
    )
    try:
        result = VolumeResult.from_dict(storage.create_volume(request.as_dict()))
        assert result.ok, result.error
        assert f"{image_url['size']} bytes copied" in result.message
        assert (
            result.size_bytes == GiB
            and result.connection.type == "file"
            and result.connection.format == "qcow2"
        )
        assert any("copied" in message for _percent, message in messages), messages
        assert storage.create_volume(request.as_dict())["existed"] is True  # redelivered
        upload = VolumeRequest(backend="local", name=volume, upload_url=f"{image_url['base']}/upload?token=t")
        uploaded = VolumeResult.from_dict(storage.upload_volume(upload.as_dict()))
        assert uploaded.ok, uploaded.error
        with open(result.connection.path, "rb") as fh:
            stored = fh.read()
        assert image_url["uploads"] == [stored] and uploaded.size_bytes == len(stored)
        assert uploaded.checksum == hashlib.sha256(stored).hexdigest()
        report = storage.report_section()
        assert [(b["name"], b["reaches"], b["simulated"]) for b in report["backends"]] == [
            ("local", ["realhost-tasks"], False)
        ]
    finally:
        deleted = storage.delete_volume(VolumeRequest(backend="local", name=volume).as_dict())
        runtime.close_driver()
    assert deleted["ok"] and deleted["existed"]
