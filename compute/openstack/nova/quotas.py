"""Quota sets (read, set and reset by cloud admins) and limits."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from identity import policy, quotas
from identity import services as identity_services
from identity.context import Context
from identity.errors import InvalidInput, PolicyDenied
from identity.models import Project
from identity.openstack.http import (
    at_least,
    empty,
    get_or_404,
    json_body,
    query_bool,
)

from ... import services
from .common import whole_number

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
            changes[name] = whole_number(value, name)
        elif name in FIXED_QUOTAS or name in NETWORK_PROXY_QUOTAS:
            fixed = FIXED_QUOTAS.get(name, 0)
            if whole_number(value, name) != fixed:
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
