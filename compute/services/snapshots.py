"""Instance snapshots (Nova's createImage): a new image of the instance's project made from its
root disk. The image is created ``queued`` here, with the request, and the instance's ``snapshot``
transition (``task_state`` image_snapshot) carries it out: its compute host copies the root disk,
flattened, and PUTs it to the image's signed upload URL (``image_uploads``); the answer settles both
(``InstanceLifecycle``): the image active with the size and checksum the portal computed, or killed
with the host's reason, the instance in the state it was in either way."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from identity import audit, policy
from identity.context import Context
from identity.errors import NotFound
from workers.lifecycle import clean_idempotency_key, operation_params

from ..models import Image, Instance
from . import images
from .lifecycle import INSTANCE

SNAPSHOT = "snapshot"
INHERITED_OUT = ("instance_uuid", "image_type", "base_image_ref")  # set anew on every snapshot


def _properties(instance: Instance) -> dict[str, str]:
    """Nova's snapshot properties: the base image's own (its kernel and ramdisk, its command line:
    what booting the copy needs), then ``instance_uuid``, ``image_type=snapshot`` and
    ``base_image_ref``."""
    base = instance.image
    inherited = {
        k: v for k, v in ((base.properties if base else None) or {}).items() if k not in INHERITED_OUT
    }
    own = {"instance_uuid": str(instance.pk), "image_type": "snapshot"}
    if base is not None:
        own["base_image_ref"] = str(base.pk)
    return {**inherited, **own}


def snapshot_instance(
    ctx: Context, instance: Instance, *, name: Any, idempotency_key: str | None = None
) -> tuple[Instance, Image]:
    """``POST instances/{id}/snapshot/``: a queued private image of the instance's project, to be
    filled from its root disk by its host; the instance and the image. Policy and validation are an
    image upload's (``compute:image:create`` and ``upload``) and the transition's; a retry with the
    same Idempotency-Key answers the first request's image and starts nothing. (The conductor's side
    is the instance lifecycle's: ``_snapshot_kwargs`` and ``_snapshot_settled``.)"""
    transition = INSTANCE.transitions[SNAPSHOT]
    policy.enforce(ctx, INSTANCE.policy_of(transition))
    policy.enforce(ctx, "compute:image:upload")
    key = clean_idempotency_key(idempotency_key)
    with transaction.atomic():
        row = (
            Instance.objects.select_for_update()
            .filter(pk=instance.pk)
            .exclude(vm_state=Instance.DELETED)
            .first()
        )
        if row is None:
            raise NotFound("No such instance.")
        earlier = audit.earlier_with_key(INSTANCE.kind, row.pk, key) if key else None
        if earlier is not None:
            row = INSTANCE.begin(
                ctx, row, SNAPSHOT, idempotency_key=key
            )  # replays, or 409 for another action
            image_id = operation_params(earlier.operation_id).get("image_id")
            image = Image.objects.filter(pk=image_id).first()
            if image is None:
                raise NotFound("The image of that snapshot no longer exists.")
            return row, image
        INSTANCE.refuse(ctx, row, transition)
        INSTANCE.check(ctx, row, transition)
        INSTANCE.refuse_after_state(ctx, row, transition)
        base = Image.objects.filter(pk=row.image_id).first() if row.image_id else None
        row.image = base
        image = images.create_image(
            ctx,
            name=name,
            disk_format="qcow2",
            min_disk=row.disk_gb,
            min_ram=base.min_ram if base else 0,
            properties=_properties(row),
        )
        row = INSTANCE.begin(ctx, row, SNAPSHOT, idempotency_key=key, params={"image_id": str(image.pk)})
    return row, image


__all__ = ["snapshot_instance"]
