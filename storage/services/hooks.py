"""What storage needs of images, which are compute's (storage never imports compute): compute
registers these at start-up (``compute.apps``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from identity.errors import InvalidInput


@dataclass(frozen=True)
class ImageSource:
    """An image a volume may start from, as the caller named it."""

    id: Any
    name: str
    min_disk_gb: int
    size_bytes: int


_image_resolver: Callable[[Any, Any], ImageSource] | None = None
_image_spec: Callable[[Any, Any], dict] | None = None


def register_images(resolve: Callable[[Any, Any], ImageSource], spec: Callable[[Any, Any], dict]) -> None:
    """``resolve(ctx, ref)``: the bootable image the caller names (InvalidInput otherwise);
    ``spec(image_id, project_id)``: the signed spec a host fetches it with (the spawn's)."""
    global _image_resolver, _image_spec
    _image_resolver, _image_spec = resolve, spec


@dataclass(frozen=True)
class ImageUpload:
    """How a volume becomes a new image: ``create(ctx, name=, disk_format=, volume_name=)`` the
    queued image's id; ``url(image_id, host_name)`` the signed PUT URL for that host;
    ``finish(image_id, ok=, checksum=, error=)`` the image's end once the host answered."""

    create: Callable[..., Any]
    url: Callable[[Any, str], str]
    finish: Callable[..., None]


_image_upload: ImageUpload | None = None


def register_image_upload(upload: ImageUpload) -> None:
    global _image_upload
    _image_upload = upload


def image_upload() -> ImageUpload:
    if _image_upload is None:
        raise InvalidInput("Volumes cannot be uploaded to images: no image service is installed.")
    return _image_upload


def resolve_image(ctx, ref) -> ImageSource:
    if _image_resolver is None:
        raise InvalidInput("Volumes cannot be created from images: no image service is installed.")
    return _image_resolver(ctx, ref)


def image_spec(image_id, project_id) -> dict:
    if _image_spec is None:
        raise InvalidInput("No image service is installed.")
    return _image_spec(image_id, project_id)


__all__ = [
    "ImageSource",
    "ImageUpload",
    "image_spec",
    "image_upload",
    "register_image_upload",
    "register_images",
    "resolve_image",
]
