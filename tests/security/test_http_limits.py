"""Size limits answer in the API's JSON error shape (issue 16, item 5): image uploads over
ZENITH_IMAGE_MAX_SIZE are a 413 (a 600 MB upload used to be accepted with no limit at all); bodies
over DATA_UPLOAD_MAX_MEMORY_SIZE and oversized headers were Django's HTML 400 page on the API."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from compute import services
from compute.models import Image
from identity.errors import TooLarge
from tests.compute.image_helpers import chunked
from tests.identity.helpers import error_of

IMAGES = "/api/v1/compute/images/"


@pytest.fixture
def small_images(settings, tmp_path):
    settings.ZENITH_IMAGE_MAX_SIZE = 1000
    settings.MEDIA_ROOT = tmp_path


def test_an_announced_upload_over_the_limit_is_a_413_and_the_image_stays_queued(cloud, clients, small_images):
    client = clients["member"]
    image = client.post(IMAGES, {"name": "big", "disk_format": "raw"}, format="json").json()
    response = client.put(f"{IMAGES}{image['id']}/file", b"x" * 1001, content_type="application/octet-stream")
    assert response.status_code == 413
    assert error_of(response)["code"] == "too_large"
    assert Image.objects.get(pk=image["id"]).status == Image.QUEUED
    response = client.put(f"{IMAGES}{image['id']}/file", b"x" * 1000, content_type="application/octet-stream")
    assert response.status_code == 200 and response.json()["status"] == "active"


def test_a_stream_passing_the_limit_is_killed(cloud, small_images):
    member = cloud.ctx(cloud.member)
    image = services.create_image(member, name="big", disk_format="raw")
    with pytest.raises(TooLarge):
        services.upload_image_data(member, image, chunked(b"x" * 5000, 100))
    image.refresh_from_db()
    assert image.status == Image.KILLED and not image.file.name


def test_the_dashboard_upload_over_the_limit_is_a_form_error(cloud, client, small_images):
    client.force_login(cloud.member)
    data = {
        "name": "big",
        "file": SimpleUploadedFile("big.img", b"x" * 1001),
        "disk_format": "raw",
        "visibility": "private",
        "min_disk": 0,
        "min_ram": 0,
    }
    response = client.post("/dashboard/compute/images/upload/", data)
    assert response.status_code == 400
    assert "limited to 1000 bytes" in response.content.decode()


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_a_body_over_the_limit_is_json_413_on_the_api(db, settings, content_type):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = '{"username": "' + "a" * 20_000 + '"}' if content_type.endswith("json") else "a=" + "b" * 20_000
    response = APIClient().post("/api/v1/auth/tokens", body, content_type=content_type)
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert error_of(response)["code"] == "too_large"


def test_oversized_headers_are_json_431_on_the_api_and_plain_elsewhere(cloud, clients, settings):
    settings.ZENITH_MAX_HEADER_BYTES = 8000
    response = clients["member"].get(IMAGES, HTTP_X_JUNK="j" * 9000)
    assert response.status_code == 431
    assert error_of(response)["code"] == "headers_too_large"
    assert APIClient().get("/login/", HTTP_X_JUNK="j" * 9000).status_code == 431
    assert clients["member"].get(IMAGES, HTTP_X_FINE="j" * 1000).status_code == 200
