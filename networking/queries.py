"""Read-only querysets the networking dashboard's pages use (networking.services owns every write):
each page's rows in a fixed number of queries, whatever their number."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q

from workers.models import Host

from .models import FloatingIP, IPAllocation, Network, Port, SecurityGroup, SecurityGroupRule, Subnet
from .services import ipam, ports_rows

LIVE_PORTS = ~Q(ports__status=Port.DELETED)


def network_rows(queryset):
    """What a network row shows: its subnets' CIDRs (one query) and how many live ports it has."""
    return (
        queryset.select_related("operation", "host")
        .defer("operation__payload", "operation__result")
        .prefetch_related(Prefetch("subnets", queryset=Subnet.objects.only("id", "network_id", "cidr")))
        .annotate(port_count=Count("ports", filter=LIVE_PORTS))
    )


def project_networks(ctx):
    """The networks the project sees: its own, the shared and the external ones."""
    if ctx.is_admin and ctx.project is not None:  # an admin's project list is its project's, not all
        scope = Network.objects.live().filter(
            Q(project_id=ctx.project.pk) | Q(shared=True) | Q(external=True)
        )
    else:
        scope = Network.objects.visible_to(ctx)
    return network_rows(scope)


def all_networks(ctx):
    return network_rows(Network.objects.across_projects(ctx).select_related("project"))


def external_networks(ctx):
    return network_rows(Network.objects.across_projects(ctx).filter(external=True).select_related("project"))


def find_network(ctx, pk) -> Network | None:
    """A network the caller sees (any project's for cloud admins: the admin list links here)."""
    return network_rows(Network.objects.visible_to(ctx).select_related("project")).filter(pk=pk).first()


def network_subnets(network: Network) -> list[Subnet]:
    """The network's subnets, each with ``used`` and ``free`` addresses (one query for both)."""
    subnets = list(
        Subnet.objects.filter(network=network)
        .order_by("created")
        .prefetch_related(
            Prefetch("allocations", queryset=IPAllocation.objects.only("id", "subnet_id", "address"))
        )
    )
    for subnet in subnets:
        addresses = [a.address for a in subnet.allocations.all()]
        subnet.used = len(addresses)
        subnet.free = ipam.free_count(subnet, addresses)
    return subnets


def network_ports(ctx, network: Network):
    """The network's live ports the caller sees (its project's; every project's for admins)."""
    scope = Port.objects.across_projects(ctx) if ctx.is_admin else Port.objects.visible_to(ctx)
    return list(ports_rows(scope.filter(network=network)).order_by("created"))


def project_floating_ips(ctx):
    return (
        FloatingIP.objects.visible_to(ctx)
        .select_related("network", "port", "operation")
        .defer("operation__payload", "operation__result")
    )


def find_floating_ip(ctx, pk) -> FloatingIP | None:
    return project_floating_ips(ctx).filter(pk=pk).first()


def external_network_choices(ctx) -> list[tuple[str, str]]:
    """The external networks a floating IP may come from."""
    rows = Network.objects.visible_to(ctx).filter(external=True, status=Network.ACTIVE, busy="")
    return [(str(n.pk), n.name) for n in rows.only("pk", "name").order_by("name")]


def port_label(port: Port) -> str:
    """A port as a person picks it: its instance (or name) and its fixed IPs."""
    owner = f"instance {str(port.instance_id)[:8]}" if port.instance_id else "no instance"
    name = f" · {port.name}" if port.name else ""
    ips = ", ".join(a.address for a in port.fixed_ips.all()) or "no address"
    return f"{owner}{name} · {ips} ({port.network.name})"


def port_choices(ctx) -> list[tuple[str, str]]:
    """The project's ports a floating IP may point at: live, with an IPv4 address, none of its own."""
    rows = (
        Port.objects.visible_to(ctx)
        .exclude(busy=Port.DELETING)
        .filter(fixed_ips__subnet__ip_version=4)
        .exclude(pk__in=FloatingIP.objects.live().filter(port__isnull=False).values("port_id"))
        .distinct()
        .select_related("network")
        .prefetch_related("fixed_ips")
        .order_by("created")
    )
    return [(str(p.pk), port_label(p)) for p in rows]


def project_groups(ctx):
    """The project's security groups with how many rules each has."""
    return SecurityGroup.objects.visible_to(ctx).annotate(rule_count=Count("rules")).order_by("name")


def find_group(ctx, pk) -> SecurityGroup | None:
    return SecurityGroup.objects.visible_to(ctx).filter(pk=pk).first()


def group_rules(group: SecurityGroup) -> list[SecurityGroupRule]:
    return list(group.rules.select_related("remote_group").order_by("created"))


def find_rule(ctx, group: SecurityGroup, pk) -> SecurityGroupRule | None:
    return SecurityGroupRule.objects.visible_to(ctx).filter(group=group, pk=pk).first()


def group_choices(ctx) -> list[tuple[str, str]]:
    return [(str(g.pk), g.name) for g in SecurityGroup.objects.visible_to(ctx).only("pk", "name")]


def network_hosts():
    """Every network host with its live networks (what each last said it applied): two queries."""
    live = Network.objects.live().only(
        "id", "name", "host_id", "vlan", "bridge", "status", "busy", "applied", "simulated", "external"
    )
    return (
        Host.objects.with_role("network")
        .prefetch_related(Prefetch("networks", queryset=live.order_by("name"), to_attr="live_networks"))
        .order_by("name")
    )
