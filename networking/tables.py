"""Dashboard tables: the project's networks (and the admins' across projects), floating IPs,
security groups, and the network hosts with what each last said it applied.

A network or floating IP row that is changing (a network being built, synced or deleted; a floating
IP associating or disassociating) polls its own URL with htmx until it is stable, as volume rows do.
Buttons come from the declared transitions (``workers.dashboard``), shown where the state and the
caller's role allow them.
"""

from __future__ import annotations

import django_tables2 as tables
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from identity.dashboard import ResourceTable, delete_form, polling_row_attrs, status_badge
from workers.dashboard import Button, buttons_for, with_urls

from .models import FloatingIP, Network, Port, SecurityGroup
from .services.lifecycle import FLOATING_IP_LIFECYCLE, NETWORK_LIFECYCLE

TABLE_CLASS = "table table-sm table-hover align-middle"
RELEASE = Button(
    "release",
    "Release",
    "box-arrow-up",
    "danger",
    "networking:floating_ip:delete",
    confirm="Release floating IP {name}?",
)
# Where each button goes: (URL name, whether it opens a page with a form rather than posting).
NETWORK_URLS = {"update": ("networking:network-sync", False), "delete": ("networking:network-delete", False)}
FLOATING_URLS = {
    "associate": ("networking:floating-ip-associate", True),
    "disassociate": ("networking:floating-ip-disassociate", False),
    "release": ("networking:floating-ip-release", False),
}


def owned(ctx, record) -> bool:
    """Whether the row is the caller's project's (shared and external networks are seen by all)."""
    return ctx.is_admin or (ctx.project is not None and record.project_id == ctx.project.pk)


def network_buttons(ctx, network: Network) -> list[dict]:
    if not owned(ctx, network):
        return []
    return with_urls(buttons_for(ctx, NETWORK_LIFECYCLE, network), NETWORK_URLS, network.pk)


def floating_ip_buttons(ctx, fip: FloatingIP) -> list[dict]:
    extra = [RELEASE] if fip.status == FloatingIP.DOWN and not fip.busy and fip.port_id is None else []
    return with_urls(buttons_for(ctx, FLOATING_IP_LIFECYCLE, fip, extra), FLOATING_URLS, fip.pk)


def network_status(network: Network):
    return status_badge(network.display_status, "network-status")


def port_status(port: Port):
    """DOWN is a port its network host has not wired yet, not a failure."""
    down = port.status == Port.DOWN and not port.busy
    return status_badge(port.display_status, "port-status", colour="secondary" if down else "")


def floating_ip_status(fip: FloatingIP):
    """DOWN is a floating IP associated with nothing, not a failure."""
    down = fip.status == FloatingIP.DOWN and not fip.busy
    return status_badge(fip.display_status, "floating-ip-status", colour="secondary" if down else "")


def actions(buttons: list[dict], back: str, request=None):
    return render_to_string("networking/_actions.html", {"buttons": buttons, "back": back}, request=request)


class NetworkTable(ResourceTable):
    """The networks the project sees: its own, the shared and the external ones."""

    name = tables.Column(linkify=("networking:network", {"pk": tables.A("pk")}))
    subnets = tables.Column(empty_values=(), orderable=False, verbose_name="Subnets")
    shared = tables.BooleanColumn()
    external = tables.BooleanColumn()
    status = tables.Column(empty_values=(), order_by=("status", "busy"))
    port_count = tables.Column(verbose_name="Ports used")
    created = tables.Column(verbose_name="Age")
    actions = tables.Column(empty_values=(), orderable=False, verbose_name="")

    back = "list"

    class Meta:
        model = Network
        fields = ("name", "subnets", "shared", "external", "status", "port_count", "created")
        attrs = {"class": TABLE_CLASS, "id": "networks-table"}
        row_attrs = polling_row_attrs(
            "network",
            "networking:network-row",
            status=lambda record: record.display_status,
            transitional=lambda record: record.transitional,
        )
        order_by = "-created"
        empty_text = "No networks yet."

    def render_subnets(self, record):
        cidrs = [s.cidr for s in record.subnets.all()]
        if not cidrs:
            return mark_safe('<span class="text-secondary">none</span>')
        return format_html_join(" ", '<code class="subnet-cidr">{}</code>', ((c,) for c in cidrs))

    def render_status(self, record):
        return network_status(record)

    def render_actions(self, record):
        return actions(network_buttons(self.ctx, record), self.back, getattr(self, "request", None))


