"""Servers: list (with the filters the clients send), detail, create, delete, actions, console
output, the action log, metadata and (empty) tags."""

from __future__ import annotations

import base64
import binascii
import hashlib
import operator
import re
from functools import reduce

from django.db.models import F, Q
from django.http import HttpRequest, JsonResponse

from identity import audit, policy
from identity.context import Context
from identity.errors import InvalidInput, NotFound
from identity.openstack.http import (
    at_least,
    empty,
    get_or_404,
    iso,
    json_body,
    keyset_page,
    query_bool,
)
from identity.scoping import is_uuid

from ... import services
from ...models import Instance
from .common import base_url, next_link, resource_links, text_field

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
            {"id": str(instance.image_id), "links": resource_links(request, "images", instance.image_id)[1:]}
            if instance.image_id
            else ""
        ),
        "flavor": (
            _embedded_flavor(instance)
            if at_least(request, "2.47")
            else {
                "id": str(instance.flavor_id),
                "links": resource_links(request, "flavors", instance.flavor_id)[1:],
            }
        ),
        "created": iso(instance.created),
        "updated": iso(instance.updated),
        "addresses": {},
        "accessIPv4": "",
        "accessIPv6": "",
        "key_name": instance.key_name or None,
        "links": resource_links(request, "servers", instance.pk),
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
        body["description"] = instance.description or None
    if at_least(request, "2.26"):
        body["tags"] = list(instance.tags or [])
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
                rows = rows.filter(**{field: value}) if is_uuid(value) else rows.none()
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
            rows = rows.filter(**{field: params[param]}) if is_uuid(params[param]) else rows.none()
    rows = _by_tags(request, rows)
    if params.get("changes-since"):
        from django.utils.dateparse import parse_datetime

        since = parse_datetime(params["changes-since"])
        if since is None:
            raise InvalidInput(f"changes-since must be an ISO 8601 time, not {params['changes-since']!r}.")
        rows = rows.filter(updated__gte=since)
    return rows.order_by("-created", "-id")


def _by_tags(request: HttpRequest, rows):
    """Nova's tag filters (2.26), each a comma-separated list: ``tags`` (has all), ``tags-any``
    (has one), ``not-tags`` (lacks one of them), ``not-tags-any`` (has none)."""
    wanted = {p: [t for t in request.GET[p].split(",") if t] for p in TAG_FILTERS if request.GET.get(p)}
    if wanted and not at_least(request, "2.26"):
        raise InvalidInput("Filtering servers by tag needs compute microversion 2.26 or later.")

    def each(tags):
        return [Q(tags__has_item=t) for t in tags]

    if wanted.get("tags"):
        rows = rows.filter(*each(wanted["tags"]))
    if wanted.get("tags-any"):
        rows = rows.filter(reduce(operator.or_, each(wanted["tags-any"])))
    if wanted.get("not-tags"):
        rows = rows.exclude(reduce(operator.and_, each(wanted["not-tags"])))
    if wanted.get("not-tags-any"):
        rows = rows.exclude(reduce(operator.or_, each(wanted["not-tags-any"])))
    return rows


TAG_FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")


def list_servers(request, ctx: Context):
    """``GET /servers``: id, name and links of each."""
    page, limit = keyset_page(request, _servers(request, ctx).only("id", "name", "created"), MISSING_MARKER)
    rows = [
        {"id": str(s.pk), "name": s.name, "links": resource_links(request, "servers", s.pk)} for s in page
    ]
    return JsonResponse({"servers": rows, **next_link(request, "servers", page, limit, "servers")})


def list_servers_detail(request, ctx: Context):
    """``GET /servers/detail``: every field of each, in a fixed number of queries."""
    page, limit = keyset_page(request, _server_rows(request, ctx, _servers(request, ctx)), MISSING_MARKER)
    show_host = ctx.can("compute:instance:show_host")
    rows = [render_server(request, s, show_host) for s in page]
    return JsonResponse({"servers": rows, **next_link(request, "servers/detail", page, limit, "servers")})


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


