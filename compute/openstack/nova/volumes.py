"""Volume attachments of a server (``/servers/{id}/os-volume_attachments``): list, attach, show and
detach, onto compute's attach services (``server add volume`` / ``server remove volume``). 2.1's
shape (``id``, ``serverId``, ``volumeId``, ``device``) up to 2.53: the later fields come after it."""

from __future__ import annotations

from django.http import JsonResponse

from identity.context import Context
from identity.errors import InvalidInput, NotFound
from identity.openstack.http import empty, get_or_404, json_body
from storage.models import Attachment

from ...models import Instance
from ...services import volumes as volume_services


def _instance(ctx: Context, server_id: str) -> Instance:
    return get_or_404(Instance.objects.visible_to(ctx), f"Instance {server_id}", pk=server_id)


def _render(attachment: Attachment, server_id) -> dict:
    return {
        "id": str(attachment.volume_id),
        "serverId": str(server_id),
        "volumeId": str(attachment.volume_id),
        "device": attachment.device,
    }


def _attachments(instance: Instance) -> list[Attachment]:
    return volume_services.instance_volumes([instance.pk]).get(str(instance.pk), [])


def list_volume_attachments(request, ctx: Context, server_id: str):
    instance = _instance(ctx, server_id)
    return JsonResponse({"volumeAttachments": [_render(a, instance.pk) for a in _attachments(instance)]})


def show_volume_attachment(request, ctx: Context, server_id: str, volume_id: str):
    instance = _instance(ctx, server_id)
    for attachment in _attachments(instance):
        if str(attachment.volume_id) == volume_id:
            return JsonResponse({"volumeAttachment": _render(attachment, instance.pk)})
    raise NotFound(f"Volume {volume_id} is not attached to the server.")


def attach_volume(request, ctx: Context, server_id: str):
    """``POST``: ``{"volumeAttachment": {"volumeId", "device"?}}`` -> 200; the device is chosen here
    (as Nova's libvirt driver does, a requested one is only a hint)."""
    body = json_body(request, "volumeAttachment")
    volume_id = body.get("volumeId")
    if not isinstance(volume_id, str) or not volume_id:
        raise InvalidInput("volumeId is required.")
    device = body.get("device")
    if device is not None and not isinstance(device, str):
        raise InvalidInput("device must be a string.")
    instance = _instance(ctx, server_id)
    attachment = volume_services.attach_volume_to_instance(
        ctx, instance, volume_id, idempotency_key=request.headers.get("Idempotency-Key")
    )
    return JsonResponse({"volumeAttachment": _render(attachment, instance.pk)})


def detach_volume(request, ctx: Context, server_id: str, volume_id: str):
    instance = _instance(ctx, server_id)
    volume_services.detach_volume_from_instance(ctx, instance, volume_id)
    return empty(202)