class AdminNetworkTable(NetworkTable):
    """Every project's networks, with their project, network host and VLAN (cloud admins)."""

    project = tables.Column(accessor="project__name", verbose_name="Project")
    host = tables.Column(accessor="host__name", verbose_name="Host", default="—")
    vlan = tables.Column(verbose_name="VLAN", default="—")
    bridge = tables.Column(verbose_name="Bridge", default="—")

    poll_query = "?admin=1"
    back = "admin"

    class Meta(NetworkTable.Meta):
        fields = ("name", "project", "host", "vlan", "bridge", "subnets", "shared", "external", "status")
        sequence = (
            "name",
            "project",
            "host",
            "vlan",
            "bridge",
            "subnets",
            "shared",
            "external",
            "status",
            "port_count",
            "created",
        )


class FloatingIPTable(ResourceTable):
    address = tables.Column(verbose_name="Address")
    network = tables.Column(accessor="network__name", verbose_name="Pool")
    status = tables.Column(empty_values=(), order_by=("status", "busy"))
    port = tables.Column(empty_values=(), orderable=False, verbose_name="Associated with")
    created = tables.Column(verbose_name="Age")
    actions = tables.Column(empty_values=(), orderable=False, verbose_name="")

    class Meta:
        model = FloatingIP
        fields = ("address", "network", "status", "port", "created")
        attrs = {"class": TABLE_CLASS, "id": "floating-ips-table"}
        row_attrs = {
            **polling_row_attrs(
                "floating-ip",
                "networking:floating-ip-row",
                status=lambda record: record.display_status,
                transitional=lambda record: bool(record.busy),
            ),
            "data-name": lambda record: record.address,
        }
        order_by = "-created"
        empty_text = "No floating IPs yet."

    def render_status(self, record):
        return floating_ip_status(record)

    def render_port(self, record):
        return render_to_string("networking/_floating_port.html", {"fip": record})

    def render_actions(self, record):
        return actions(floating_ip_buttons(self.ctx, record), "floating-ips", getattr(self, "request", None))


class SecurityGroupTable(ResourceTable):
    name = tables.Column(linkify=("networking:security-group", {"pk": tables.A("pk")}))
    description = tables.Column(default="")
    rule_count = tables.Column(verbose_name="Rules")
    created = tables.Column(verbose_name="Age")
    actions = tables.Column(empty_values=(), orderable=False, verbose_name="")

    class Meta:
        model = SecurityGroup
        fields = ("name", "description", "rule_count", "created")
        attrs = {"class": TABLE_CLASS, "id": "security-groups-table"}
        row_attrs = {"data-name": lambda record: record.name}
        empty_text = "No security groups yet."

    def render_actions(self, record):
        if not self.ctx.can("networking:security_group:delete"):
            return ""
        default = record.name == SecurityGroup.DEFAULT
        return delete_form(
            reverse("networking:security-group-delete", args=[record.pk]),
            f"Delete security group {record.name}?",
            disabled="every project keeps its default group" if default else "",
            request=getattr(self, "request", None),
        )


class NetworkHostTable(tables.Table):
    """Each network host: up or down, and per network what it last reported having applied."""

    name = tables.Column(verbose_name="Host")
    state = tables.Column(empty_values=(), orderable=False, verbose_name="State")
    networks = tables.Column(empty_values=(), orderable=False, verbose_name="Networks and what is applied")

    class Meta:
        attrs = {"class": TABLE_CLASS, "id": "network-hosts-table"}
        row_attrs = {"data-name": lambda record: record.name}
        empty_text = "No host has the network role."

    def render_state(self, record):
        if not record.enabled:
            return status_badge("disabled", colour="secondary")
        return status_badge("up" if record.is_up() else "down")

    def render_networks(self, record):
        return render_to_string("networking/_host_applied.html", {"networks": record.live_networks})