def create_server(request, ctx: Context):
    """``POST /servers``: 202 with the new server's id; it builds in the background (status BUILD)."""
    server = json_body(request, "server")
    for key in ("name", "key_name", "availability_zone", "imageRef", "flavorRef"):
        text_field(server, key)
    if "description" in server and not at_least(request, "2.19"):
        raise InvalidInput("A server description needs compute microversion 2.19 or later.")
    if "tags" in server and not at_least(request, "2.52"):
        raise InvalidInput("Tagging a server at create needs compute microversion 2.52 or later.")
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
        description=server.get("description"),
        tags=server.get("tags"),
        availability_zone=server.get("availability_zone"),
        networks=networks,
        security_groups=groups,
        idempotency_key=request.headers.get("Idempotency-Key"),
    )
    body = {
        "server": {
            "id": str(instance.pk),
            "links": resource_links(request, "servers", instance.pk),
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{"name": "default"}],
        }
    }
    response = JsonResponse(body, status=202)
    response["Location"] = f"{base_url(request)}/servers/{instance.pk}"
    return response


def update_server(request, ctx: Context, server_id: str):
    """``PUT /servers/{id}`` (``server set --name/--description``): 200 with the server."""
    server = json_body(request, "server")
    allowed = {"name", "description"} if at_least(request, "2.19") else {"name"}
    unknown = sorted(set(server) - allowed)
    if unknown:
        raise InvalidInput(
            f"A server update takes only {', '.join(sorted(allowed))}, not {', '.join(unknown)}."
        )
    services.update_instance(ctx, _instance(ctx, server_id), **server)
    return show_server(request, ctx, server_id)


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
    resume, lock, unlock (202), createImage (202 with ``image_id`` and the image's Location),
    rebuild (202 with the server) or os-getConsoleOutput (200)."""
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
    elif name == "createImage":
        if not isinstance(args, dict) or set(args) - {"name", "metadata"} or args.get("metadata"):
            raise InvalidInput("createImage takes a name (image metadata is not supported here).")
        _instance_now, image = services.snapshot_instance(ctx, instance, name=args.get("name"))
        response = JsonResponse({"image_id": str(image.pk)}, status=202)
        response["Location"] = request.build_absolute_uri(f"/image/v2/images/{image.pk}")
        return response
    elif name == "rebuild":
        if not isinstance(args, dict) or not isinstance(args.get("imageRef"), str):
            raise InvalidInput("rebuild takes an imageRef.")
        services.rebuild_instance(ctx, instance, image=args["imageRef"])
        shown = _server_rows(request, ctx, Instance.objects.visible_to(ctx)).get(pk=instance.pk)
        server = render_server(request, shown, ctx.can("compute:instance:show_host"))
        return JsonResponse({"server": server}, status=202)
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


def server_tags(request, ctx: Context, server_id: str):
    """``GET /servers/{id}/tags`` (2.26)."""
    _tags_served(request)
    policy.enforce(ctx, "compute:instance:show")
    return JsonResponse({"tags": list(_instance(ctx, server_id).tags)})


def replace_server_tags(request, ctx: Context, server_id: str):
    """``PUT /servers/{id}/tags`` with ``{"tags": [...]}``: they become all of the server's tags."""
    _tags_served(request)
    body = json_body(request)
    if not isinstance(body, dict) or set(body) != {"tags"}:
        raise InvalidInput('The request body must be {"tags": [...]}.')
    instance = services.set_instance_tags(ctx, _instance(ctx, server_id), body["tags"])
    return JsonResponse({"tags": list(instance.tags)})


def delete_server_tags(request, ctx: Context, server_id: str):
    """``DELETE /servers/{id}/tags``: every tag removed, 204."""
    _tags_served(request)
    services.set_instance_tags(ctx, _instance(ctx, server_id), [])
    return empty(204)


def server_tag(request, ctx: Context, server_id: str, tag: str):
    """``GET /servers/{id}/tags/{tag}``: 204 when the server has it, else 404."""
    _tags_served(request)
    policy.enforce(ctx, "compute:instance:show")
    if tag not in _instance(ctx, server_id).tags:
        raise NotFound(f"Server {server_id} has no tag {tag}.")
    return empty(204)


def add_server_tag(request, ctx: Context, server_id: str, tag: str):
    """``PUT /servers/{id}/tags/{tag}``: 201 with its Location, 204 when it was there already."""
    _tags_served(request)
    instance = _instance(ctx, server_id)
    had = tag in instance.tags
    services.set_instance_tags(ctx, instance, add=(tag,))
    response = empty(204 if had else 201)
    response["Location"] = f"{base_url(request)}/servers/{instance.pk}/tags/{tag}"
    return response


def delete_server_tag(request, ctx: Context, server_id: str, tag: str):
    """``DELETE /servers/{id}/tags/{tag}``: 204, or 404 for a tag the server does not have."""
    _tags_served(request)
    services.set_instance_tags(ctx, _instance(ctx, server_id), remove=(tag,))
    return empty(204)


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
