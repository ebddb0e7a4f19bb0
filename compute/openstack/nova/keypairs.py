"""Key pairs: list (paged from 2.35), show, create (imported or generated), delete."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from identity import policy
from identity import services as identity_services
from identity.context import Context
from identity.errors import InvalidInput, PolicyDenied
from identity.models import KeyPair
from identity.openstack.http import (
    at_least,
    empty,
    get_or_404,
    iso,
    json_body,
    query_limit,
)
from identity.scoping import is_uuid

from .common import base_url, text_field


def render_keypair(request: HttpRequest, keypair: KeyPair, detail: bool = False) -> dict:
    body = {"name": keypair.name, "public_key": keypair.public_key, "fingerprint": keypair.fingerprint}
    if at_least(request, "2.2"):
        body["type"] = "ssh"
    if detail:
        body.update(
            {
                "user_id": str(keypair.user_id),
                "created_at": iso(keypair.created),
                "updated_at": None,
                "deleted": False,
                "deleted_at": None,
                "id": str(keypair.pk),
            }
        )
    return body


def _keypair_rows(request: HttpRequest, ctx: Context):
    """The caller's key pairs; from 2.10 a cloud admin names another user's with ``user_id``."""
    user_id = request.GET.get("user_id") if at_least(request, "2.10") else None
    if user_id and (ctx.user is None or user_id != str(ctx.user.pk)):
        if not ctx.is_admin:
            raise PolicyDenied("Only cloud admins may list another user's key pairs.")
        return KeyPair.objects.filter(user_id=user_id) if is_uuid(user_id) else KeyPair.objects.none()
    return KeyPair.objects.visible_to(ctx)


def list_keypairs(request, ctx: Context):
    """``GET /os-keypairs``: each wrapped twice, as Nova does; from 2.35 pages by name (``limit``,
    ``marker``)."""
    policy.enforce(ctx, "identity:keypair:list")
    rows = _keypair_rows(request, ctx).order_by("name")
    limit = None
    if at_least(request, "2.35"):
        marker = request.GET.get("marker")
        if marker:
            if not rows.filter(name=marker).exists():
                raise InvalidInput(f"marker [{marker}] not found")
            rows = rows.filter(name__gt=marker)
        limit = query_limit(request)
        if limit is not None:
            rows = rows[:limit]
    page = list(rows)
    body = {"keypairs": [{"keypair": render_keypair(request, k)} for k in page]}
    if limit is not None and page and len(page) == limit:
        query = request.GET.copy()
        query["marker"] = page[-1].name
        body["keypairs_links"] = [
            {"rel": "next", "href": f"{base_url(request)}/os-keypairs?{query.urlencode()}"}
        ]
    return JsonResponse(body)


def create_keypair(request, ctx: Context):
    """``POST /os-keypairs``: import ``public_key``, or generate a pair (the private key is in this
    answer only)."""
    body = json_body(request, "keypair")
    text_field(body, "name"), text_field(body, "public_key")
    if body.get("type") not in (None, "ssh"):
        raise InvalidInput("Only ssh key pairs are supported.")
    if body.get("user_id") not in (None, str(ctx.user.pk) if ctx.user else None):
        raise InvalidInput("Key pairs are created for the calling user only.")
    created = identity_services.create_keypair(ctx, name=body.get("name"), public_key=body.get("public_key"))
    answer = {**render_keypair(request, created.keypair), "user_id": str(created.keypair.user_id)}
    if created.private_key:
        answer["private_key"] = created.private_key
    return JsonResponse({"keypair": answer})


def _keypair(ctx: Context, name: str) -> KeyPair:
    return get_or_404(KeyPair.objects.visible_to(ctx), f"Keypair {name}", name=name)


def show_keypair(request, ctx: Context, name: str):
    return JsonResponse({"keypair": render_keypair(request, _keypair(ctx, name), detail=True)})


def delete_keypair(request, ctx: Context, name: str):
    identity_services.delete_keypair(ctx, _keypair(ctx, name))
    return empty(202)
