"""Compute v2.1 (Nova) at ``/compute/v2.1``: servers (list, detail, create, delete, actions, console
output, action log), flavors (with extra specs), key pairs, hypervisors, quota sets and limits.

Each view translates the request, calls ``compute.services`` or ``identity.services`` with the
request's Context, and renders Nova's shape for the request's microversion (2.1 to
``COMPUTE_MICROVERSIONS.maximum``, echoed in every response). The changes up to that maximum that
touch what is served here, each rendered at and after its version:

- 2.2 key pairs have a ``type``; 2.10 admins list another user's (``user_id``); 2.35 pages of them.
- 2.3 admins see more ``OS-EXT-SRV-ATTR:*`` fields; 2.9 ``locked``; 2.16 ``host_status`` (admins);
  2.19 ``description``; 2.26 ``tags`` (always empty: Zenith keeps no server tags, so writing them,
  also on create from 2.52, is Nova's 400); 2.47 the server's flavor embedded (without its id).
- 2.28 a hypervisor's ``cpu_info`` is an object; 2.33 pages of hypervisors; 2.53 hypervisor and
  service ids are UUIDs (Zenith's always are), ``servers`` only with ``with_servers``.
- 2.36 quota sets and limits drop the network proxies' fields; 2.39 limits drop ``maxImageMeta``.
- 2.37 ``networks`` may be ``auto`` or ``none``; 2.38 an unknown ``status`` filter is a 400.
- 2.21 the action log of a deleted server stays readable.

Zenith has no networking service yet: servers have no addresses, and a request naming networks or
security groups gets the service's 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from django.db.models import Count, F, Prefetch, Q
from django.http import HttpRequest, JsonResponse
from django.urls import re_path

from identity import audit, policy, quotas
from identity import services as identity_services
from identity.context import Context
from identity.errors import InvalidInput, NotFound, PolicyDenied
from identity.models import KeyPair, Project
from identity.openstack.http import (
    COMPUTE_MICROVERSIONS,
    NOVA,
    at_least,
    empty,
    endpoint,
    get_or_404,
    iso,
    json_body,
    keyset_page,
    not_found,
    query_bool,
    query_limit,
)
from workers.models import Host

from .. import services
from ..models import Flavor, Instance

VERSION = {
    "id": "v2.1",
    "status": "CURRENT",
    "version": str(COMPUTE_MICROVERSIONS.maximum),
    "min_version": str(COMPUTE_MICROVERSIONS.minimum),
    "updated": "2013-07-23T11:33:21Z",
}
# libvirt's power states as Nova numbers them (nova/compute/power_state.py).
POWER_STATE = {"nostate": 0, "running": 1, "paused": 3, "shutdown": 4, "crashed": 6, "suspended": 7}
# Nova's status names -> Zenith's vm_state, for ``?status=`` filters.
STATUS_VM_STATE = {
    "BUILD": Instance.BUILDING,
    "ACTIVE": Instance.ACTIVE,
    "SHUTOFF": Instance.STOPPED,
    "PAUSED": Instance.PAUSED,
    "SUSPENDED": Instance.SUSPENDED,
    "ERROR": Instance.ERROR,
}
MISSING_MARKER = "marker [{marker}] not found"
# Server actions whose body names a lifecycle transition directly.
TRANSITIONS = {
    "os-stop": "stop",
    "os-start": "start",
    "pause": "pause",
    "unpause": "unpause",
    "suspend": "suspend",
    "resume": "resume",
}


def _base(request: HttpRequest) -> str:
    return request.build_absolute_uri("/compute/v2.1")


def _links(request: HttpRequest, collection: str, item) -> list[dict]:
    return [
        {"rel": "self", "href": f"{_base(request)}/{collection}/{item}"},
        {"rel": "bookmark", "href": request.build_absolute_uri(f"/compute/{collection}/{item}")},
    ]


# --- version document -----------------------------------------------------------------------------


def version(request, ctx):
    """``GET /compute/v2.1``: the one version served."""
    doc = {
        **VERSION,
        "links": [{"rel": "self", "href": _base(request) + "/"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}
        ],
    }
    return JsonResponse({"version": doc})


# --- pagination -----------------------------------------------------------------------------------


def _next_link(request: HttpRequest, collection: str, page: list, limit: int | None, key: str) -> dict:
    if limit is None or not page or len(page) < limit:
        return {}
    query = request.GET.copy()
    query["marker"] = str(page[-1].pk)
    return {f"{key}_links": [{"rel": "next", "href": f"{_base(request)}/{collection}?{query.urlencode()}"}]}


def _is_uuid(value: str) -> bool:
    from identity.scoping import is_uuid

    return is_uuid(value)


# --- servers --------------------------------------------------------------------------------------


def _host_status(instance: Instance) -> str:
    """Nova's ``host_status`` (2.16): UP, DOWN, MAINTENANCE (disabled), or "" without a host."""
    if not instance.host_id:
        return ""
    if not instance.host.enabled:
        return "MAINTENANCE"
    return "UP" if instance.host.is_up() else "DOWN"


def _embedded_flavor(instance: Instance) -> dict:
    """The flavor as the server was launched with it (2.47): its sizes, not its id."""
    flavor = instance.flavor
    return {
        "vcpus": instance.vcpus,
        "ram": instance.memory_mb,
        "disk": instance.disk_gb,
        "ephemeral": flavor.ephemeral_gb,
        "swap": flavor.swap_mb,
        "original_name": flavor.name,
        "extra_specs": flavor.extra_specs or {},
    }


def _hostname(name: str) -> str:
    """Nova's hostname of a display name: lower case, runs of other characters as one hyphen."""

    return re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip("-.")[:63] or "server"


