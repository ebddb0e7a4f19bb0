"""Test setup for images: bytes in chunks, and images created and uploaded through the services."""

from __future__ import annotations

import hashlib

from compute import services
from compute.models import Image

DATA = b"QFI\xfb" + bytes(range(256)) * 300


def chunked(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def uploaded_image(ctx, name: str = "disk", data: bytes = DATA, **fields) -> Image:
    """An image created and uploaded through the services as ``ctx`` (status active)."""
    image = services.create_image(ctx, name=name, disk_format=fields.pop("disk_format", "qcow2"), **fields)
    return services.upload_image_data(ctx, image, chunked(data))


def share_accepted(owner_ctx, image: Image, member_ctx):
    """Offer ``image`` to ``member_ctx``'s project as ``owner_ctx`` and accept it as the member (the
    consent an image needs before it enters the member's catalogue)."""
    services.add_image_member(owner_ctx, image, member_ctx.project)
    return services.set_image_member_status(member_ctx, image, member_ctx.project, "accepted")
