"""Signed image download URLs (issue 16, item 3): the expiry they carry is verified (a far-future one
is refused, whatever the signing time says), and the project a URL was issued for is re-checked at
download: once removed from the image's members (or after leaving it) its old URL stops working."""

from __future__ import annotations

import time
import urllib.parse

import pytest
from django.core import signing
from rest_framework.test import APIClient

from compute import services
from compute.models import ImageMember
from identity.errors import PolicyDenied
from tests.identity.helpers import error_of

from .image_helpers import DATA, share_accepted, uploaded_image


def token_of(url: str) -> str:
    return urllib.parse.urlsplit(url).path.rsplit("/", 1)[1]


def download(url: str):
    return APIClient().get(urllib.parse.urlsplit(url).path)


def forged(image, **changes) -> str:
    """A token signed with this deployment's key but with the payload fields in ``changes``."""
    payload = {"i": str(image.pk), "c": image.checksum, "p": str(image.project_id), "v": None}
    payload["e"] = int(time.time()) + 3600
    return signing.dumps({**payload, **changes}, salt=services.images.TOKEN_SALT, compress=False)


def test_the_expiry_is_carried_and_capped(cloud, settings):
    image = uploaded_image(cloud.ctx(cloud.member))
    services.read_image_token(forged(image))
    with pytest.raises(PolicyDenied, match="longer than allowed"):
        services.read_image_token(forged(image, e=int(time.time()) + 10 * 365 * 86400))
    with pytest.raises(PolicyDenied) as info:
        services.read_image_token(forged(image, e=int(time.time()) - 1))
    assert info.value.code == "url_expired"
    for bad in (None, "soon", True, 1.5):
        with pytest.raises(PolicyDenied):
            services.read_image_token(forged(image, e=bad))
    settings.ZENITH_IMAGE_URL_TTL = 60  # lowering the lifetime also cuts the URLs already out
    with pytest.raises(PolicyDenied, match="longer than allowed"):
        services.read_image_token(forged(image, e=int(time.time()) + 3600))


def test_a_url_signed_in_the_future_is_refused(cloud, monkeypatch):
    """With the old tokens a signing time ten years ahead never expired."""
    image = uploaded_image(cloud.ctx(cloud.member))
    now = time.time()

    class Future:
        @staticmethod
        def time():
            return now + 10 * 365 * 86400

    monkeypatch.setattr(signing, "time", Future)
    token = forged(image)
    monkeypatch.undo()
    with pytest.raises(PolicyDenied) as info:
        services.read_image_token(token)
    assert info.value.code == "bad_signature"


def test_a_removed_member_cannot_download_with_an_old_url(cloud):
    alpha, beta = cloud.ctx(cloud.member), cloud.ctx(cloud.other_member)
    image = uploaded_image(alpha, "alpha-shared", visibility="shared")
    share_accepted(alpha, image, beta)
    url = services.image_boot_spec(image, cloud.other_project.pk)["url"]
    response = download(url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == DATA
    services.remove_image_member(alpha, image, cloud.other_project)
    response = download(url)
    assert response.status_code == 403
    assert error_of(response)["code"] == "not_entitled"
    # The owner's own URL still works.
    assert download(services.image_fetch_url(image)).status_code == 200


def test_leaving_or_a_private_image_ends_the_download(cloud):
    alpha, beta = cloud.ctx(cloud.member), cloud.ctx(cloud.other_member)
    image = uploaded_image(alpha, "alpha-shared", visibility="shared")
    share_accepted(alpha, image, beta)
    url = services.image_fetch_url(image, cloud.other_project.pk)
    services.set_image_member_status(beta, image, cloud.other_project, ImageMember.REJECTED)
    assert download(url).status_code == 403
    services.set_image_member_status(beta, image, cloud.other_project, ImageMember.ACCEPTED)
    assert download(url).status_code == 200
    services.update_image(alpha, image, visibility="private")
    assert download(url).status_code == 403
    # A project that was never a member: its URL (minted with the key) is refused too.
    assert (
        download("/api/v1/compute/image-data/" + forged(image, p=str(cloud.admin_project.pk))).status_code
        == 403
    )


def test_a_kernel_is_downloadable_through_the_image_that_names_it(cloud):
    """beta boots alpha's shared disk image whose kernel is private to alpha: the kernel's URL is good
    while beta may use the disk image, and only for kernels that image names."""
    alpha, beta = cloud.ctx(cloud.member), cloud.ctx(cloud.other_member)
    kernel = uploaded_image(alpha, "k", data=b"kernel", disk_format="aki", container_format="aki")
    image = uploaded_image(alpha, "direct", visibility="shared", properties={"kernel_id": str(kernel.pk)})
    share_accepted(alpha, image, beta)
    spec = services.image_boot_spec(image, cloud.other_project.pk)
    response = download(spec["kernel"]["url"])
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"kernel"
    other = uploaded_image(alpha, "other-kernel", data=b"k2", disk_format="aki", container_format="aki")
    via_wrong = forged(other, p=str(cloud.other_project.pk), v=str(image.pk))
    assert download("/api/v1/compute/image-data/" + via_wrong).status_code == 403
    services.remove_image_member(alpha, image, cloud.other_project)
    assert download(spec["kernel"]["url"]).status_code == 403