def render_server(request: HttpRequest, instance: Instance, show_host: bool) -> dict:
    """One server as Nova shows it at the request's microversion (``GET /servers/{id}`` and each row
    of ``/servers/detail``)."""
    host = instance.host.name if instance.host_id else ""
    body = {
        "id": str(instance.pk),
        "name": instance.name,
        "status": instance.status,
        "tenant_id": str(instance.project_id),
        "user_id": str(instance.user_id) if instance.user_id else "",
        "metadata": instance.metadata or {},
        "hostId": hashlib.sha224(f"{instance.project_id}{host}".encode()).hexdigest() if host else "",
        "image": (
            {"id": str(instance.image_id), "links": _links(request, "images", instance.image_id)[1:]}
            if instance.image_id
            else ""
        ),
        "flavor": (
            _embedded_flavor(instance)
            if at_least(request, "2.47")
            else {"id": str(instance.flavor_id), "links": _links(request, "flavors", instance.flavor_id)[1:]}
        ),
        "created": iso(instance.created),
        "updated": iso(instance.updated),
        "addresses": {},
        "accessIPv4": "",
        "accessIPv6": "",
        "key_name": instance.key_name or None,
        "links": _links(request, "servers", instance.pk),
        "progress": instance.operation.progress if instance.operation_id and instance.transitional else 0,
        "config_drive": "",
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": instance.availability_zone or "nova",
        "OS-EXT-STS:vm_state": instance.vm_state,
        "OS-EXT-STS:task_state": instance.task_state or None,
        "OS-EXT-STS:power_state": POWER_STATE.get(instance.power_state, 0),
        "OS-SRV-USG:launched_at": iso(instance.launched_at),
        "OS-SRV-USG:terminated_at": iso(instance.terminated_at),
        "os-extended-volumes:volumes_attached": [],
    }
    if instance.vm_state == Instance.ERROR and instance.fault:
        body["fault"] = {
            "code": instance.fault.get("code", 500),
            "message": instance.fault.get("message", ""),
            "created": iso(instance.updated),
        }
    if show_host:
        body["OS-EXT-SRV-ATTR:host"] = host or None
        body["OS-EXT-SRV-ATTR:hypervisor_hostname"] = host or None
        body["OS-EXT-SRV-ATTR:instance_name"] = instance.domain_name
        if at_least(request, "2.3"):
            boot = getattr(instance, "boot_properties", None) or {}
            user_data = getattr(instance, "launch_user_data", None)
            body.update(
                {
                    "OS-EXT-SRV-ATTR:reservation_id": f"r-{instance.pk.hex[:8]}",
                    "OS-EXT-SRV-ATTR:launch_index": 0,
                    "OS-EXT-SRV-ATTR:kernel_id": boot.get("kernel_id", ""),
                    "OS-EXT-SRV-ATTR:ramdisk_id": boot.get("ramdisk_id", ""),
                    "OS-EXT-SRV-ATTR:hostname": _hostname(instance.name),
                    "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                    "OS-EXT-SRV-ATTR:user_data": (
                        base64.b64encode(user_data.encode()).decode() if user_data else None
                    ),
                }
            )
        if at_least(request, "2.16"):
            body["host_status"] = _host_status(instance)
    if at_least(request, "2.9"):
        body["locked"] = instance.locked
    if at_least(request, "2.19"):
        body["description"] = None
    if at_least(request, "2.26"):
        body["tags"] = []
    return body


def _server_rows(request: HttpRequest, ctx: Context, rows):
    """``rows`` with what ``render_server`` reads in the same one query: for admins at 2.3 and
    later also the user data and the image's kernel and ramdisk (deferred for everyone else)."""
    rows = rows.for_rows()
    if at_least(request, "2.3") and ctx.can("compute:instance:show_host"):
        rows = rows.annotate(launch_user_data=F("user_data"), boot_properties=F("image__properties"))
    return rows


def _servers(request: HttpRequest, ctx: Context):
    """The servers a list shows: the project's (``all_tenants`` for cloud admins), with the filters
    the clients send; ``deleted`` and ``fields`` are accepted and ignored (deleted rows never show)."""
    policy.enforce(ctx, "compute:instance:list")
    if query_bool(request, "all_tenants") or (
        "all_tenants" in request.GET and request.GET["all_tenants"] == ""
    ):
        policy.enforce(ctx, "compute:instance:list_all")
        rows = Instance.objects.across_projects(ctx)
        # Admins narrow a cloud-wide list by project (``server list --all-projects --project``),
        # user and zone; for anyone else Nova ignores these.
        for param, field in (
            ("project_id", "project_id"),
            ("tenant_id", "project_id"),
            ("user_id", "user_id"),
        ):
            value = request.GET.get(param)
            if value:
                rows = rows.filter(**{field: value}) if _is_uuid(value) else rows.none()
        if request.GET.get("availability_zone"):
            rows = rows.filter(availability_zone=request.GET["availability_zone"])
    else:
        rows = Instance.objects.visible_to(ctx)
    params = request.GET
    if params.get("name"):
        rows = rows.filter(name__contains=params["name"])
    if params.get("status"):
        state = STATUS_VM_STATE.get(params["status"].upper())
        if state is None and at_least(request, "2.38"):
            raise InvalidInput(f"Invalid status value: {params['status']}.")
        rows = rows.filter(vm_state=state) if state else rows.none()
    for param, field in (("image", "image_id"), ("flavor", "flavor_id")):
        if params.get(param):
            rows = rows.filter(**{field: params[param]}) if _is_uuid(params[param]) else rows.none()
    if params.get("changes-since"):
        from django.utils.dateparse import parse_datetime

        since = parse_datetime(params["changes-since"])
        if since is None:
            raise InvalidInput(f"changes-since must be an ISO 8601 time, not {params['changes-since']!r}.")
        rows = rows.filter(updated__gte=since)
    return rows.order_by("-created", "-id")


