"""Image v2 (Glance) at ``/image``: images (list with filters, show, create, update by JSON patch,
delete), their bytes (``PUT``/``GET /v2/images/{id}/file``), tags, and members (the consent-based
sharing of ``compute.services``: an owner offers a shared image to a project, which accepts or
rejects it), over ``compute.services``' images.

Glance's image is a flat object: Zenith's ``properties`` appear beside the fixed fields, and any
field a create names that is not one of them becomes a property (as Glance does).
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import re_path

from identity import policy
from identity.context import Context
from identity.errors import InvalidInput, NotFound
from identity.models import Project
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
from ..models import Image, ImageMember

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
        "tags": list(image.tags or []),
        "created_at": iso(image.created),
        "updated_at": iso(image.updated),
        "file": f"/v2/images/{image.pk}/file",
        "self": f"/v2/images/{image.pk}",
        "schema": "/v2/schemas/image",
    }
    return body


def list_images(request, ctx: Context):
    """``GET /v2/images``: filters ``name``, ``status``, ``visibility``, ``owner``, ``id=in:a,b``,
    ``disk_format``, ``tag`` (repeatable: all of them); ``limit`` and ``marker`` pages (ordered
    newest first)."""
    policy.enforce(ctx, "compute:image:list")
    params = request.GET
    rows = _by_member_status(ctx, params.get("member_status", "accepted"))
    for tag in params.getlist("tag"):  # repeated: images with every one of them
        rows = rows.filter(tags__has_item=tag)
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


MEMBER_STATUSES = ("accepted", "pending", "rejected", "all")


def _by_member_status(ctx: Context, wanted: str):
    """The catalogue (``accepted``, the default), or the shared images offered to the caller's project
    whose membership is ``pending``, ``rejected``, or (``all``) the catalogue and both."""
    if wanted not in MEMBER_STATUSES:
        raise InvalidInput(f"member_status must be one of {', '.join(MEMBER_STATUSES)}.")
    if wanted == "accepted":
        return Image.objects.visible_to(ctx)
    statuses = (ImageMember.PENDING, ImageMember.REJECTED) if wanted == "all" else (wanted,)
    offered = Image.objects.offered_to(ctx, statuses)
    return (Image.objects.visible_to(ctx) | offered) if wanted == "all" else offered


def _image(ctx: Context, image_id: str, offered: bool = False) -> Image:
    """An image the caller can see; with ``offered`` also one offered to its project and not yet
    accepted (shown by id and decided on, as Glance lets a member)."""
    rows = _by_member_status(ctx, "all") if offered else Image.objects.visible_to(ctx)
    return get_or_404(rows, f"No image found with ID {image_id}", pk=image_id)


def show_image(request, ctx: Context, image_id: str):
    image = _image(ctx, image_id, offered=True)
    policy.enforce(ctx, "compute:image:show")
    return JsonResponse(render_image(image))


def create_image(request, ctx: Context):
    """``POST /v2/images``: 201 with the image, ``queued`` until its bytes are uploaded."""
    body = json_body(request)
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object.")
    if body.get("id") is not None:
        raise InvalidInput("Image ids are assigned by Zenith: leave id out.")
    properties = {k: v for k, v in body.items() if k not in FIELDS | READ_ONLY | {"tags"}}
    fields = {k: body[k] for k in FIELDS if body.get(k) is not None}
    fields.setdefault("disk_format", "raw")
    if "name" not in fields:
        raise InvalidInput("An image needs a name.")
    image = services.create_tagged_image(ctx, tags=body.get("tags") or [], **fields, properties=properties)
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
    tags = None
    properties = dict(image.properties or {})
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove"):
            raise InvalidInput("Each patch operation needs op add, replace or remove.")
        path = op.get("path")
        if not isinstance(path, str) or not path.startswith("/") or path.count("/") != 1:
            raise InvalidInput(f"Patch path {path!r} must be /<field>.")
        key = path[1:]
        if key == "tags":
            if op["op"] == "remove":
                tags = []
            elif not isinstance(op.get("value"), list):
                raise InvalidInput("tags must be a list of strings.")
            else:
                tags = op["value"]
            continue
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
    if tags is not None:
        image = services.set_image_tags(ctx, image, tags)  # checked before the other changes are made
    image = services.update_image(ctx, image, **changes)
    return JsonResponse(render_image(image))


def add_tag(request, ctx: Context, image_id: str, tag: str):
    """``PUT /v2/images/{id}/tags/{tag}`` (``image set --tag``): 204."""
    services.add_image_tag(ctx, _image(ctx, image_id), tag)
    return empty(204)


def remove_tag(request, ctx: Context, image_id: str, tag: str):
    """``DELETE /v2/images/{id}/tags/{tag}`` (``image unset --tag``): 204, 404 without that tag."""
    services.remove_image_tag(ctx, _image(ctx, image_id), tag)
    return empty(204)


def render_member(member: ImageMember) -> dict:
    return {
        "image_id": str(member.image_id),
        "member_id": str(member.project_id),
        "status": member.status,
        "created_at": iso(member.created),
        "updated_at": iso(member.updated),
        "schema": "/v2/schemas/member",
    }


def _member_project(project_id) -> Project:
    """A member is named by project id (any project: ids are not guessable, as in Glance)."""
    project = Project.objects.filter(pk=project_id).first() if is_uuid(str(project_id)) else None
    if project is None:
        raise InvalidInput(f"Member {project_id} is not a project of this cloud.")
    return project


def members(request, ctx: Context, image_id: str):
    """``GET /v2/images/{id}/members`` (``image member list``): the owner's view of the offers."""
    rows = services.list_image_members(ctx, _image(ctx, image_id)).order_by("created")
    return JsonResponse({"members": [render_member(m) for m in rows], "schema": "/v2/schemas/members"})


