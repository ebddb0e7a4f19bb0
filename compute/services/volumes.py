"""Instances and volumes: what only compute knows about a volume's work (which host an instance is
on, its domain, whether its state lets a disk be plugged in), handed to storage's services; and the
image hooks storage uses to create a volume from an image (storage never imports compute)."""

from __future__ import annotations

from typing import Any

from identity.context import Context
from identity.errors import Conflict, InvalidInput
from storage import services as storage
from storage.models import Attachment, Volume
from storage.services.hooks import ImageSource

from ..models import Image, Instance
from .images import image_boot_spec

I = Instance  # noqa: E741 - the state constants read better short

# A volume is plugged into a guest that exists: not while it is being built or deleted.
ATTACHABLE = (I.ACTIVE, I.STOPPED, I.PAUSED, I.SUSPENDED)


def _instance_ready(instance: Instance, verb: str) -> None:
    if instance.vm_state not in ATTACHABLE or instance.task_state:
        state = f"{instance.vm_state}" + (f", {instance.task_state}" if instance.task_state else "")
        raise Conflict(
            f"Cannot {verb} a volume while instance {instance.name} is {state}.", code="invalid_state"
        )
    if instance.host_id is None:
        raise Conflict(f"Instance {instance.name} is on no host.", code="invalid_state")


def attach_volume_to_instance(
    ctx: Context,
    instance: Instance,
    volume: Any,
    *,
    delete_on_termination: bool = False,
    idempotency_key: str | None = None,
) -> Attachment:
    """Attach a volume of the instance's project to it (``POST instances/{id}/volume-attachments/``):
    its compute host plugs it in; the device is chosen and reported."""
    volume_obj = Volume.objects.resolve(ctx, volume, "volume")
    _instance_ready(instance, "attach")
    host = Instance.objects.select_related("host").get(pk=instance.pk).host
    return storage.attach_volume(
        ctx,
        volume_obj,
        instance_id=instance.pk,
        host_name=host.name,
        delete_on_termination=delete_on_termination,
        idempotency_key=idempotency_key,
    )


def detach_volume_from_instance(
    ctx: Context, instance: Instance, volume_id: Any, idempotency_key: str | None = None
) -> Volume:
    """``DELETE instances/{id}/volume-attachments/{volume_id}/``: its compute host unplugs it."""
    volume = Volume.objects.get_visible(ctx, pk=volume_id)
    _instance_ready(instance, "detach")
    return storage.detach_volume(ctx, volume, instance_id=instance.pk, idempotency_key=idempotency_key)


def instance_volumes(instance_ids) -> dict[str, list[Attachment]]:
    """The volumes attached to each instance (one query)."""
    return storage.attachments_of(instance_ids)


# --- hooks storage calls ----------------------------------------------------------------------------


def _resolve_image(ctx: Context, ref: Any) -> ImageSource:
    image = Image.objects.resolve(ctx, ref, "image")
    if image.status != Image.ACTIVE:
        raise InvalidInput(f"Image {image.name} is {image.status}, not active: no volume can start from it.")
    if image.disk_format not in ("qcow2", "raw"):
        raise InvalidInput(f"Image {image.name} is a {image.disk_format} image: a volume needs a disk image.")
    return ImageSource(id=image.pk, name=image.name, min_disk_gb=image.min_disk, size_bytes=image.size or 0)


def _image_spec(image_id, project_id) -> dict:
    image = Image.objects.filter(pk=image_id).first()
    if image is None or image.status != Image.ACTIVE:
        raise InvalidInput("The volume's source image is no longer available.")
    return image_boot_spec(image, project_id)


def register_storage_hooks() -> None:
    from . import image_uploads, volume_images

    storage.register_images(_resolve_image, _image_spec)
    storage.register_image_upload(
        storage.ImageUpload(
            create=volume_images.create_volume_image,
            url=image_uploads.upload_url,
            finish=image_uploads.finish_upload,
        )
    )


__all__ = [
    "attach_volume_to_instance",
    "detach_volume_from_instance",
    "instance_volumes",
    "register_storage_hooks",
]