def list_servers(request, ctx: Context):
    """``GET /servers``: id, name and links of each."""
    page, limit = keyset_page(request, _servers(request, ctx).only("id", "name", "created"), MISSING_MARKER)
    rows = [{"id": str(s.pk), "name": s.name, "links": _links(request, "servers", s.pk)} for s in page]
    return JsonResponse({"servers": rows, **_next_link(request, "servers", page, limit, "servers")})


def list_servers_detail(request, ctx: Context):
    """``GET /servers/detail``: every field of each, in a fixed number of queries."""
    page, limit = keyset_page(request, _server_rows(request, ctx, _servers(request, ctx)), MISSING_MARKER)
    show_host = ctx.can("compute:instance:show_host")
    rows = [render_server(request, s, show_host) for s in page]
    return JsonResponse({"servers": rows, **_next_link(request, "servers/detail", page, limit, "servers")})


def _instance(ctx: Context, server_id: str) -> Instance:
    return get_or_404(Instance.objects.visible_to(ctx).for_rows(), f"Instance {server_id}", pk=server_id)


def show_server(request, ctx: Context, server_id: str):
    instance = get_or_404(
        _server_rows(request, ctx, Instance.objects.visible_to(ctx)), f"Instance {server_id}", pk=server_id
    )
    policy.enforce(ctx, "compute:instance:show")
    return JsonResponse({"server": render_server(request, instance, ctx.can("compute:instance:show_host"))})


def _user_data(value) -> str | None:
    """Nova takes user data base64-encoded; the service keeps it as text."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise InvalidInput("user_data must be a base64-encoded string.")
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, ValueError):
        raise InvalidInput("user_data must be base64-encoded UTF-8 text.") from None


def _boot_image(server: dict):
    """The image to boot: ``imageRef``, or the one image-to-local mapping the clients send beside it
    (booting from volumes needs the block storage service, which has not landed)."""
    image = server.get("imageRef") or None
    mappings = server.get("block_device_mapping_v2")
    if mappings in (None, []):
        return image
    if not isinstance(mappings, list) or len(mappings) != 1 or not isinstance(mappings[0], dict):
        raise InvalidInput("Block device mappings other than the boot image need the block storage service.")
    bdm = mappings[0]
    if bdm.get("source_type") != "image" or bdm.get("destination_type", "local") != "local":
        raise InvalidInput(
            "Only booting from an image onto a local disk is supported (no block storage yet)."
        )
    if image and bdm.get("uuid") not in (None, image):
        raise InvalidInput("imageRef and the boot block device mapping name different images.")
    return image or bdm.get("uuid")


def _text(body: dict, key: str) -> str | None:
    """A field that must be a string when given (the services take ``str`` and would choke on others)."""
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string.")
    return value


def create_server(request, ctx: Context):
    """``POST /servers``: 202 with the new server's id; it builds in the background (status BUILD)."""
    server = json_body(request, "server")
    for key in ("name", "key_name", "availability_zone", "imageRef", "flavorRef"):
        _text(server, key)
    if server.get("description") is not None:
        raise InvalidInput("Server descriptions are not kept by this cloud: use metadata (--property).")
    if server.get("tags"):
        raise InvalidInput("Server tags are not supported by this cloud: use server metadata (--property).")
    for count in ("min_count", "max_count"):
        if server.get(count) not in (None, 1, "1"):
            raise InvalidInput(f"{count} must be 1: Zenith launches one server per request.")
    networks = server.get("networks")
    if isinstance(networks, list) and not networks:
        networks = None
    groups = server.get("security_groups")
    if isinstance(groups, list):
        groups = [g.get("name") if isinstance(g, dict) else g for g in groups]
    instance, _ = services.create_instance(
        ctx,
        name=server.get("name"),
        flavor=server.get("flavorRef"),
        image=_boot_image(server),
        key_name=server.get("key_name"),
        user_data=_user_data(server.get("user_data")),
        metadata=server.get("metadata"),
        availability_zone=server.get("availability_zone"),
        networks=networks,
        security_groups=groups,
        idempotency_key=request.headers.get("Idempotency-Key"),
    )
    body = {
        "server": {
            "id": str(instance.pk),
            "links": _links(request, "servers", instance.pk),
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{"name": "default"}],
        }
    }
    response = JsonResponse(body, status=202)
    response["Location"] = f"{_base(request)}/servers/{instance.pk}"
    return response


def delete_server(request, ctx: Context, server_id: str):
    """``DELETE /servers/{id}``: 204; the server answers 404 once its host removed it."""
    services.instance_action(ctx, _instance(ctx, server_id), "delete")
    return empty(204)


def _console_lines(args) -> int:
    length = args.get("length") if isinstance(args, dict) else None
    if length in (None, "", -1, "-1"):
        return 100 if length in (None, "") else services.MAX_CONSOLE_LINES
    try:
        return int(length)
    except (TypeError, ValueError):
        raise InvalidInput(f"length must be a whole number, not {length!r}.") from None


