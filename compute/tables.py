"""Dashboard tables (django-tables2): sorting and pagination come with them."""

import django_tables2 as tables

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
    actions = tables.TemplateColumn(
        template_name="compute/_flavor_actions.html", orderable=False, verbose_name=""
    )

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
