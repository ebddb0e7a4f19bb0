"""Template helpers: ``ctx|can:"action"`` asks the policy engine, to hide what a user cannot do."""

from django import template

from identity import policy, services

register = template.Library()


@register.filter
def can(ctx, action: str) -> bool:
    return ctx is not None and ctx.user is not None and policy.check(ctx, action)


@register.filter
def own_admin_grant(ctx, assignment) -> bool:
    """``zctx|own_admin_grant:record``: the caller's own cloud-admin grant, which they may not revoke."""
    return ctx is not None and services.is_own_admin_grant(ctx, assignment)


@register.filter
def percent(used, limit) -> int:
    try:
        used, limit = int(used), int(limit)
    except (TypeError, ValueError):
        return 0
    if limit <= 0:
        return 0 if limit < 0 else 100
    return min(100, round(100 * used / limit))


RESOURCE_LABELS = {"ram": "RAM (MB)", "gigabytes": "Volume gigabytes", "floating_ips": "Floating IPs"}


@register.filter
def resource_label(resource: str) -> str:
    """A quota resource's name as a person reads it: ``floating_ips`` -> ``Floating IPs``."""
    return RESOURCE_LABELS.get(resource) or resource.replace("_", " ").capitalize()