def server_action(request, ctx: Context, server_id: str):
    """``POST /servers/{id}/action``: one of reboot, os-stop, os-start, pause, unpause, suspend,
    resume, lock, unlock (202) or os-getConsoleOutput (200)."""
    body = json_body(request)
    if not isinstance(body, dict) or len(body) != 1:
        raise InvalidInput("The action body must be an object with exactly one action.")
    ((name, args),) = body.items()
    instance = _instance(ctx, server_id)
    if name == "reboot":
        kind = (args or {}).get("type", "SOFT") if isinstance(args, dict) else None
        if not isinstance(kind, str) or kind.upper() not in ("SOFT", "HARD"):
            raise InvalidInput("reboot type must be SOFT or HARD.")
        services.instance_action(ctx, instance, "reboot_hard" if kind.upper() == "HARD" else "reboot")
    elif name in TRANSITIONS:
        services.instance_action(ctx, instance, TRANSITIONS[name])
    elif name == "lock":
        services.lock_instance(ctx, instance)
    elif name == "unlock":
        services.unlock_instance(ctx, instance)
    elif name == "os-getConsoleOutput":
        result = services.console_log(ctx, instance, _console_lines(args))
        return JsonResponse({"output": result["output"]})
    else:
        raise InvalidInput(f"The action {name!r} is not supported by this cloud.")
    return empty(202)


# --- server metadata and tags ----------------------------------------------------------------------


def _metadata_body(request: HttpRequest, wrapper: str) -> dict:
    body = json_body(request, wrapper)
    if not all(isinstance(v, str) for v in body.values()):
        raise InvalidInput("Metadata values must be strings.")
    return body


def server_metadata(request, ctx: Context, server_id: str):
    """``GET /servers/{id}/metadata``."""
    instance = _instance(ctx, server_id)
    policy.enforce(ctx, "compute:instance:show")
    return JsonResponse({"metadata": instance.metadata or {}})


def merge_server_metadata(request, ctx: Context, server_id: str):
    """``POST /servers/{id}/metadata``: merge the given items into the server's (``server set
    --property``)."""
    instance = _instance(ctx, server_id)
    metadata = _metadata_body(request, "metadata")
    instance = services.set_instance_metadata(ctx, instance, metadata)
    return JsonResponse({"metadata": instance.metadata})


def replace_server_metadata(request, ctx: Context, server_id: str):
    """``PUT /servers/{id}/metadata``: the given items become all of the server's metadata."""
    instance = _instance(ctx, server_id)
    metadata = _metadata_body(request, "metadata")
    instance = services.set_instance_metadata(ctx, instance, metadata, replace=True)
    return JsonResponse({"metadata": instance.metadata})


def server_metadata_item(request, ctx: Context, server_id: str, key: str):
    """``GET /servers/{id}/metadata/{key}``: ``{"meta": {key: value}}``."""
    instance = _instance(ctx, server_id)
    policy.enforce(ctx, "compute:instance:show")
    if key not in (instance.metadata or {}):
        raise NotFound(f"Metadata item {key} was not found.")
    return JsonResponse({"meta": {key: instance.metadata[key]}})


def set_server_metadata_item(request, ctx: Context, server_id: str, key: str):
    """``PUT /servers/{id}/metadata/{key}`` with ``{"meta": {key: value}}`` (that one key only)."""
    instance = _instance(ctx, server_id)
    meta = _metadata_body(request, "meta")
    if list(meta) != [key]:
        raise InvalidInput("The request body must name exactly the key of the URL.")
    instance = services.set_instance_metadata(ctx, instance, meta)
    return JsonResponse({"meta": {key: instance.metadata[key]}})


def delete_server_metadata_item(request, ctx: Context, server_id: str, key: str):
    """``DELETE /servers/{id}/metadata/{key}`` (``server unset --property``): 204."""
    services.set_instance_metadata(ctx, _instance(ctx, server_id), {}, remove=(key,))
    return empty(204)


def _tags_served(request: HttpRequest) -> None:
    if not at_least(request, "2.26"):
        raise NotFound("Server tags need compute microversion 2.26 or later.")


def server_tags(request, ctx: Context, server_id: str, tag: str | None = None):
    """``GET /servers/{id}/tags`` (2.26): Zenith keeps no server tags, so the list is empty."""
    _tags_served(request)
    _instance(ctx, server_id)
    if tag is not None:
        raise NotFound(f"Server {server_id} has no tag {tag}.")
    return JsonResponse({"tags": []})


def refuse_server_tags(request, ctx: Context, server_id: str, tag: str | None = None):
    """Writes of server tags: refused with Nova's 400 (Zenith keeps no tags; metadata serves)."""
    _tags_served(request)
    _instance(ctx, server_id)
    raise InvalidInput("Server tags are not supported by this cloud: use server metadata (--property).")


def instance_actions(request, ctx: Context, server_id: str):
    """``GET /servers/{id}/os-instance-actions``: the action log, newest first (from 2.21 also of a
    deleted server)."""
    if at_least(request, "2.21"):
        rows = Instance.objects.filter(project_id=ctx.project.pk) if ctx.project else Instance.objects.none()
        instance = get_or_404(rows, f"Instance {server_id}", pk=server_id)
    else:
        instance = _instance(ctx, server_id)
    policy.enforce(ctx, "compute:instance:actions")
    rows = [
        {
            "action": row.action,
            "instance_uuid": str(instance.pk),
            "request_id": row.request_id,
            "user_id": str(row.user_id) if row.user_id else None,
            "project_id": str(instance.project_id),
            "start_time": iso(row.start_time),
            "message": row.message or None,
        }
        for row in audit.log_for("instance", instance.pk)
    ]
    return JsonResponse({"instanceActions": rows})


# --- flavors --------------------------------------------------------------------------------------


