"""Security groups and their rules: the ``default`` group of every project (made on first use:
ingress from its own members, all egress), create/delete groups, rules with validation; a change is
applied to every bound port it concerns (its compute host gets the port's filter again)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from identity import audit, policy, quotas
from identity.context import Context
from identity.errors import Conflict, InvalidInput
from identity.names import clean_name
from identity.validators import clean_description

from ..models import Port, SecurityGroup, SecurityGroupRule
from . import ipam
from .lifecycle import PORT_LIFECYCLE

R = SecurityGroupRule
PROTOCOLS = ("tcp", "udp", "icmp", "any")
ETHERTYPES = ("IPv4", "IPv6")


def ensure_default_security_group(ctx: Context, project=None) -> SecurityGroup:
    """The project's ``default`` group, made with its rules the first time it is needed (concurrent
    first uses make one: the unique name decides)."""
    project = project or ctx.project
    group = SecurityGroup.objects.filter(project=project, name=SecurityGroup.DEFAULT).first()
    if group is not None:
        return group
    try:
        with transaction.atomic():
            group = SecurityGroup.objects.create(
                project=project, name=SecurityGroup.DEFAULT, description="Default security group"
            )
            R.objects.bulk_create(
                [
                    R(group=group, project=project, direction=direction, ethertype=ethertype, **remote)
                    for ethertype in ETHERTYPES
                    for direction, remote in ((R.INGRESS, {"remote_group": group}), (R.EGRESS, {}))
                ]
            )
            audit.record(ctx, "security_group", group.pk, "create", project=project, message="default")
    except IntegrityError:
        return SecurityGroup.objects.get(project=project, name=SecurityGroup.DEFAULT)
    return group


def resolve_group(ctx: Context, ref: Any) -> SecurityGroup:
    """One of the project's groups by id or name (``default`` is made if it is not there yet);
    another project's group is not even seen (a 400 saying it is not available)."""
    if isinstance(ref, SecurityGroup):
        ref = str(ref.pk)
    if ref == SecurityGroup.DEFAULT:
        return ensure_default_security_group(ctx)
    return SecurityGroup.objects.resolve(ctx, ref, "security group")


def resolve_groups(ctx: Context, refs: Any) -> list[SecurityGroup]:
    """Groups named by id or name (the project's own only); none named: the default group."""
    if refs in (None, []):
        return [ensure_default_security_group(ctx)]
    if not isinstance(refs, list) or len(refs) > 20:
        raise InvalidInput("security_groups is a list of at most 20 group names or ids.")
    groups = []
    for ref in refs:
        group = resolve_group(ctx, ref)
        if group not in groups:
            groups.append(group)
    return groups


def create_security_group(ctx: Context, *, name: Any, description: Any = "") -> SecurityGroup:
    policy.enforce(ctx, "networking:security_group:create")
    name = clean_name(name, "Security group", 255)
    description = clean_description(description)
    if name == SecurityGroup.DEFAULT:
        ensure_default_security_group(ctx)
        raise Conflict("Every project has its default group already.", code="exists")
    try:
        with transaction.atomic():
            quotas.enforce(ctx.project, {"security_groups": 1}, ctx.user)
            group = SecurityGroup.objects.create(
                project=ctx.project, name=name, description=description or ""
            )
            audit.record(ctx, "security_group", group.pk, "create")
    except IntegrityError:
        raise Conflict(f"This project has a security group named {name!r} already.", code="exists") from None
    return group


def delete_security_group(ctx: Context, group: SecurityGroup) -> None:
    """Delete a group no port uses and no other group's rule names (409 saying which)."""
    policy.enforce(ctx, "networking:security_group:delete")
    if group.name == SecurityGroup.DEFAULT:
        raise Conflict("The default security group cannot be deleted.", code="in_use")
    with transaction.atomic():
        ports = Port.objects.live().filter(security_groups=group).count()
        if ports:
            raise Conflict(f"Security group {group.name} is used by {ports} port(s).", code="in_use")
        naming = R.objects.filter(remote_group=group).exclude(group=group).count()
        if naming:
            raise Conflict(
                f"Security group {group.name} is named by {naming} rule(s) of other groups.", code="in_use"
            )
        audit.record(ctx, "security_group", group.pk, "delete", project=group.project)
        group.delete()