def add_member(request, ctx: Context, image_id: str):
    """``POST /v2/images/{id}/members`` ``{"member": project_id}`` (``image add project``): the
    membership starts pending until the member project accepts it."""
    image = _image(ctx, image_id)
    body = json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("member"), str):
        raise InvalidInput("The request body must be an object with a member (a project id).")
    return JsonResponse(render_member(services.add_image_member(ctx, image, _member_project(body["member"]))))


def _named_member(member_id: str) -> Project:
    project = Project.objects.filter(pk=member_id).first() if is_uuid(member_id) else None
    if project is None:
        raise NotFound(f"Member {member_id} not found.")
    return project


def member(request, ctx: Context, image_id: str, member_id: str):
    """``GET /v2/images/{id}/members/{project}``: for the owner, or the member project itself."""
    image = _image(ctx, image_id, offered=True)
    return JsonResponse(render_member(services.get_image_member(ctx, image, _named_member(member_id))))


def decide_member(request, ctx: Context, image_id: str, member_id: str):
    """``PUT /v2/images/{id}/members/{project}`` ``{"status": "accepted"|"rejected"|"pending"}``
    (``image set --accept``/``--reject``/``--pending``): the member project decides."""
    image = _image(ctx, image_id, offered=True)
    body = json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        raise InvalidInput("The request body must be an object with a status.")
    decided = services.set_image_member_status(ctx, image, _named_member(member_id), body["status"])
    return JsonResponse(render_member(decided))


def remove_member(request, ctx: Context, image_id: str, member_id: str):
    """``DELETE /v2/images/{id}/members/{project}`` (``image remove project``): 204."""
    services.remove_image_member(ctx, _image(ctx, image_id), _named_member(member_id))
    return empty(204)


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
    re_path(rf"^v2/images/{ID}/tags/(?P<tag>[^/]+)$", endpoint(GLANCE, put=add_tag, delete=remove_tag)),
    re_path(rf"^v2/images/{ID}/members$", endpoint(GLANCE, get=members, post=add_member)),
    re_path(
        rf"^v2/images/{ID}/members/(?P<member_id>[^/]+)$",
        endpoint(GLANCE, get=member, put=decide_member, delete=remove_member),
    ),
    re_path(r"^v2/.*$", not_found(GLANCE)),
]