def render_flavor(request: HttpRequest, flavor: Flavor, detail: bool = True) -> dict:
    body = {"id": str(flavor.pk), "name": flavor.name, "links": _links(request, "flavors", flavor.pk)}
    if detail:
        body.update(
            {
                "ram": flavor.ram_mb,
                "vcpus": flavor.vcpus,
                "disk": flavor.disk_gb,
                "swap": flavor.swap_mb or "",
                "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral_gb,
                "OS-FLV-DISABLED:disabled": flavor.disabled,
                "os-flavor-access:is_public": flavor.is_public,
                "rxtx_factor": 1.0,
            }
        )
    return body


def _flavors(request: HttpRequest, ctx: Context):
    """``is_public``: absent or true lists public flavors (and, for projects, the private ones shared
    with them), false the private ones, ``None`` every flavor the caller may see."""
    policy.enforce(ctx, "compute:flavor:list")
    rows = Flavor.objects.visible_to(ctx)
    public = query_bool(request, "is_public")
    if public is False:
        rows = rows.filter(is_public=False)
    elif ctx.is_admin and (public is True or "is_public" not in request.GET):
        rows = rows.filter(is_public=True)
    for param, field in (("minRam", "ram_mb__gte"), ("minDisk", "disk_gb__gte")):
        if request.GET.get(param):
            try:
                rows = rows.filter(**{field: int(request.GET[param])})
            except ValueError:
                raise InvalidInput(f"{param} must be a whole number.") from None
    rows = rows.order_by("ram_mb", "vcpus", "name")
    marker = request.GET.get("marker")
    if marker:
        last = rows.filter(pk=marker).first() if _is_uuid(marker) else None
        if last is None:
            raise InvalidInput(f"marker [{marker}] not found")
        names = [f.pk for f in rows]
        rows = rows.filter(pk__in=names[names.index(last.pk) + 1 :])
    limit = query_limit(request)
    return rows if limit is None else rows[:limit]


def list_flavors(request, ctx: Context):
    return JsonResponse(
        {"flavors": [render_flavor(request, f, detail=False) for f in _flavors(request, ctx)]}
    )


def list_flavors_detail(request, ctx: Context):
    return JsonResponse({"flavors": [render_flavor(request, f) for f in _flavors(request, ctx)]})


def _flavor(ctx: Context, flavor_id: str) -> Flavor:
    return get_or_404(Flavor.objects.visible_to(ctx), f"Flavor {flavor_id}", pk=flavor_id)


def show_flavor(request, ctx: Context, flavor_id: str):
    """``GET /flavors/{id}``: by id only (a name answers 404; the clients then list with ``?name=``)."""
    flavor = _flavor(ctx, flavor_id)
    policy.enforce(ctx, "compute:flavor:show")
    return JsonResponse({"flavor": render_flavor(request, flavor)})


def _int(value, what: str, default: int | None = None) -> int:
    if value in (None, "") and default is not None:
        return default
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be a whole number.")
    return value


def create_flavor(request, ctx: Context):
    """``POST /flavors`` (cloud admins): the id is Zenith's own (a given one must be null or "auto")."""
    body = json_body(request, "flavor")
    if body.get("id") not in (None, "auto"):
        raise InvalidInput("Flavor ids are assigned by Zenith: send id null (or leave it out).")
    public = body.get("os-flavor-access:is_public", True)
    flavor = services.create_flavor(
        ctx,
        name=body.get("name"),
        vcpus=_int(body.get("vcpus"), "vcpus"),
        ram_mb=_int(body.get("ram"), "ram"),
        disk_gb=_int(body.get("disk"), "disk"),
        swap_mb=_int(body.get("swap"), "swap", 0),
        ephemeral_gb=_int(body.get("OS-FLV-EXT-DATA:ephemeral"), "OS-FLV-EXT-DATA:ephemeral", 0),
        is_public=public,
        description=body.get("description") or "",
    )
    return JsonResponse({"flavor": render_flavor(request, flavor)})


def delete_flavor(request, ctx: Context, flavor_id: str):
    services.delete_flavor(ctx, _flavor(ctx, flavor_id))
    return empty(202)


def extra_specs(request, ctx: Context, flavor_id: str):
    """``GET /flavors/{id}/os-extra_specs``."""
    return JsonResponse({"extra_specs": _flavor(ctx, flavor_id).extra_specs or {}})


def set_extra_specs(request, ctx: Context, flavor_id: str):
    """``POST /flavors/{id}/os-extra_specs``: merge the given specs into the flavor's (admins)."""
    flavor = _flavor(ctx, flavor_id)
    specs = json_body(request, "extra_specs")
    flavor = services.update_flavor(ctx, flavor, extra_specs={**flavor.extra_specs, **specs})
    return JsonResponse({"extra_specs": flavor.extra_specs})


def extra_spec(request, ctx: Context, flavor_id: str, key: str):
    specs = _flavor(ctx, flavor_id).extra_specs or {}
    if key not in specs:
        raise NotFound(f"Flavor {flavor_id} has no extra spec {key}.")
    return JsonResponse({key: specs[key]})


def set_extra_spec(request, ctx: Context, flavor_id: str, key: str):
    """``PUT /flavors/{id}/os-extra_specs/{key}`` with ``{key: value}`` (that one key only)."""
    flavor = _flavor(ctx, flavor_id)
    body = json_body(request)
    if not isinstance(body, dict) or list(body) != [key]:
        raise InvalidInput("The request body must name exactly the key of the URL.")
    flavor = services.update_flavor(ctx, flavor, extra_specs={**flavor.extra_specs, **body})
    return JsonResponse({key: flavor.extra_specs[key]})


