"""A volume uploaded to a new image: the queued image, the signed PUT URL in the storage host's
request, the bytes received through it once, the image active with its checksum when the host's
agrees, killed with the reason when the host could not (a simulated host's NotSupported)."""

from __future__ import annotations

import hashlib

import pytest
from django.test import Client

from compute.models import Image
from identity.errors import Conflict
from storage import services
from storage.models import Volume
from tests.conftest import token_client

from .conftest import available, settle

pytestmark = pytest.mark.django_db
URL = "/api/v1/storage/volumes/"


def _request_of(volume: Volume) -> dict:
    transition = services.VOLUME.transitions["upload"]
    params = {"image_id": str(volume.operation.payload["params"]["image_id"])}
    return services.VOLUME.host_work(volume.operation_id, volume.pk, transition, params).kwargs["request"]


def test_upload_round_trip(cloud, pool, settings):
    settings.ZENITH_PORTAL_URL = "http://testserver"
    volume = available(cloud)
    volume, image_id = services.upload_to_image(cloud.ctx(cloud.member), volume, name="snap-image")
    assert volume.display_status == "uploading"
    image = Image.objects.get(pk=image_id)
    assert (image.status, image.project_id, image.disk_format) == ("queued", cloud.project.pk, "raw")
    with pytest.raises(Conflict, match="uploading"):
        services.delete_volume(cloud.ctx(cloud.member), volume)

    url = _request_of(Volume.objects.get(pk=volume.pk))["upload_url"]
    path = url.removeprefix("http://testserver")
    data = b"volume bytes" * 1000
    bad = Client().put(path[:-3] + "xyz", data, content_type="application/octet-stream")
    assert bad.status_code == 403
    response = Client().put(path, data, content_type="application/octet-stream")
    assert response.status_code == 204, response.content
    again = Client().put(path, data, content_type="application/octet-stream")
    assert again.status_code == 409  # once only
    checksum = hashlib.sha256(data).hexdigest()
    settle(
        volume, "upload", {"ok": True, "message": "uploaded", "size_bytes": len(data), "checksum": checksum}
    )
    assert Volume.objects.get(pk=volume.pk).display_status == "available"
    image.refresh_from_db()
    assert (image.status, image.checksum, image.size) == ("active", checksum, len(data))


def test_a_host_that_cannot_upload_kills_the_image_with_the_reason(cloud, pool):
    volume = available(cloud)
    volume, image_id = services.upload_to_image(
        cloud.ctx(cloud.member), volume, name="img", disk_format="qcow2"
    )
    answer = {"ok": False, "error": "NotSupported: the test driver has no stream download"}
    volume = settle(volume, "upload", answer)
    assert volume.display_status == "available" and "NotSupported" in volume.fault["message"]
    assert Image.objects.get(pk=image_id).status == "killed"


def test_the_api_endpoint(cloud, pool):
    client = token_client(cloud.member, cloud.project)
    volume = available(cloud)
    response = client.post(
        f"{URL}{volume.pk}/upload-to-image/", {"name": "x", "disk_format": "iso"}, format="json"
    )
    assert response.status_code == 400
    response = client.post(f"{URL}{volume.pk}/upload-to-image/", {"name": "x"}, format="json")
    assert response.status_code == 202, response.content
    data = response.json()
    assert (
        data["status"] == "uploading" and Image.objects.filter(pk=data["image_id"], status="queued").exists()
    )
    again = client.post(f"{URL}{volume.pk}/upload-to-image/", {"name": "y"}, format="json")
    assert again.status_code == 409 and "uploading" in again.json()["error"]["message"]
