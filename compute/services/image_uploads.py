"""Signed uploads to an image from a host: a volume's bytes from its storage host (Cinder's
os-volume_upload_image), an instance's root disk from its compute host (a snapshot). The queued
image, the signed PUT URL its host sends the bytes to (good for that image, that host and
``ZENITH_IMAGE_URL_TTL`` seconds), the bytes received through ``upload_image_data``'s own stream
(size and sha256 computed here), and the image's end once the host answered: active when its
checksum agrees with ours, killed with the reason otherwise."""

from __future__ import annotations

import time

from django.conf import settings
from django.core import signing
from django.urls import reverse

from identity import audit
from identity.context import system_context
from identity.errors import NotFound, PolicyDenied

from ..models import Image
from . import images

UPLOAD_SALT = "zenith.compute.volume-upload"  # kept: URLs signed before the generalisation stay good


def upload_url(image_id, host_name: str) -> str:
    """The signed URL host ``host_name`` PUTs the image's bytes to."""
    payload = {"i": str(image_id), "h": host_name, "e": int(time.time()) + settings.ZENITH_IMAGE_URL_TTL}
    token = signing.dumps(payload, salt=UPLOAD_SALT, compress=False)
    return settings.ZENITH_PORTAL_URL.rstrip("/") + reverse("image-volume-upload", kwargs={"token": token})


def receive_upload(token: str, chunks, expected_size: int | None = None) -> Image:
    """The bytes of a signed upload: the token must be ours, unexpired, for a queued image; they
    are stored as any upload is (queued -> saving -> active, killed on a broken stream). The image
    is uploaded once: a replayed URL finds it no longer queued (409)."""
    try:
        data = signing.loads(token, salt=UPLOAD_SALT, max_age=settings.ZENITH_IMAGE_URL_TTL)
    except signing.SignatureExpired:
        raise PolicyDenied("This upload URL has expired.", code="url_expired") from None
    except signing.BadSignature:
        raise PolicyDenied("This upload URL is not valid.", code="bad_signature") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("i"), str)
        or int(data.get("e", 0)) < time.time()
    ):
        raise PolicyDenied("This upload URL is not valid.", code="bad_signature")
    image = Image.objects.filter(pk=data["i"]).exclude(status=Image.DELETED).first()
    if image is None:
        raise NotFound("No such image.")
    return images.upload_image_data(system_context(), image, chunks, expected_size)


def finish_upload(
    image_id, *, ok: bool, checksum: str = "", error: str = "", properties: dict | None = None
) -> None:
    """The host answered its upload: the image stays active when the host's sha256 is the
    one computed here as the bytes arrived; otherwise it is killed (its bytes removed), the reason
    in its action log."""
    image = Image.objects.filter(pk=image_id).first()
    if image is None:
        return
    if ok and image.status == Image.ACTIVE and checksum and checksum == image.checksum:
        if properties:  # what only the host knew (e.g. that a simulated disk was its base image)
            Image.objects.filter(pk=image.pk).update(properties={**image.properties, **properties})
        return
    if ok and image.status == Image.ACTIVE:
        error = (
            f"the host's checksum {checksum or '(none)'} differs from the received bytes' {image.checksum}"
        )
    reason = error or f"the image is {image.status}: no bytes arrived"
    name = image.file.name if image.file else ""
    Image.objects.filter(pk=image.pk).exclude(status=Image.DELETED).update(status=Image.KILLED)
    if name:
        images._remove_bytes(name)
    audit.record(
        system_context(),
        "image",
        image.pk,
        "upload",
        project=image.project_id,
        result="error",
        message=reason,
    )


__all__ = ["finish_upload", "receive_upload", "upload_url"]