def delete_extra_spec(request, ctx: Context, flavor_id: str, key: str):
    flavor = _flavor(ctx, flavor_id)
    if key not in flavor.extra_specs:
        raise NotFound(f"Flavor {flavor_id} has no extra spec {key}.")
    services.update_flavor(ctx, flavor, extra_specs={k: v for k, v in flavor.extra_specs.items() if k != key})
    return empty(200)


def _private_flavor_access(flavor: Flavor) -> JsonResponse:
    rows = flavor.access.order_by("created").values_list("project_id", flat=True)
    return JsonResponse(
        {"flavor_access": [{"flavor_id": str(flavor.pk), "tenant_id": str(pid)} for pid in rows]}
    )


def flavor_access(request, ctx: Context, flavor_id: str):
    """``GET /flavors/{id}/os-flavor-access``: the projects a private flavor is shared with (admins)."""
    flavor = _flavor(ctx, flavor_id)
    policy.enforce(ctx, "compute:flavor:access")
    if flavor.is_public:
        raise NotFound("Access list not available for public flavors.")
    return _private_flavor_access(flavor)


def flavor_action(request, ctx: Context, flavor_id: str):
    """``POST /flavors/{id}/action``: ``addTenantAccess`` / ``removeTenantAccess`` with ``tenant``
    (``flavor create --private --project``, ``flavor set --project``, ``flavor unset --project``)."""
    flavor = _flavor(ctx, flavor_id)
    body = json_body(request)
    if not isinstance(body, dict) or len(body) != 1:
        raise InvalidInput("The action body must be an object with exactly one action.")
    ((name, args),) = body.items()
    if name not in ("addTenantAccess", "removeTenantAccess"):
        raise InvalidInput(f"The flavor action {name!r} is not supported by this cloud.")
    tenant = args.get("tenant") if isinstance(args, dict) else None
    if not isinstance(tenant, str) or not tenant:
        raise InvalidInput(f"{name} needs a tenant (a project id).")
    policy.enforce(ctx, "compute:flavor:access")
    project = get_or_404(Project.objects.visible_to(ctx), f"Project {tenant}", pk=tenant)
    if name == "addTenantAccess":
        services.add_flavor_access(ctx, flavor, project)
    else:
        services.remove_flavor_access(ctx, flavor, project)
    return _private_flavor_access(flavor)


# --- key pairs ------------------------------------------------------------------------------------


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
        return KeyPair.objects.filter(user_id=user_id) if _is_uuid(user_id) else KeyPair.objects.none()
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
            {"rel": "next", "href": f"{_base(request)}/os-keypairs?{query.urlencode()}"}
        ]
    return JsonResponse(body)


def create_keypair(request, ctx: Context):
    """``POST /os-keypairs``: import ``public_key``, or generate a pair (the private key is in this
    answer only)."""
    body = json_body(request, "keypair")
    _text(body, "name"), _text(body, "public_key")
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


# --- hypervisors ----------------------------------------------------------------------------------


def _hosts(request: HttpRequest, ctx: Context):
    """The compute hosts, by name; from 2.53 ``hypervisor_hostname_pattern`` (a substring) and
    ``with_servers`` (each host's servers, prefetched: the query count stays fixed)."""
    policy.enforce(ctx, "compute:host:list")
    running = Count("instances", filter=~Q(instances__vm_state=Instance.DELETED))
    rows = (
        Host.objects.visible_to(ctx)
        .filter(compute__isnull=False)
        .select_related("compute")
        .defer("compute__domains")
        .annotate(running_vms=running)
        .order_by("name")
    )
    if at_least(request, "2.53"):
        pattern = request.GET.get("hypervisor_hostname_pattern")
        if pattern:
            rows = rows.filter(name__contains=pattern)
        if query_bool(request, "with_servers"):
            live = Instance.objects.exclude(vm_state=Instance.DELETED).only("id", "name", "host_id")
            rows = rows.prefetch_related(
                Prefetch("instances", queryset=live.order_by("name"), to_attr="servers")
            )
    return rows


def _host_page(request: HttpRequest, rows) -> tuple[list, int | None]:
    """From 2.33 hypervisor lists page by name (``limit``, ``marker``: a hypervisor id)."""
    if not at_least(request, "2.33"):
        return list(rows), None
    marker = request.GET.get("marker")
    if marker:
        last = rows.filter(pk=marker).values_list("name", flat=True).first() if _is_uuid(marker) else None
        if last is None:
            raise InvalidInput(f"marker [{marker}] not found")
        rows = rows.filter(name__gt=last)
    limit = query_limit(request)
    return list(rows if limit is None else rows[:limit]), limit


def render_hypervisor(request: HttpRequest, host: Host, detail: bool = True) -> dict:
    body = {
        "id": str(host.pk),
        "hypervisor_hostname": host.name,
        "state": host.state,
        "status": "enabled" if host.enabled else "disabled",
    }
    if detail:
        node = host.compute
        body.update(
            {
                "hypervisor_type": node.hypervisor_type or "QEMU",
                "hypervisor_version": node.hypervisor_version,
                "host_ip": None,  # hosts register by name; Zenith records no address for them
                "vcpus": node.vcpus,
                "vcpus_used": node.vcpus_used,
                "memory_mb": node.memory_mb,
                "memory_mb_used": node.memory_mb_used,
                "free_ram_mb": node.memory_mb - node.memory_mb_used,
                "local_gb": node.disk_gb,
                "local_gb_used": node.disk_gb_used,
                "free_disk_gb": node.disk_gb - node.disk_gb_used,
                "disk_available_least": node.disk_gb - node.disk_gb_used,
                "running_vms": host.running_vms,
                "current_workload": 0,
                "cpu_info": {} if at_least(request, "2.28") else "{}",
                "service": {
                    "host": host.name,
                    "id": str(host.pk),
                    "disabled_reason": host.disabled_reason or None,
                },
            }
        )
    servers = getattr(host, "servers", None)
    if servers is not None:
        body["servers"] = [{"name": i.name, "uuid": str(i.pk)} for i in servers]
    return body


