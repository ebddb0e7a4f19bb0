"""Dashboard tables (django-tables2): sorting and pagination come with them."""

import django_tables2 as tables
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from identity.dashboard import DATETIME_FORMAT, DeleteColumn, progress_bar, status_badge, usage_colour
from workers.models import Host

from .models import Flavor

ATTRS = {"class": "table table-sm table-hover align-middle"}


class FlavorTable(tables.Table):
    vcpus = tables.Column(verbose_name="vCPUs")
    ram_mb = tables.Column(verbose_name="RAM (MB)")
    disk_gb = tables.Column(verbose_name="Disk (GB)")
    ephemeral_gb = tables.Column(verbose_name="Ephemeral (GB)")
    swap_mb = tables.Column(verbose_name="Swap (MB)")
    is_public = tables.BooleanColumn(verbose_name="Public")
    projects = tables.Column(verbose_name="Projects with access", orderable=True)
    actions = DeleteColumn("compute:admin-flavor-delete", "flavor")

    class Meta:
        model = Flavor
        fields = (
            "name",
            "vcpus",
            "ram_mb",
            "disk_gb",
            "ephemeral_gb",
            "swap_mb",
            "is_public",
            "projects",
            "disabled",
        )
        attrs = ATTRS
        row_attrs = {"data-name": lambda record: record.name}


def usage_bar(used: float, total: float, label: str):
    """A small progress bar: ``used`` of ``total`` (the allocation limit), with ``label`` under it."""
    percent = min(100, round(100 * used / total)) if total else 0
    return progress_bar(percent, label=label, colour=usage_colour(percent))


def _ratio(value: float) -> str:
    return f"{value:g}"


class HostTable(tables.Table):
    state = tables.Column(empty_values=(), orderable=False, verbose_name="State")
    enabled = tables.BooleanColumn()
    vcpus = tables.Column(verbose_name="vCPUs")
    memory_mb = tables.Column(verbose_name="RAM")
    disk_gb = tables.Column(verbose_name="Local disk")
    hypervisor_type = tables.Column(accessor="compute__hypervisor_type", verbose_name="Hypervisor")
    domains = tables.Column(empty_values=(), orderable=False, verbose_name="Domains")
    last_heartbeat = tables.DateTimeColumn(verbose_name="Last heartbeat", format=DATETIME_FORMAT)
    actions = tables.TemplateColumn(
        template_name="compute/_host_actions.html", orderable=False, verbose_name=""
    )

    class Meta:
        model = Host
        fields = (
            "name",
            "state",
            "enabled",
            "hypervisor_type",
            "vcpus",
            "memory_mb",
            "disk_gb",
            "domains",
            "last_heartbeat",
        )
        attrs = ATTRS
        row_attrs = {"data-name": lambda record: record.name}

    def render_state(self, record):
        return status_badge(record.state)

    def render_enabled(self, record, value):
        if value:
            return mark_safe('<span class="text-success">enabled</span>')
        return format_html(
            '<span class="text-danger">disabled</span><br><small class="text-secondary">{}</small>',
            record.disabled_reason,
        )

    def render_domains(self, record):
        """What the host itself last reported (its power sync), beside what the scheduler claimed."""
        node = record.compute
        if node.domains_total is None:
            return mark_safe('<span class="text-secondary">not reported yet</span>')
        return format_html(
            '<span class="host-domains" title="reported {}">{} running<br>'
            '<small class="text-secondary">of {} defined</small></span>',
            node.domains_reported_at.strftime("%Y-%m-%d %H:%M:%S"),
            node.domains_running,
            node.domains_total,
        )

    def render_vcpus(self, record):
        node = record.compute
        limit = node.vcpus_limit
        return usage_bar(
            node.vcpus_used,
            limit,
            f"{node.vcpus_used} / {node.vcpus} × {_ratio(node.cpu_allocation_ratio)}",
        )

    def render_memory_mb(self, record):
        node = record.compute
        return usage_bar(
            node.memory_mb_used,
            node.memory_mb_limit,
            f"{node.memory_mb_used} / {node.memory_mb} MB × {_ratio(node.ram_allocation_ratio)}",
        )

    def render_disk_gb(self, record):
        node = record.compute
        return usage_bar(
            node.disk_gb_used,
            node.disk_gb_limit,
            f"{node.disk_gb_used} / {node.disk_gb} GB × {_ratio(node.disk_allocation_ratio)}",
        )
