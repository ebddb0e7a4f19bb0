"""Dashboard tables and buttons for instances: the project's list, the admins' list across projects.

A row whose instance is transitional (building, or an action running) polls its own URL every two
seconds with htmx and swaps itself; the partial it gets back stops polling once the state is stable.
"""

from __future__ import annotations

import uuid

import django_tables2 as tables
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html

from identity.dashboard import ResourceTable, polling_row_attrs
from workers.dashboard import Button, buttons_for, transition_buttons

from .models import Instance
from .services.lifecycle import INSTANCE

ATTRS = {"class": "table table-sm table-hover align-middle", "id": "instances-table"}

# The dashboard's status filter: Nova's status -> the vm_state rows it covers.
STATUS_FILTER = {
    "ACTIVE": "active",
    "BUILD": "building",
    "SHUTOFF": "stopped",
    "PAUSED": "paused",
    "SUSPENDED": "suspended",
    "ERROR": "error",
}


LOCK = Button(
    "lock", "Lock", "lock", "secondary", "compute:instance:lock", message="Instance {name} is locked."
)
UNLOCK = Button(
    "unlock",
    "Unlock",
    "unlock",
    "secondary",
    "compute:instance:unlock",
    message="Instance {name} is unlocked.",
)
# Every action a dashboard POST may name: the lifecycle's transitions, then lock and unlock.
ACTIONS = {**transition_buttons(INSTANCE), LOCK.action: LOCK, UNLOCK.action: UNLOCK}


MENU_ID = uuid.UUID(int=0)  # stands for the row's id in the page's action menu


def instance_buttons(ctx, instance: Instance) -> list[dict]:
    """The buttons to show for ``instance``: what its state allows and the caller's role may do.

    A locked instance offers non-admins only Unlock (the services refuse the rest anyway).
    """
    extra = []
    if instance.vm_state != Instance.DELETED and instance.task_state != Instance.DELETING:
        if not instance.locked:
            extra.append(LOCK)
        elif ctx.is_admin or instance.locked_by != "admin":
            extra.append(UNLOCK)
    if instance.locked and not ctx.is_admin:
        return [b.render(instance.name) for b in extra if ctx.can(b.policy)]
    return buttons_for(ctx, INSTANCE, instance, extra)


# The row's id, and htmx polling while (only while) the instance is transitional.
ROW_ATTRS = polling_row_attrs(
    "instance",
    "compute:instance-row",
    status=lambda record: record.status,
    transitional=lambda record: record.transitional,
)


class InstanceTable(ResourceTable):
    """The current project's instances."""

    name = tables.Column(linkify=("compute:instance", {"pk": tables.A("pk")}))
    status = tables.Column(empty_values=(), order_by=("vm_state", "task_state"))
    task = tables.Column(empty_values=(), accessor="task_state", verbose_name="Task")
    addresses = tables.Column(empty_values=(), orderable=False, verbose_name="IP addresses")
    flavor = tables.Column(accessor="flavor__name", verbose_name="Flavor")
    image = tables.Column(accessor="image__name", verbose_name="Image", default="—")
    created = tables.Column(verbose_name="Age")
    actions = tables.Column(empty_values=(), orderable=False, verbose_name="")

    back = "list"  # where an action posted from a row returns

    class Meta:
        model = Instance
        fields = ("name", "status", "task", "addresses", "flavor", "image", "created")
        attrs = ATTRS
        row_attrs = ROW_ATTRS
        order_by = "-created"
        empty_text = "No instances yet."

    def render_status(self, record):
        return render_to_string(
            "compute/_instance_status.html",
            {
                "instance": record,
                "zctx": self.ctx,
            },
        )

    def render_task(self, record):
        return render_to_string("compute/_instance_task.html", {"instance": record})

    def render_addresses(self, record):
        # Fixed IPs come with networking; until then an instance has none to show.
        return format_html(
            '<span class="text-secondary" title="{}">—</span>', "no networks in this cloud yet"
        )

    def render_flavor(self, record):
        return format_html(
            '{}<br><small class="text-secondary">{} vCPU · {} MB · {} GB</small>',
            record.flavor.name,
            record.vcpus,
            record.memory_mb,
            record.disk_gb,
        )

    def render_actions(self, record):
        # Only which actions the row offers: the menu and its one form are rendered once per page
        # (``action_menu``), and the page's script fills a row's menu from them when it opens.
        offered = " ".join(b["action"] for b in instance_buttons(self.ctx, record))
        if not offered:
            return ""
        return format_html(
            '<div class="dropdown instance-actions" data-actions="{}">'
            '<button class="btn btn-sm btn-outline-secondary dropdown-toggle" type="button" '
            'data-bs-toggle="dropdown" aria-expanded="false" aria-label="Actions for {}">Actions</button>'
            '<ul class="dropdown-menu dropdown-menu-end"></ul></div>',
            offered,
            record.name,
        )

    def action_menu(self) -> list[dict]:
        """Every action a row may offer, once for the page: its button, URL and confirmation with the
        ``{id}`` and ``{name}`` the script fills in for the row whose menu opens."""
        url = reverse("compute:instance-action", args=[MENU_ID, "ACTION"])
        return [
            {
                **button.render("{name}"),
                "url": url.replace(str(MENU_ID), "{id}").replace("ACTION", button.action),
            }
            for button in ACTIONS.values()
            if self.ctx.can(button.policy)
        ]


class AdminInstanceTable(InstanceTable):
    """Every project's instances, with the project and the host (cloud admins)."""

    project = tables.Column(accessor="project__name", verbose_name="Project")
    host = tables.Column(accessor="host__name", verbose_name="Host", default="—")

    poll_query = "?admin=1"
    back = "admin"

    class Meta(InstanceTable.Meta):
        fields = ("name", "project", "host", "status", "task", "flavor", "image", "created")
        sequence = ("name", "project", "host", "status", "task", "addresses", "flavor", "image", "created")
