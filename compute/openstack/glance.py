"""Image v2 (Glance) at ``/image``: images (list with filters, show, create, update by JSON patch,
delete) and their bytes (``PUT``/``GET /v2/images/{id}/file``), over ``compute.services``' images.

Glance's image is a flat object: Zenith's ``properties`` appear beside the fixed fields, and any
field a create names that is not one of them becomes a property (as Glance does).
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import re_path

from identity import policy
from identity.context import Context
from identity.errors import InvalidInput
from identity.openstack.http import (
    GLANCE,
    empty,
    endpoint,
    get_or_404,
    iso,
    json_body,
    keyset_page,
    not_found,
)
from identity.scoping import is_uuid

from .. import services
from ..api.images import image_file_response
from ..models import Image

UPLOAD_CHUNK = 1 << 20
# Fields Glance computes or Zenith does not keep: never turned into properties.
READ_ONLY = {
    "id",
    "status",
    "size",
    "virtual_size",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "owner",
    "created_at",
    "updated_at",
    "file",
    "self",
    "schema",
    "locations",
    "direct_url",
    "os_hidden",
}
FIELDS = {"name", "disk_format", "container_format", "visibility", "min_disk", "min_ram", "protected"}


def _versions(request: HttpRequest) -> list[dict]:
    return [
        {
            "id": "v2.16",
            "status": "CURRENT",
            "links": [{"rel": "self", "href": request.build_absolute_uri("/image/v2/")}],
        }
    ]


def versions(request, ctx):
    """``GET /image``: the version list (300, as Glance answers)."""
    return JsonResponse({"versions": _versions(request)}, status=300)


def version(request, ctx):
    return JsonResponse({"versions": _versions(request)})


def render_image(image: Image) -> dict:
    """An image as Glance v2 shows it (bare, not wrapped)."""
    body = {
        **(image.properties or {}),
        "id": str(image.pk),
        "name": image.name,
        "status": image.status,
        "visibility": image.visibility,
        "protected": image.protected,
        "os_hidden": False,
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "size": image.size,
        "virtual_size": None,
        "checksum": None,  # Glance's md5: Zenith keeps the sha256 (os_hash_value)
        "os_hash_algo": "sha256" if image.checksum else None,
        "os_hash_value": image.checksum or None,
        "min_disk": image.min_disk,
        "min_ram": image.min_ram,
        "owner": str(image.project_id) if image.project_id else None,
        "tags": [],
        "created_at": iso(image.created),
        "updated_at": iso(image.updated),
        "file": f"/v2/images/{image.pk}/file",
        "self": f"/v2/images/{image.pk}",
        "schema": "/v2/schemas/image",
    }
    return body


def list_images(request, ctx: Context):
    """``GET /v2/images``: filters ``name``, ``status``, ``visibility``, ``owner``, ``id=in:a,b``,
    ``disk_format``; ``limit`` and ``marker`` pages (ordered newest first)."""
    policy.enforce(ctx, "compute:image:list")
    rows = Image.objects.visible_to(ctx)
    params = request.GET
    for param, field in (
        ("name", "name"),
        ("status", "status"),
        ("visibility", "visibility"),
        ("disk_format", "disk_format"),
        ("container_format", "container_format"),
    ):
        value = params.get(param)
        if value:
            values = value[3:].split(",") if value.startswith("in:") else [value]
            rows = rows.filter(**{f"{field}__in": values})
    if params.get("owner"):
        rows = rows.filter(project_id=params["owner"]) if is_uuid(params["owner"]) else rows.none()
    if params.get("id"):
        ids = params["id"][3:].split(",") if params["id"].startswith("in:") else [params["id"]]
        rows = rows.filter(pk__in=[i for i in ids if is_uuid(i)])
    page, limit = keyset_page(
        request, rows.order_by("-created", "-id"), "marker {marker} could not be found."
    )
    body = {"images": [render_image(i) for i in page], "schema": "/v2/schemas/images", "first": "/v2/images"}
    if limit and len(page) == limit:
        query = params.copy()
        query["marker"] = str(page[-1].pk)
        body["next"] = f"/v2/images?{query.urlencode()}"
    return JsonResponse(body)


def _image(ctx: Context, image_id: str) -> Image:
    return get_or_404(Image.objects.visible_to(ctx), f"No image found with ID {image_id}", pk=image_id)


def show_image(request, ctx: Context, image_id: str):
    image = _image(ctx, image_id)
    policy.enforce(ctx, "compute:image:show")
    return JsonResponse(render_image(image))


def create_image(request, ctx: Context):
    """``POST /v2/images``: 201 with the image, ``queued`` until its bytes are uploaded."""
    body = json_body(request)
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object.")
    if body.get("id") is not None:
        raise InvalidInput("Image ids are assigned by Zenith: leave id out.")
    if body.get("tags"):
        raise InvalidInput("Image tags are not supported by this cloud.")
    properties = {k: v for k, v in body.items() if k not in FIELDS | READ_ONLY | {"tags"}}
    fields = {k: body[k] for k in FIELDS if body.get(k) is not None}
    fields.setdefault("disk_format", "raw")
    if "name" not in fields:
        raise InvalidInput("An image needs a name.")
    image = services.create_image(ctx, **fields, properties=properties)
    response = JsonResponse(render_image(image), status=201)
    response["Location"] = request.build_absolute_uri(f"/image/v2/images/{image.pk}")
    return response


def update_image(request, ctx: Context, image_id: str):
    """``PATCH /v2/images/{id}`` (JSON patch: add, replace, remove of ``/field`` paths)."""
    image = _image(ctx, image_id)
    ops = json_body(request)
    if not isinstance(ops, list):
        raise InvalidInput("Send a JSON patch: a list of operations.")
    changes: dict = {}
    properties = dict(image.properties or {})
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove"):
            raise InvalidInput("Each patch operation needs op add, replace or remove.")
        path = op.get("path")
        if not isinstance(path, str) or not path.startswith("/") or path.count("/") != 1:
            raise InvalidInput(f"Patch path {path!r} must be /<field>.")
        key = path[1:]
        if key in READ_ONLY or key in ("disk_format", "container_format"):
            raise InvalidInput(f"Attribute {key} is read-only.")
        if key in FIELDS:
            if op["op"] == "remove":
                raise InvalidInput(f"Attribute {key} cannot be removed.")
            changes[key] = op.get("value")
        elif op["op"] == "remove":
            if key not in properties:
                raise InvalidInput(f"Property {key} does not exist.")
            properties.pop(key)
        else:
            properties[key] = op.get("value")
    if properties != (image.properties or {}):
        changes["properties"] = properties
    image = services.update_image(ctx, image, **changes)
    return JsonResponse(render_image(image))


def delete_image(request, ctx: Context, image_id: str):
    services.delete_image(ctx, _image(ctx, image_id))
    return empty(204)


def _chunks(request: HttpRequest):
    while chunk := request.read(UPLOAD_CHUNK):
        yield chunk


def upload(request, ctx: Context, image_id: str):
    """``PUT /v2/images/{id}/file``: the raw body is the image (streamed, once; 204)."""
    image = _image(ctx, image_id)
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        raise InvalidInput("Send the image bytes as the request body, with a Content-Length header.")
    services.upload_image_data(ctx, image, _chunks(request), expected_size=length)
    return empty(204)


def download(request, ctx: Context, image_id: str):
    """``GET /v2/images/{id}/file``: the bytes of an active image (204 when it has none, as Glance)."""
    image = _image(ctx, image_id)
    if image.status == Image.QUEUED:
        return empty(204)
    return image_file_response(image, services.open_image_data(ctx, image))


ID = r"(?P<image_id>[^/]+)"

urlpatterns = [
    re_path(r"^$", endpoint(GLANCE, auth=False, get=versions)),
    re_path(r"^versions$", endpoint(GLANCE, auth=False, get=version)),
    re_path(r"^v2/?$", endpoint(GLANCE, auth=False, get=version)),
    re_path(r"^v2/images$", endpoint(GLANCE, get=list_images, post=create_image)),
    re_path(rf"^v2/images/{ID}$", endpoint(GLANCE, get=show_image, patch=update_image, delete=delete_image)),
    re_path(rf"^v2/images/{ID}/file$", endpoint(GLANCE, put=upload, get=download)),
    re_path(r"^v2/.*$", not_found(GLANCE)),
]
