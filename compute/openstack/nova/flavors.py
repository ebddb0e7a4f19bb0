"""Flavors: list, show, create, delete, extra specs, and access to private flavors."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from identity import policy
from identity.context import Context
from identity.errors import InvalidInput, NotFound
from identity.models import Project
from identity.openstack.http import (
    empty,
    get_or_404,
    json_body,
    query_bool,
    query_limit,
)
from identity.scoping import is_uuid

from ... import services
from ...models import Flavor
from .common import resource_links, whole_number


def render_flavor(request: HttpRequest, flavor: Flavor, detail: bool = True) -> dict:
    body = {"id": str(flavor.pk), "name": flavor.name, "links": resource_links(request, "flavors", flavor.pk)}
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
        last = rows.filter(pk=marker).first() if is_uuid(marker) else None
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


def create_flavor(request, ctx: Context):
    """``POST /flavors`` (cloud admins): the id is Zenith's own (a given one must be null or "auto")."""
    body = json_body(request, "flavor")
    if body.get("id") not in (None, "auto"):
        raise InvalidInput("Flavor ids are assigned by Zenith: send id null (or leave it out).")
    public = body.get("os-flavor-access:is_public", True)
    flavor = services.create_flavor(
        ctx,
        name=body.get("name"),
        vcpus=whole_number(body.get("vcpus"), "vcpus"),
        ram_mb=whole_number(body.get("ram"), "ram"),
        disk_gb=whole_number(body.get("disk"), "disk"),
        swap_mb=whole_number(body.get("swap"), "swap", 0),
        ephemeral_gb=whole_number(body.get("OS-FLV-EXT-DATA:ephemeral"), "OS-FLV-EXT-DATA:ephemeral", 0),
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
