"""Template helpers: ``ctx|can:"action"`` asks the policy engine, to hide what a user cannot do."""

from datetime import UTC, datetime

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html_join

from identity import dashboard, policy, services
from workers.lifecycle import action_label, message_shown, shows_hosts

register = template.Library()

UTC_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


@register.filter
def can(ctx, action: str) -> bool:
    return ctx is not None and ctx.user is not None and policy.check(ctx, action)


@register.filter
def colour(status) -> str:
    """``status|colour``: the Bootstrap colour every table and badge gives a status (identity.dashboard)."""
    return dashboard.status_colour(status)


@register.filter
def usage_colour(percent) -> str:
    """``pct|usage_colour``: green, amber from 70 %, red from 90 % (every usage bar alike)."""
    return dashboard.usage_colour(percent or 0)


@register.simple_tag
def polling(url):
    """``{% polling url %}``: the htmx attributes that refresh an element from ``url`` while it changes."""
    return format_html_join(" ", '{}="{}"', dashboard.polling_attrs(url).items())


@register.filter
def own_admin_grant(ctx, assignment) -> bool:
    """``zctx|own_admin_grant:record``: the caller's own cloud-admin grant, which they may not revoke."""
    return ctx is not None and services.is_own_admin_grant(ctx, assignment)


@register.filter
def fault_for(instance, ctx):
    """``instance|fault_for:zctx``: the instance's fault as the caller may see it (hosts for admins)."""
    return instance.fault_shown(shows_hosts(ctx))


@register.filter
def rejected_hosts(fault) -> list[dict]:
    """``fault|rejected_hosts``: the per-host verdicts a no-valid-host fault keeps that failed, whether
    its details are the verdicts or, after failed spawns, ``{"attempts": ..., "hosts": verdicts}``."""
    details = (fault or {}).get("details")
    if isinstance(details, dict):
        details = details.get("hosts")
    if not isinstance(details, list):
        return []
    return [v for v in details if isinstance(v, dict) and not v.get("passed")]


@register.filter
def label_of(row) -> str:
    """``row|label_of``: a ResourceAction's action as users read it ("Hard reboot", not reboot_hard)."""
    return action_label(row.resource_type, row.action)


@register.filter
def message_for(message, ctx) -> str:
    """``row.message|message_for:zctx``: an operation's or action's message as the caller may see it."""
    return message_shown(message or "", shows_hosts(ctx))


@register.filter
def utc(value) -> str:
    """A moment as ``2026-12-02 17:43 UTC``: from a datetime or the ISO text JSON fields keep."""
    if isinstance(value, str):
        try:
            value = parse_datetime(value)
        except ValueError:  # well-formed but impossible, e.g. month 13
            return ""
    if not isinstance(value, datetime):
        return ""
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value.astimezone(UTC).strftime(UTC_FORMAT)


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