def _port_number(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise InvalidInput(f"{what} must be a whole number from 1 to 65535.")
    return value


def clean_rule(
    ctx: Context,
    *,
    direction: Any,
    ethertype: Any = "IPv4",
    protocol: Any = "any",
    port_min: Any = None,
    port_max: Any = None,
    remote_cidr: Any = "",
    remote_group: Any = None,
) -> dict:
    """A rule's fields checked: port ranges only for tcp and udp (1-65535, min <= max), icmp type
    and code 0-255, a remote CIDR of the rule's ethertype or a group of the same project, not both."""
    if direction not in (R.INGRESS, R.EGRESS):
        raise InvalidInput("direction must be ingress or egress.")
    if ethertype not in ETHERTYPES:
        raise InvalidInput("ethertype must be IPv4 or IPv6.")
    if protocol in (None, ""):
        protocol = "any"
    if protocol not in PROTOCOLS:
        raise InvalidInput(f"protocol must be one of {', '.join(PROTOCOLS)}.")
    low, high = _port_number(port_min, "port_min"), _port_number(port_max, "port_max")
    if protocol in ("tcp", "udp"):
        if (low is None) != (high is None):
            low, high = low if low is not None else high, high if high is not None else low
        if low is not None and not 1 <= low <= high <= 65535:
            raise InvalidInput("port_min and port_max must be 1-65535 with port_min <= port_max.")
    elif protocol == "icmp":
        for value, what in ((low, "the icmp type (port_min)"), (high, "the icmp code (port_max)")):
            if value is not None and value > 255:
                raise InvalidInput(f"{what} must be 0-255.")
        if high is not None and low is None:
            raise InvalidInput("An icmp code (port_max) needs an icmp type (port_min).")
    elif low is not None or high is not None:
        raise InvalidInput("A port range is only for tcp and udp (and an icmp type and code).")
    cidr = ""
    if remote_cidr not in (None, ""):
        net = ipam.parse_cidr(remote_cidr, "remote_cidr")
        if f"IPv{net.version}" != ethertype:
            raise InvalidInput(f"remote_cidr {net} is not an {ethertype} network.")
        cidr = str(net)
    group = None
    if remote_group not in (None, ""):
        if cidr:
            raise InvalidInput("A rule has a remote_cidr or a remote_group, not both.")
        group = resolve_group(ctx, remote_group)  # the project's own
    return {
        "direction": direction,
        "ethertype": ethertype,
        "protocol": protocol,
        "port_min": low,
        "port_max": high,
        "remote_cidr": cidr,
        "remote_group": group,
    }


def create_rule(ctx: Context, *, group: Any, description: Any = "", **fields) -> SecurityGroupRule:
    """Add a rule to one of the project's groups; its bound ports get their filters again."""
    policy.enforce(ctx, "networking:security_group_rule:create")
    group = resolve_group(ctx, group)
    values = clean_rule(ctx, **fields)
    description = clean_description(description, 255)
    with transaction.atomic():
        quotas.enforce(ctx.project, {"security_group_rules": 1}, ctx.user)
        SecurityGroup.objects.select_for_update().filter(pk=group.pk).first()
        if R.objects.filter(group=group, **values).exists():
            raise Conflict("The group has this rule already.", code="exists")
        rule = R.objects.create(group=group, project=group.project, description=description or "", **values)
        audit.record(ctx, "security_group_rule", rule.pk, "create", project=group.project, message=str(rule))
        refresh_filters(ctx, [group.pk])
    return rule


def delete_rule(ctx: Context, rule: SecurityGroupRule) -> None:
    policy.enforce(ctx, "networking:security_group_rule:delete")
    with transaction.atomic():
        audit.record(ctx, "security_group_rule", rule.pk, "delete", project=rule.project, message=str(rule))
        group_id = rule.group_id
        rule.delete()
        refresh_filters(ctx, [group_id])


def refresh_filters(ctx: Context, group_ids) -> list[Port]:
    """Every bound live port whose filter depends on these groups (a member, or a member of a group
    whose rules name them) gets its filter applied again on its compute host."""
    group_ids = list(group_ids)
    dependent = set(R.objects.filter(remote_group_id__in=group_ids).values_list("group_id", flat=True))
    ports = list(
        Port.objects.live()
        .exclude(host="")
        .exclude(busy=Port.DELETING)
        .filter(Q(security_groups__in=group_ids) | Q(security_groups__in=dependent))
        .distinct()
    )
    for port in ports:
        PORT_LIFECYCLE.begin(ctx, port, "update_filter")
    return ports


__all__ = [
    "clean_rule",
    "create_rule",
    "create_security_group",
    "delete_rule",
    "delete_security_group",
    "ensure_default_security_group",
    "refresh_filters",
    "resolve_group",
    "resolve_groups",
]
