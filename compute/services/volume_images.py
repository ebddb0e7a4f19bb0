"""A volume uploaded to a new image (Cinder's os-volume_upload_image), compute's half: the queued
image its storage host's bytes go to; the signed upload itself is ``image_uploads``' (shared with
instance snapshots). Storage calls these through its hooks."""

from __future__ import annotations

from typing import Any

from identity.context import Context
from identity.errors import InvalidInput

from . import images

FORMATS = ("qcow2", "raw")


def create_volume_image(ctx: Context, *, name: Any, disk_format: Any, volume_name: str) -> Any:
    """A queued private image of the caller's project, to receive a volume's bytes; its id."""
    if disk_format in (None, ""):
        disk_format = "raw"
    if disk_format not in FORMATS:
        raise InvalidInput(f"disk_format is one of {', '.join(FORMATS)}.")
    image = images.create_image(
        ctx,
        name=name,
        disk_format=disk_format,
        properties={"source_volume": volume_name[:255]},
    )
    return image.pk


__all__ = ["create_volume_image"]
