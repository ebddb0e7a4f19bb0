"""A volume's upload to an image, the storage agent's task against the Django live server: the bytes
of a volume in a real ``dir`` pool (qemu:///system) streamed to compute's signed PUT URL with a
Content-Length, which Django's own servers need (they cannot read a chunked body); the image active
with the agent's checksum once the answer is settled. Skipped when qemu:///system cannot be reached
(``ZENITH_REQUIRE_REALHOST=1`` makes that a failure)."""

from __future__ import annotations

import hashlib
import os

import pytest

from compute.models import Image
from storage import services
from storage.models import Volume, VolumeType
from tests.storage.conftest import available, make_storage_host, settle
from tests.workers.real_libvirt import real_dir_backends
from workers.agent import runtime, storage
from workers.messages import VolumeRequest, VolumeResult

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BYTES = os.urandom(256 * 1024) + b"zenith volume upload" * 5000


@pytest.fixture
def real_backend(monkeypatch, tmp_path):
    """The agent's runtime on qemu:///system with one ``local`` dir backend under tmp_path."""
    # The flush of a transactional test empties the seeded default type.
    VolumeType.objects.get_or_create(name="default", defaults={"backend": "local", "is_default": True})
    with real_dir_backends(monkeypatch, tmp_path, "upload-host", [{"name": "local"}]) as drv:
        yield drv, runtime.storage_backends()[0]


@pytest.fixture
def upload_started(cloud, real_backend, live_server, settings, tmp_path):
    """An available volume whose upload to a new image has begun, its bytes (``BYTES``, raw) in the
    real pool: ``(volume, image_id, the storage host's request)``."""
    settings.ZENITH_PORTAL_URL = live_server.url
    drv, backend = real_backend
    make_storage_host("upload-host")
    volume = available(cloud, "data")
    volume, image_id = services.upload_to_image(cloud.ctx(cloud.member), volume, name="data-image")
    volume = Volume.objects.get(pk=volume.pk)
    transition = services.VOLUME.transitions["upload"]
    params = {"image_id": str(image_id)}
    request = services.VOLUME.host_work(volume.operation_id, volume.pk, transition, params).kwargs["request"]
    assert request["upload_url"].startswith(live_server.url)
    source = tmp_path / "content.raw"
    source.write_bytes(BYTES)
    drv.volume_create_from_file(
        backend, VolumeRequest.from_dict(request).name, str(source), "raw", len(BYTES)
    )
    return volume, image_id, request


def test_the_agent_uploads_a_real_volume_to_the_live_server(real_backend, upload_started):
    drv, backend = real_backend
    volume, image_id, request = upload_started
    assert drv.volume_stored_size(backend, VolumeRequest.from_dict(request).name) == len(BYTES)

    answer = storage.upload_volume(request)
    result = VolumeResult.from_dict(answer)
    assert result.ok, result.error
    assert (result.size_bytes, result.checksum) == (len(BYTES), hashlib.sha256(BYTES).hexdigest())
    image = Image.objects.get(pk=image_id)
    assert (image.status, image.size, image.checksum) == (Image.ACTIVE, len(BYTES), result.checksum)

    volume = settle(volume, "upload", answer)
    assert volume.display_status == "available"
    image.refresh_from_db()
    assert image.status == Image.ACTIVE  # the host's checksum agrees with the bytes received
    with image.file.open("rb") as fh:
        assert fh.read() == BYTES


def test_a_volume_longer_than_announced_is_cut_short_and_refused(real_backend, upload_started, monkeypatch):
    """A stream that does not match the announced length never becomes an image."""
    drv, _backend = real_backend
    volume, image_id, request = upload_started
    monkeypatch.setattr(type(drv), "volume_stored_size", lambda self, b, n: len(BYTES) - 1)
    answer = storage.upload_volume(request)
    assert not answer["ok"] and "more than the" in answer["error"]
    assert Image.objects.get(pk=image_id).status != Image.ACTIVE
    volume = settle(volume, "upload", answer)
    assert volume.display_status == "available" and "more than the" in volume.fault["message"]
    assert Image.objects.get(pk=image_id).status == Image.KILLED
