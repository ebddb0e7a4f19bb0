"""Block Storage v3 (Cinder) at ``/volume/v3``: version discovery, volumes (list, detail, create
blank or from an image, a snapshot or a volume, show, rename, delete, the os-extend, os-reset_status
and os-force_detach actions), snapshots, volume types, quota sets and limits.

Each view translates the request, calls ``storage.services`` with the request's Context and renders
Cinder's shape. Microversion 3.0 only is served (``OpenStack-API-Version: volume 3.0`` echoed):
every shape here is 3.0's. Errors are Cinder's ``{"badRequest": {"message", "code"}}``.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, re_path

from identity import policy, quotas
from identity import services as identity_services
from identity.context import Context
from identity.errors import InvalidInput
from identity.models import Project
from identity.openstack.http import (
    Microversion,
    Microversions,
    Service,
    empty,
    endpoint,
    get_or_404,
    iso,
    json_body,
    not_found,
    query_bool,
    quota_limit,
    quota_project,
)

from .. import queries, services
from ..models import Snapshot, Volume, VolumeType

# Cinder's fault names (cinder/api/openstack/wsgi.py).
CINDER_FAULTS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    501: "notImplemented",
    503: "serviceUnavailable",
}
AVAILABILITY_ZONE = "nova"
QUOTAS = ("volumes", "gigabytes", "snapshots")
# Cinder's quotas Zenith has no resource for (fixed: none of them, no per-volume limit).
FIXED_QUOTAS = {"backups": 0, "backup_gigabytes": 0, "groups": 0, "per_volume_gigabytes": -1}


def cinder_error(status: int, message: str) -> HttpResponse:
    return JsonResponse(
        {CINDER_FAULTS.get(status, "computeFault"): {"message": message, "code": status}}, status=status
    )


class VolumeMicroversions(Microversions):
    """Cinder names its microversion only in ``OpenStack-API-Version`` (no legacy header)."""

    def headers(self, version: Microversion) -> dict[str, str]:
        return {"OpenStack-API-Version": f"{self.service} {version}", "Vary": "OpenStack-API-Version"}


VOLUME_MICROVERSIONS = VolumeMicroversions(
    "volume", "OpenStack-API-Version", Microversion(3, 0), Microversion(3, 0)
)
CINDER = Service("volume", cinder_error, microversions=VOLUME_MICROVERSIONS)


def base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/volume/v3")


def _links(request: HttpRequest, collection: str, pk) -> list[dict]:
    return [
        {"rel": "self", "href": f"{base_url(request)}/{collection}/{pk}"},
        {"rel": "bookmark", "href": request.build_absolute_uri(f"/volume/{collection}/{pk}")},
    ]


# --- versions -------------------------------------------------------------------------------------


def _version(request: HttpRequest) -> dict:
    return {
        "id": "v3.0",
        "status": "CURRENT",
        "version": str(VOLUME_MICROVERSIONS.maximum),
        "min_version": str(VOLUME_MICROVERSIONS.minimum),
        "updated": "2016-02-08T12:20:21Z",
        "links": [{"rel": "self", "href": base_url(request) + "/"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}
        ],
    }


def versions(request, ctx):
    """``GET /volume/``: the versions (300 Multiple Choices, as Cinder answers)."""
    return JsonResponse({"versions": [_version(request)]}, status=300)


def version(request, ctx):
    """``GET /volume/v3/``."""
    return JsonResponse({"versions": [_version(request)]})


# --- volumes --------------------------------------------------------------------------------------


def _attachment(volume: Volume, attachment) -> dict:
    return {
        "id": str(volume.pk),
        "attachment_id": str(attachment.pk),
        "volume_id": str(volume.pk),
        "server_id": str(attachment.instance_id),
        "host_name": attachment.host.name if attachment.host else None,
        "device": attachment.device,
        "attached_at": iso(attachment.attached_at),
    }


def render_volume(request: HttpRequest, ctx: Context, volume: Volume) -> dict:
    body = {
        "id": str(volume.pk),
        "name": volume.name,
        "description": volume.description or None,
        "status": volume.display_status,
        "size": volume.size,
        "availability_zone": AVAILABILITY_ZONE,
        "created_at": iso(volume.created),
        "updated_at": iso(volume.updated),
        "volume_type": volume.volume_type.name,
        "snapshot_id": str(volume.source_snapshot_id) if volume.source_snapshot_id else None,
        "source_volid": str(volume.source_volume_id) if volume.source_volume_id else None,
        "bootable": "true" if volume.bootable else "false",
        "encrypted": False,
        "multiattach": False,
        "replication_status": None,
        "consistencygroup_id": None,
        "metadata": {},
        "user_id": str(volume.user_id) if volume.user_id else None,
        "os-vol-tenant-attr:tenant_id": str(volume.project_id),
        "attachments": [_attachment(volume, a) for a in getattr(volume, "live_attachments", [])],
        "links": _links(request, "volumes", volume.pk),
    }
    if volume.source_image_id:
        body["volume_image_metadata"] = {"image_id": str(volume.source_image_id)}
    if ctx.is_admin:
        host = volume.pool.host.name if volume.pool and volume.pool.host_id else None
        body["os-vol-host-attr:host"] = f"{host}@{volume.pool.name}#{volume.pool.name}" if host else None
        body["os-vol-mig-status-attr:migstat"] = None
        body["os-vol-mig-status-attr:name_id"] = None
    return body


def _volume_rows(request: HttpRequest, ctx: Context, detail: bool = True):
    """The caller's project's volumes (every project's with ``all_tenants`` for cloud admins),
    filtered by ``name`` and ``status``; with their rows' relations when ``detail``."""
    policy.enforce(ctx, "storage:volume:list")
    every = bool(query_bool(request, "all_tenants")) and ctx.is_admin
    if detail:
        rows = queries.all_volumes(ctx) if every else queries.project_volumes(ctx)
    else:
        rows = Volume.objects.across_projects(ctx) if every else Volume.objects.visible_to(ctx)
        rows = rows.only("id", "name")
    for key in ("name", "status"):
        if request.GET.get(key):
            rows = rows.filter(**{key: request.GET[key]})
    return rows


def list_volumes(request, ctx: Context):
    rows = _volume_rows(request, ctx, detail=False)
    return JsonResponse(
        {
            "volumes": [
                {"id": str(v.pk), "name": v.name, "links": _links(request, "volumes", v.pk)} for v in rows
            ]
        }
    )


def list_volumes_detail(request, ctx: Context):
    return JsonResponse({"volumes": [render_volume(request, ctx, v) for v in _volume_rows(request, ctx)]})


def _volume(ctx: Context, volume_id: str) -> Volume:
    policy.enforce(ctx, "storage:volume:show")
    rows = queries.project_volumes(ctx)
    if ctx.is_admin:
        rows = queries.all_volumes(ctx)
    return get_or_404(rows, f"Volume {volume_id}", pk=volume_id)


def show_volume(request, ctx: Context, volume_id: str):
    return JsonResponse({"volume": render_volume(request, ctx, _volume(ctx, volume_id))})


def _optional(body: dict, key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string.")
    return value or None


def create_volume(request, ctx: Context):
    """``POST /volumes``: 202 with the volume, ``creating``."""
    body = json_body(request, "volume")
    if body.get("metadata"):
        raise InvalidInput("Zenith keeps no volume metadata: send none.")
    if body.get("multiattach"):
        raise InvalidInput("Multi-attach volumes are not supported by this cloud.")
    zone = body.get("availability_zone")
    if zone not in (None, "", AVAILABILITY_ZONE):
        raise InvalidInput(f"Availability zone '{zone}' is invalid.")
    size = body.get("size")
    if isinstance(size, str) and size.strip().isdigit():
        size = int(size)
    volume, _ = services.create_volume(
        ctx,
        name=_optional(body, "name") or "",
        size=size,
        volume_type=_optional(body, "volume_type"),
        description=_optional(body, "description"),
        image=_optional(body, "imageRef"),
        snapshot=_optional(body, "snapshot_id"),
        source_volume=_optional(body, "source_volid"),
        idempotency_key=request.headers.get("Idempotency-Key"),
    )
    return JsonResponse({"volume": render_volume(request, ctx, _volume(ctx, str(volume.pk)))}, status=202)


def update_volume(request, ctx: Context, volume_id: str):
    body = json_body(request, "volume")
    unknown = set(body) - {"name", "description", "display_name", "display_description", "metadata"}
    if unknown:
        raise InvalidInput(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    if body.get("metadata"):
        raise InvalidInput("Zenith keeps no volume metadata.")
    volume = _volume(ctx, volume_id)
    name = body.get("name", body.get("display_name"))
    description = body.get("description", body.get("display_description"))
    services.update_volume(ctx, volume, name=name, description=description)
    return JsonResponse({"volume": render_volume(request, ctx, _volume(ctx, volume_id))})


def delete_volume(request, ctx: Context, volume_id: str):
    """``DELETE /volumes/{id}`` (``?cascade=False`` tolerated; a volume with snapshots is a 400
    as in Cinder, since Zenith does not delete them with it)."""
    if query_bool(request, "cascade"):
        raise InvalidInput("cascade is not supported: delete the volume's snapshots first.")
    services.delete_volume(ctx, _volume(ctx, volume_id))
    return empty(202)


def volume_action(request, ctx: Context, volume_id: str):
    """``POST /volumes/{id}/action``: os-extend, os-reset_status (admins), os-force_detach (admins)."""
    body = json_body(request)
    if not isinstance(body, dict) or len(body) != 1:
        raise InvalidInput("The body must name exactly one action.")
    ((action, args),) = body.items()
    volume = _volume(ctx, volume_id)
    if action == "os-extend":
        if not isinstance(args, dict) or "new_size" not in args:
            raise InvalidInput("os-extend needs new_size.")
        new_size = args["new_size"]
        if isinstance(new_size, str) and new_size.strip().isdigit():
            new_size = int(new_size)
        services.extend_volume(ctx, volume, new_size)
    elif action == "os-reset_status":
        if not isinstance(args, dict) or not isinstance(args.get("status"), str):
            raise InvalidInput("os-reset_status needs a status.")
        services.reset_state(ctx, volume, args["status"])
    elif action == "os-force_detach":
        services.force_detach(ctx, volume)
    else:
        raise InvalidInput(f"There is no such action: {action}.")
    return empty(202)


# --- snapshots ------------------------------------------------------------------------------------


def render_snapshot(request: HttpRequest, snapshot: Snapshot) -> dict:
    return {
        "id": str(snapshot.pk),
        "name": snapshot.name,
        "description": snapshot.description or None,
        "status": snapshot.display_status,
        "size": snapshot.size,
        "volume_id": str(snapshot.volume_id),
        "created_at": iso(snapshot.created),
        "updated_at": iso(snapshot.updated),
        "metadata": {},
        "os-extended-snapshot-attributes:progress": "100%" if snapshot.status == Snapshot.AVAILABLE else "0%",
        "os-extended-snapshot-attributes:project_id": str(snapshot.project_id),
        "links": _links(request, "snapshots", snapshot.pk),
    }


def _snapshot_rows(request: HttpRequest, ctx: Context):
    policy.enforce(ctx, "storage:snapshot:list")
    rows = Snapshot.objects.visible_to(ctx)
    for key in ("name", "status"):
        if request.GET.get(key):
            rows = rows.filter(**{key: request.GET[key]})
    if request.GET.get("volume_id"):
        rows = rows.filter(volume_id=request.GET["volume_id"])
    return rows


def list_snapshots(request, ctx: Context):
    rows = _snapshot_rows(request, ctx)
    return JsonResponse({"snapshots": [render_snapshot(request, s) for s in rows]})


def _snapshot(ctx: Context, snapshot_id: str) -> Snapshot:
    policy.enforce(ctx, "storage:snapshot:show")
    return get_or_404(Snapshot.objects.visible_to(ctx), f"Snapshot {snapshot_id}", pk=snapshot_id)


def show_snapshot(request, ctx: Context, snapshot_id: str):
    return JsonResponse({"snapshot": render_snapshot(request, _snapshot(ctx, snapshot_id))})


def create_snapshot(request, ctx: Context):
    body = json_body(request, "snapshot")
    if body.get("metadata"):
        raise InvalidInput("Zenith keeps no snapshot metadata: send none.")
    force = body.get("force")
    if force not in (None, False, True, "False", "false", "True", "true"):
        raise InvalidInput("force must be true or false.")
    volume_id = _optional(body, "volume_id")
    if not volume_id:
        raise InvalidInput("volume_id is required.")
    _volume(ctx, volume_id)  # 404 for a volume the caller cannot see
    snapshot = services.create_snapshot(
        ctx,
        volume=volume_id,
        name=_optional(body, "name") or "",
        description=_optional(body, "description"),
        idempotency_key=request.headers.get("Idempotency-Key"),
    )
    return JsonResponse({"snapshot": render_snapshot(request, snapshot)}, status=202)


def delete_snapshot(request, ctx: Context, snapshot_id: str):
    services.delete_snapshot(ctx, _snapshot(ctx, snapshot_id))
    return empty(202)


# --- volume types ---------------------------------------------------------------------------------


def render_type(vtype: VolumeType, ctx: Context) -> dict:
    body = {
        "id": str(vtype.pk),
        "name": vtype.name,
        "description": vtype.description or None,
        "is_public": True,
        "os-volume-type-access:is_public": True,
        "extra_specs": dict(vtype.extra_specs or {}) if ctx.is_admin else {},
        "qos_specs_id": None,
    }
    return body


def list_types(request, ctx: Context):
    policy.enforce(ctx, "storage:volume_type:list")
    return JsonResponse({"volume_types": [render_type(t, ctx) for t in VolumeType.objects.order_by("name")]})


def _type(ctx: Context, type_id: str) -> VolumeType:
    policy.enforce(ctx, "storage:volume_type:show")
    if type_id == "default":
        found = VolumeType.objects.filter(is_default=True).first()
        if found is None:
            raise InvalidInput("This cloud has no default volume type.")
        return found
    return get_or_404(VolumeType.objects.all(), f"Volume type {type_id}", pk=type_id)


def show_type(request, ctx: Context, type_id: str):
    return JsonResponse({"volume_type": render_type(_type(ctx, type_id), ctx)})


def create_type(request, ctx: Context):
    body = json_body(request, "volume_type")
    if body.get("os-volume-type-access:is_public") is False or body.get("is_public") is False:
        raise InvalidInput("Private volume types are not supported by this cloud.")
    specs = body.get("extra_specs") or {}
    if not isinstance(specs, dict):
        raise InvalidInput("extra_specs must be an object.")
    specs = dict(specs)
    backend = specs.pop("volume_backend_name", None) or "local"
    vtype = services.create_volume_type(
        ctx,
        name=_optional(body, "name") or "",
        backend=backend,
        extra_specs=specs,
        description=_optional(body, "description") or "",
    )
    return JsonResponse({"volume_type": render_type(vtype, ctx)})


def delete_type(request, ctx: Context, type_id: str):
    services.delete_volume_type(ctx, _type(ctx, type_id))
    return empty(202)


# --- quotas and limits ----------------------------------------------------------------------------


def _quota_set(project: Project, usage: bool, with_id: bool = True) -> dict:
    limits = quotas.limits(project)
    used = quotas.usage(project) if usage else {}
    body = {"id": str(project.pk)} if with_id else {}
    for name in QUOTAS:
        body[name] = (
            {"limit": limits[name], "in_use": used.get(name, 0), "reserved": 0, "allocated": 0}
            if usage
            else limits[name]
        )
    for name, value in FIXED_QUOTAS.items():
        body[name] = {"limit": value, "in_use": 0, "reserved": 0, "allocated": 0} if usage else value
    return body


def quota_set(request, ctx: Context, project_id: str):
    """``GET /os-quota-sets/{project_id}`` (``?usage=True`` for usage)."""
    project = quota_project(ctx, project_id)
    return JsonResponse({"quota_set": _quota_set(project, bool(query_bool(request, "usage")))})


def quota_defaults(request, ctx: Context, project_id: str):
    quota_project(ctx, project_id)
    body = {"id": project_id, **{n: settings.ZENITH_DEFAULT_QUOTAS[n] for n in QUOTAS}, **FIXED_QUOTAS}
    return JsonResponse({"quota_set": body})


def update_quota_set(request, ctx: Context, project_id: str):
    """``PUT /os-quota-sets/{project_id}`` (cloud admins): volumes, gigabytes, snapshots."""
    body = json_body(request, "quota_set")
    project = get_or_404(Project.objects.visible_to(ctx), f"Project {project_id}", pk=project_id)
    changes = {}
    for name, value in body.items():
        if name in QUOTAS:
            changes[name] = quota_limit(value, name)
        elif name in FIXED_QUOTAS:
            if quota_limit(value, name) != FIXED_QUOTAS[name]:
                raise InvalidInput(f"The quota {name} is fixed at {FIXED_QUOTAS[name]} in this cloud.")
        elif name.startswith(("volumes_", "gigabytes_", "snapshots_")):
            raise InvalidInput("Per-type quotas are not supported by this cloud.")
        else:
            raise InvalidInput(f"Bad key(s) '{name}' in quota_set")
    identity_services.set_quotas(ctx, project, changes)
    return JsonResponse({"quota_set": _quota_set(project, False, with_id=False)})


def limits(request, ctx: Context):
    policy.enforce(ctx, "identity:quota:show")
    lim, used = quotas.limits(ctx.project), quotas.usage(ctx.project)
    absolute = {
        "maxTotalVolumes": lim["volumes"],
        "maxTotalSnapshots": lim["snapshots"],
        "maxTotalVolumeGigabytes": lim["gigabytes"],
        "maxTotalBackups": 0,
        "maxTotalBackupGigabytes": 0,
        "totalVolumesUsed": used.get("volumes", 0),
        "totalGigabytesUsed": used.get("gigabytes", 0),
        "totalSnapshotsUsed": used.get("snapshots", 0),
        "totalBackupsUsed": 0,
        "totalBackupGigabytesUsed": 0,
    }
    return JsonResponse({"limits": {"rate": [], "absolute": absolute}})


# --- URLs -----------------------------------------------------------------------------------------

ID = r"(?P<{}>[^/]+)"
VOL = ID.format("volume_id")

v3 = [
    re_path(r"^$", endpoint(CINDER, auth=False, get=version)),
    re_path(r"^volumes$", endpoint(CINDER, get=list_volumes, post=create_volume)),
    re_path(r"^volumes/detail$", endpoint(CINDER, get=list_volumes_detail)),
    re_path(rf"^volumes/{VOL}$", endpoint(CINDER, get=show_volume, put=update_volume, delete=delete_volume)),
    re_path(rf"^volumes/{VOL}/action$", endpoint(CINDER, post=volume_action)),
    re_path(r"^snapshots$", endpoint(CINDER, get=list_snapshots, post=create_snapshot)),
    re_path(r"^snapshots/detail$", endpoint(CINDER, get=list_snapshots)),
    re_path(
        rf"^snapshots/{ID.format('snapshot_id')}$",
        endpoint(CINDER, get=show_snapshot, delete=delete_snapshot),
    ),
    re_path(r"^types$", endpoint(CINDER, get=list_types, post=create_type)),
    re_path(rf"^types/{ID.format('type_id')}$", endpoint(CINDER, get=show_type, delete=delete_type)),
    re_path(
        rf"^os-quota-sets/{ID.format('project_id')}$", endpoint(CINDER, get=quota_set, put=update_quota_set)
    ),
    re_path(rf"^os-quota-sets/{ID.format('project_id')}/defaults$", endpoint(CINDER, get=quota_defaults)),
    re_path(r"^limits$", endpoint(CINDER, get=limits)),
    re_path(r"^.*$", not_found(CINDER)),
]

urlpatterns = [
    re_path(r"^$", endpoint(CINDER, auth=False, get=versions)),
    re_path(r"^v3(?:/|$)", include(v3)),
    re_path(r"^.*$", not_found(CINDER)),
]