def _hypervisor_list(request: HttpRequest, ctx: Context, detail: bool, path: str) -> JsonResponse:
    page, limit = _host_page(request, _hosts(request, ctx))
    body = {"hypervisors": [render_hypervisor(request, h, detail=detail) for h in page]}
    return JsonResponse({**body, **_next_link(request, path, page, limit, "hypervisors")})


def list_hypervisors(request, ctx: Context):
    return _hypervisor_list(request, ctx, False, "os-hypervisors")


def list_hypervisors_detail(request, ctx: Context):
    return _hypervisor_list(request, ctx, True, "os-hypervisors/detail")


def show_hypervisor(request, ctx: Context, host_id: str):
    host = get_or_404(_hosts(request, ctx), f"Hypervisor {host_id}", pk=host_id)
    return JsonResponse({"hypervisor": render_hypervisor(request, host)})


# --- quotas and limits ----------------------------------------------------------------------------

# Nova's quota names that Zenith has no resource for: fixed at what Zenith allows (none of them).
FIXED_QUOTAS = {
    "metadata_items": services.MAX_METADATA_ITEMS,
    "injected_files": 0,
    "injected_file_content_bytes": 0,
    "injected_file_path_bytes": 0,
    "server_groups": 0,
    "server_group_members": 0,
}
COMPUTE_QUOTAS = ("instances", "cores", "ram", "key_pairs")


def _quota_project(ctx: Context, project_id: str) -> Project:
    """Your own project, or any project for cloud admins."""
    policy.enforce(ctx, "identity:quota:show")
    if not ctx.is_admin and project_id != str(ctx.project_id):
        raise PolicyDenied("You may only see the quotas of the project your token is scoped to.")
    return get_or_404(Project.objects.visible_to(ctx), f"Project {project_id}", pk=project_id)


# The network proxies' quotas Nova shows before 2.36 (Zenith's networking is not served: none).
NETWORK_PROXY_QUOTAS = ("floating_ips", "fixed_ips", "security_groups", "security_group_rules")


def _quota_set(request: HttpRequest, project: Project, detail: bool, with_id: bool = True) -> dict:
    limits = quotas.limits(project)
    used = quotas.usage(project) if detail else {}
    body = {"id": str(project.pk)} if with_id else {}
    for name in COMPUTE_QUOTAS:
        body[name] = (
            {"limit": limits[name], "in_use": used.get(name, 0), "reserved": 0} if detail else limits[name]
        )
    fixed = dict(FIXED_QUOTAS)
    if not at_least(request, "2.36"):
        fixed.update(dict.fromkeys(NETWORK_PROXY_QUOTAS, 0))
    for name, value in fixed.items():
        body[name] = {"limit": value, "in_use": 0, "reserved": 0} if detail else value
    return body


def quota_set(request, ctx: Context, project_id: str):
    """``GET /os-quota-sets/{project_id}`` (``?usage=True`` for usage, as ``/detail`` gives)."""
    project = _quota_project(ctx, project_id)
    return JsonResponse({"quota_set": _quota_set(request, project, bool(query_bool(request, "usage")))})


def quota_set_detail(request, ctx: Context, project_id: str):
    return JsonResponse({"quota_set": _quota_set(request, _quota_project(ctx, project_id), True)})


def update_quota_set(request, ctx: Context, project_id: str):
    """``PUT /os-quota-sets/{project_id}`` (cloud admins; ``quota set --instances N --cores N --ram N``):
    instances, cores, ram and key_pairs go to identity's quotas (-1 is unlimited); the fixed ones
    may be sent only with the value they have; ``force`` is accepted (limits are never checked
    against usage here)."""
    body = json_body(request, "quota_set")
    project = get_or_404(Project.objects.visible_to(ctx), f"Project {project_id}", pk=project_id)
    changes = {}
    for name, value in body.items():
        if name == "force":
            if not isinstance(value, bool) and str(value).lower() not in ("true", "false"):
                raise InvalidInput("force must be true or false.")
            continue
        if name in COMPUTE_QUOTAS:
            changes[name] = _int(value, name)
        elif name in FIXED_QUOTAS or name in NETWORK_PROXY_QUOTAS:
            fixed = FIXED_QUOTAS.get(name, 0)
            if _int(value, name) != fixed:
                raise InvalidInput(f"The quota {name} is fixed at {fixed} in this cloud.")
        else:
            raise InvalidInput(f"Unknown quota {name!r}.")
    identity_services.set_quotas(ctx, project, changes)
    return JsonResponse({"quota_set": _quota_set(request, project, False, with_id=False)})


def delete_quota_set(request, ctx: Context, project_id: str):
    """``DELETE /os-quota-sets/{project_id}``: back to the defaults (cloud admins; 202)."""
    from django.conf import settings

    project = get_or_404(Project.objects.visible_to(ctx), f"Project {project_id}", pk=project_id)
    defaults = {name: settings.ZENITH_DEFAULT_QUOTAS[name] for name in COMPUTE_QUOTAS}
    identity_services.set_quotas(ctx, project, defaults)
    return empty(202)


