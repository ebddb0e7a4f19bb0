"""A volume from a qcow2 image on a backend of raw volumes: the storage agent's create task on a real
dir pool (qemu:///system) configured ``format: raw``, with a small qcow2 made here by qemu-img and
served on 127.0.0.1. The image is converted with qemu-img (its progress reported), the volume is a
raw file holding the image's disk; a qcow2 dir pool keeps the image as qcow2; an image larger than
its volume, or a corrupt one, is a clear failure leaving nothing behind."""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from workers.agent import convert, runtime, storage
from workers.messages import VolumeRequest, VolumeResult, VolumeSource

from .real_libvirt import real_dir_backends

GiB = 1024**3
MiB = 1024**2
PATTERN_AT, PATTERN_LEN = 3 * MiB, 64 * 1024


def qemu_img(*args: str) -> str:
    return subprocess.run(["qemu-img", *args], check=True, capture_output=True, text=True).stdout


def make_qcow2(path: Path, size: str) -> bytes:
    """A qcow2 of virtual ``size`` whose disk holds 0x5a bytes at PATTERN_AT (qemu-io writes them)."""
    qemu_img("create", "-q", "-f", "qcow2", str(path), size)
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", f"write -q -P 0x5a {PATTERN_AT} {PATTERN_LEN}", str(path)],
        check=True,
        capture_output=True,
    )
    return path.read_bytes()


@pytest.fixture
def served(tmp_path):
    """``served(data)``: the image spec a create request carries, its bytes on 127.0.0.1."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            data = files[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def serve(data: bytes, disk_format: str = "qcow2") -> dict:
        path = f"/image-{uuid.uuid4()}"
        files[path] = data
        return {
            "url": f"http://127.0.0.1:{server.server_port}{path}",
            "checksum": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "disk_format": disk_format,
        }

    yield serve
    server.shutdown()


@pytest.fixture
def pools(monkeypatch, tmp_path):
    """Two real dir backends: ``rawpool`` (format raw) and ``qcowpool`` (the default, qcow2)."""
    backends = [{"name": "rawpool", "format": "raw"}, {"name": "qcowpool"}]
    with real_dir_backends(monkeypatch, tmp_path, "convert-host", backends) as drv:
        yield drv


@pytest.fixture
def progress(monkeypatch):
    seen: list[tuple[int, str]] = []
    monkeypatch.setattr(
        storage.Progress, "__call__", lambda self, pct, message="": seen.append((pct, message))
    )
    return seen


def create(backend: str, image: dict, size_gb: int = 1) -> tuple[str, VolumeResult]:
    name = f"volume-{uuid.uuid4()}"
    request = VolumeRequest(
        backend=backend,
        name=name,
        size_gb=size_gb,
        source=VolumeSource(kind="image", image=image),
        operation_id="op",
    )
    return name, VolumeResult.from_dict(storage.create_volume(request.as_dict()))


def info(path: str) -> dict:
    return json.loads(qemu_img("info", "--output=json", path))


def test_a_qcow2_image_into_a_raw_dir_pool_is_converted_with_progress(pools, served, progress, tmp_path):
    image = served(make_qcow2(tmp_path / "small.qcow2", "8M"))
    name, result = create("rawpool", image)
    assert result.ok, result.error
    assert "converted from qcow2 to raw" in result.message
    assert (result.connection.type, result.connection.format) == ("file", "raw")
    assert result.size_bytes == GiB  # grown to the volume's size after the copy
    described = info(result.connection.path)
    assert (described["format"], described["virtual-size"]) == ("raw", GiB)
    with open(result.connection.path, "rb") as fh:
        head = fh.read(PATTERN_AT + PATTERN_LEN + 4096)
    assert head[:PATTERN_AT] == b"\0" * PATTERN_AT
    assert head[PATTERN_AT : PATTERN_AT + PATTERN_LEN] == b"\x5a" * PATTERN_LEN
    assert head[PATTERN_AT + PATTERN_LEN :] == b"\0" * 4096
    converting = [(pct, msg) for pct, msg in progress if msg.startswith("converting image from qcow2 to raw")]
    assert converting and all(50 <= pct <= 65 for pct, _msg in converting), progress
    assert converting[-1][1].endswith("100%")
    copying = [pct for pct, msg in progress if msg.startswith("copying image")]
    assert copying and min(copying) >= 65 and copying == sorted(copying)
    assert not list((runtime.host_dir() / "volumes-converting").glob("*"))  # the raw file is gone


def test_a_qcow2_dir_pool_keeps_the_image_as_qcow2(pools, served, progress, tmp_path):
    data = make_qcow2(tmp_path / "small.qcow2", "8M")
    name, result = create("qcowpool", served(data))
    assert result.ok, result.error
    assert "converted" not in result.message and result.connection.format == "qcow2"
    assert info(result.connection.path)["format"] == "qcow2"
    assert not any(msg.startswith("converting") for _pct, msg in progress)
    # The same disk as the image: qemu-img compares the guest-visible contents.
    qemu_img(
        "compare", "-q", "-f", "qcow2", "-F", "qcow2", str(tmp_path / "small.qcow2"), result.connection.path
    )


def test_an_image_larger_than_its_volume_is_refused_leaving_nothing(pools, served, tmp_path):
    image = served(make_qcow2(tmp_path / "big.qcow2", "2G"))
    name, result = create("rawpool", image, size_gb=1)
    assert not result.ok and "larger than the volume's" in result.error and str(2 * GiB) in result.error
    assert pools.volume_info(runtime.storage_backends()[0], name) is None
    assert not list((runtime.host_dir() / "volumes-converting").glob("*"))


def test_a_corrupt_qcow2_is_a_conversion_error(pools, served):
    name, result = create("rawpool", served(b"QFI\xfb" + b"\xff" * 8192))
    assert not result.ok and result.error.startswith("ConversionError: qemu-img cannot read the qcow2 image")
    assert pools.volume_info(runtime.storage_backends()[0], name) is None


def test_backend_formats_are_checked(monkeypatch):
    monkeypatch.setenv(
        runtime.BACKENDS_ENV, '[{"name": "lvm", "type": "logical", "source": "vg0", "format": "qcow2"}]'
    )
    with pytest.raises(runtime.BackendConfigError, match="raw only"):
        runtime.storage_backends()
    monkeypatch.setenv(runtime.BACKENDS_ENV, '[{"name": "d", "type": "dir", "format": "vmdk"}]')
    with pytest.raises(runtime.BackendConfigError, match="has format 'vmdk'"):
        runtime.storage_backends()
    monkeypatch.setenv(runtime.BACKENDS_ENV, '[{"name": "d", "type": "dir", "format": "raw"}, {"name": "q"}]')
    raw, qcow = runtime.storage_backends()
    assert (raw.volume_format, qcow.volume_format) == ("raw", "qcow2")
    assert (
        raw.needs_conversion("qcow2")
        and not raw.needs_conversion("raw")
        and not qcow.needs_conversion("qcow2")
    )


def test_no_qemu_img_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(convert, "QEMU_IMG", "qemu-img-not-installed")
    with pytest.raises(convert.ConversionError, match="qemu-utils"):
        convert.to_raw(str(tmp_path / "x"), "qcow2", tmp_path / "x.raw", GiB)