def quota_defaults(request, ctx: Context, project_id: str):
    from django.conf import settings

    _quota_project(ctx, project_id)
    body = {
        "id": project_id,
        **{n: settings.ZENITH_DEFAULT_QUOTAS[n] for n in COMPUTE_QUOTAS},
        **FIXED_QUOTAS,
    }
    if not at_least(request, "2.36"):
        body.update(dict.fromkeys(NETWORK_PROXY_QUOTAS, 0))
    return JsonResponse({"quota_set": body})


def limits(request, ctx: Context):
    """``GET /limits``: the project's absolute limits and usage (``tenant_id`` for cloud admins
    reading another project's)."""
    policy.enforce(ctx, "identity:quota:show")
    project = ctx.project
    if request.GET.get("tenant_id") and request.GET["tenant_id"] != str(ctx.project_id):
        project = _quota_project(ctx, request.GET["tenant_id"])
    lim, used = quotas.limits(project), quotas.usage(project)
    absolute = {
        "maxTotalInstances": lim["instances"],
        "maxTotalCores": lim["cores"],
        "maxTotalRAMSize": lim["ram"],
        "maxTotalKeypairs": lim["key_pairs"],
        "maxServerMeta": services.MAX_METADATA_ITEMS,
        "maxPersonality": 0,
        "maxPersonalitySize": 0,
        "maxServerGroups": 0,
        "maxServerGroupMembers": 0,
        "totalInstancesUsed": used["instances"],
        "totalCoresUsed": used["cores"],
        "totalRAMUsed": used["ram"],
        "totalServerGroupsUsed": 0,
    }
    if not at_least(request, "2.36"):
        absolute.update(
            {
                "maxSecurityGroups": 0,
                "maxSecurityGroupRules": 0,
                "maxTotalFloatingIps": 0,
                "totalFloatingIpsUsed": 0,
                "totalSecurityGroupsUsed": 0,
            }
        )
    if not at_least(request, "2.39"):
        absolute["maxImageMeta"] = 128
    return JsonResponse({"limits": {"rate": [], "absolute": absolute}})


ID = r"(?P<{}>[^/]+)"
SERVER = ID.format("server_id")
FLAVOR = ID.format("flavor_id")

urlpatterns = [
    re_path(r"^$", endpoint(NOVA, auth=False, get=version)),
    re_path(r"^servers$", endpoint(NOVA, get=list_servers, post=create_server)),
    re_path(r"^servers/detail$", endpoint(NOVA, get=list_servers_detail)),
    re_path(rf"^servers/{SERVER}$", endpoint(NOVA, get=show_server, delete=delete_server)),
    re_path(rf"^servers/{SERVER}/action$", endpoint(NOVA, post=server_action)),
    re_path(rf"^servers/{SERVER}/os-instance-actions$", endpoint(NOVA, get=instance_actions)),
    re_path(
        rf"^servers/{SERVER}/metadata$",
        endpoint(NOVA, get=server_metadata, post=merge_server_metadata, put=replace_server_metadata),
    ),
    re_path(
        rf"^servers/{SERVER}/metadata/{ID.format('key')}$",
        endpoint(
            NOVA, get=server_metadata_item, put=set_server_metadata_item, delete=delete_server_metadata_item
        ),
    ),
    re_path(
        rf"^servers/{SERVER}/tags$",
        endpoint(NOVA, get=server_tags, put=refuse_server_tags, delete=refuse_server_tags),
    ),
    re_path(
        rf"^servers/{SERVER}/tags/{ID.format('tag')}$",
        endpoint(NOVA, get=server_tags, put=refuse_server_tags, delete=refuse_server_tags),
    ),
    re_path(r"^flavors$", endpoint(NOVA, get=list_flavors, post=create_flavor)),
    re_path(r"^flavors/detail$", endpoint(NOVA, get=list_flavors_detail)),
    re_path(rf"^flavors/{FLAVOR}$", endpoint(NOVA, get=show_flavor, delete=delete_flavor)),
    re_path(rf"^flavors/{FLAVOR}/os-extra_specs$", endpoint(NOVA, get=extra_specs, post=set_extra_specs)),
    re_path(rf"^flavors/{FLAVOR}/os-flavor-access$", endpoint(NOVA, get=flavor_access)),
    re_path(rf"^flavors/{FLAVOR}/action$", endpoint(NOVA, post=flavor_action)),
    re_path(
        rf"^flavors/{FLAVOR}/os-extra_specs/{ID.format('key')}$",
        endpoint(NOVA, get=extra_spec, put=set_extra_spec, delete=delete_extra_spec),
    ),
    re_path(r"^os-keypairs$", endpoint(NOVA, get=list_keypairs, post=create_keypair)),
    re_path(rf"^os-keypairs/{ID.format('name')}$", endpoint(NOVA, get=show_keypair, delete=delete_keypair)),
    re_path(r"^os-hypervisors$", endpoint(NOVA, get=list_hypervisors)),
    re_path(r"^os-hypervisors/detail$", endpoint(NOVA, get=list_hypervisors_detail)),
    re_path(rf"^os-hypervisors/{ID.format('host_id')}$", endpoint(NOVA, get=show_hypervisor)),
    re_path(
        rf"^os-quota-sets/{ID.format('project_id')}$",
        endpoint(NOVA, get=quota_set, put=update_quota_set, delete=delete_quota_set),
    ),
    re_path(rf"^os-quota-sets/{ID.format('project_id')}/detail$", endpoint(NOVA, get=quota_set_detail)),
    re_path(rf"^os-quota-sets/{ID.format('project_id')}/defaults$", endpoint(NOVA, get=quota_defaults)),
    re_path(r"^limits$", endpoint(NOVA, get=limits)),
    re_path(r"^.*$", not_found(NOVA)),
]
