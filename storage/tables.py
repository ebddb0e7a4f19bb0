"""Dashboard tables for volumes (the project's and the admins' across projects), snapshots, volume
types and the storage hosts' backends.

A row whose volume or snapshot is transitional (creating, or an action running) polls its own URL
every two seconds with htmx and swaps itself, as compute's instance rows do; the partial it gets back
stops polling once the state is stable. Buttons come from the declared transitions
(``workers.dashboard``), shown where the state and the caller's role allow them.
"""

from __future__ import annotations

import django_tables2 as tables
from django.template.loader import render_to_string
from django.utils.html import format_html

from identity.dashboard import (
    DeleteColumn,
    ResourceTable,
    polling_row_attrs,
    progress_bar,
    status_badge,
    usage_colour,
)
from workers.dashboard import Button, buttons_for, with_urls

from .models import GIB, Snapshot, Volume
from .services.lifecycle import SNAPSHOT, VOLUME

# Actions done through a form of their own page (they need an input), not a bare POST.
SNAPSHOT_BUTTON = Button("snapshot", "Create snapshot", "camera", "secondary", "storage:snapshot:create")
CLONE_BUTTON = Button("clone", "Clone", "copy", "secondary", "storage:volume:create")
FORCE_DETACH = Button(
    "force_detach",
    "Force-detach",
    "x-octagon",
    "danger",
    "storage:volume:force_detach",
    confirm="Forget volume {name}'s attachment whatever its host says?",
    message="Volume {name} is detached (forced).",
)
RESET_STATE = Button(
    "reset_state", "Reset state", "arrow-counterclockwise", "danger", "storage:volume:reset_state"
)
# Where each button goes: (URL name, whether it opens a page with a form rather than posting).
# Attach and detach are compute's pages: it knows the instances (storage never imports compute).
VOLUME_URLS = {
    "extend": ("storage:volume-extend", True),
    "extend_attached": ("storage:volume-extend", True),
    "attach": ("compute:volume-attach", True),
    "detach": ("compute:volume-detach", False),
    "delete": ("storage:volume-delete", False),
    "snapshot": ("storage:volume-snapshot", True),
    "clone": ("storage:volume-clone", True),
    "force_detach": ("storage:volume-force-detach", False),
    "reset_state": ("storage:volume-reset-state", True),
    "upload": ("storage:volume-upload", True),
}
FOREIGN_ACTIONS = {"delete", "force_detach", "reset_state"}
SNAPSHOT_URLS = {
    "delete": ("storage:snapshot-delete", False),
    "new_volume": ("storage:snapshot-new-volume", True),
}


def volume_status(volume: Volume) -> str:
    """A volume's status badge, with its operation's progress bar while it changes and its fault."""
    op = volume.operation
    progress = ""
    if (volume.busy or volume.status == Volume.CREATING) and op is not None and not op.finished:
        label = f"{op.progress}%" + (f" · {op.message}" if op.message else "")
        progress = progress_bar(
            op.progress, label=label, animated=True, css="volume-progress", name=f"{op.kind} progress"
        )
    return render_to_string(
        "storage/_volume_status.html",
        {
            "volume": volume,
            "badge": status_badge(volume.display_status, "volume-status"),
            "progress": progress,
        },
    )


def volume_buttons(ctx, volume: Volume, admin: bool = False) -> list[dict]:
    """What the volume's state allows and the caller's role may do: its transitions, snapshot and
    clone while it is stable, and for admins force-detach (when attached) and reset-state."""
    extra = []
    if not volume.busy and volume.status in (Volume.AVAILABLE, Volume.IN_USE):
        extra += [SNAPSHOT_BUTTON, CLONE_BUTTON]
    if admin:
        if getattr(volume, "live_attachments", None):
            extra.append(FORCE_DETACH)
        extra.append(RESET_STATE)
    buttons = buttons_for(ctx, VOLUME, volume, extra)
    if ctx.project is None or volume.project_id != ctx.project.pk:
        # Another project's volume (an admin's panel): attach, snapshot and clone happen in its own
        # project, so only the admin's repairs and delete are offered.
        buttons = [b for b in buttons if b["action"] in FOREIGN_ACTIONS]
    return with_urls(buttons, VOLUME_URLS, volume.pk)


def snapshot_buttons(ctx, snapshot: Snapshot) -> list[dict]:
    extra = [Button("new_volume", "Create volume", "hdd", "primary", "storage:volume:create")]
    shown = buttons_for(
        ctx, SNAPSHOT, snapshot, extra if snapshot.display_status == Snapshot.AVAILABLE else []
    )
    return with_urls(shown, SNAPSHOT_URLS, snapshot.pk)


def _transitional(record) -> bool:
    return bool(record.busy) or record.status == "creating"


def _row_attrs(prefix: str, url_name: str) -> dict:
    return polling_row_attrs(
        prefix, url_name, status=lambda record: record.display_status, transitional=_transitional
    )


class _StorageTable(ResourceTable):
    """Volumes and snapshots: a status with its busy state first, a size in GiB."""

    def render_status(self, record):
        return volume_status(record)

    def render_size(self, record):
        return f"{record.size} GiB"


class VolumeTable(_StorageTable):
    """The current project's volumes."""

    name = tables.Column(linkify=("storage:volume", {"pk": tables.A("pk")}))
    status = tables.Column(empty_values=(), order_by=("status", "busy"))
    size = tables.Column(verbose_name="Size")
    volume_type = tables.Column(accessor="volume_type__name", verbose_name="Type")
    attached = tables.Column(empty_values=(), orderable=False, verbose_name="Attached to")
    source = tables.Column(verbose_name="Source")
    bootable = tables.BooleanColumn()
    created = tables.Column(verbose_name="Age")
    actions = tables.Column(empty_values=(), orderable=False, verbose_name="")

    back = "list"
    admin = False

    class Meta:
        model = Volume
        fields = ("name", "status", "size", "volume_type", "attached", "source", "bootable", "created")
        attrs = {"class": "table table-sm table-hover align-middle", "id": "volumes-table"}
        row_attrs = _row_attrs("volume", "storage:volume-row")
        order_by = "-created"
        empty_text = "No volumes yet."

    def render_attached(self, record):
        return render_to_string(
            "storage/_volume_attached.html", {"attachments": getattr(record, "live_attachments", [])}
        )

    def render_actions(self, record):
        return render_to_string(
            "storage/_volume_actions.html",
            {
                "volume": record,
                "buttons": volume_buttons(self.ctx, record, self.admin),
                "compact": True,
                "back": self.back,
            },
            request=getattr(self, "request", None),
        )


class AdminVolumeTable(VolumeTable):
    """Every project's volumes, with the project and the storage host (cloud admins)."""

    project = tables.Column(accessor="project__name", verbose_name="Project")
    host = tables.Column(accessor="pool__host__name", verbose_name="Host", default="—")

    poll_query = "?admin=1"
    back = "admin"
    admin = True

    class Meta(VolumeTable.Meta):
        fields = ("name", "project", "host", "status", "size", "volume_type", "attached", "source", "created")
        sequence = (
            "name",
            "project",
            "host",
            "status",
            "size",
            "volume_type",
            "attached",
            "source",
            "bootable",
            "created",
        )


class SnapshotTable(_StorageTable):
    """The current project's snapshots."""

    name = tables.Column()
    status = tables.Column(empty_values=(), order_by=("status", "busy"))
    size = tables.Column()
    volume = tables.Column(
        accessor="volume__name",
        verbose_name="Volume",
        linkify=("storage:volume", {"pk": tables.A("volume_id")}),
    )
    created = tables.Column(verbose_name="Age")
    actions = tables.Column(empty_values=(), orderable=False, verbose_name="")

    class Meta:
        model = Snapshot
        fields = ("name", "status", "size", "volume", "created")
        attrs = {"class": "table table-sm table-hover align-middle", "id": "snapshots-table"}
        row_attrs = _row_attrs("snapshot", "storage:snapshot-row")
        order_by = "-created"
        empty_text = "No snapshots yet."

    def render_actions(self, record):
        return render_to_string(
            "storage/_snapshot_actions.html",
            {"snapshot": record, "buttons": snapshot_buttons(self.ctx, record)},
            request=getattr(self, "request", None),
        )


class VolumeTypeTable(tables.Table):
    name = tables.Column()
    backend = tables.Column()
    extra_specs = tables.Column(orderable=False, verbose_name="Extra specs")
    is_default = tables.BooleanColumn(verbose_name="Default")
    volume_count = tables.Column(verbose_name="Volumes")
    actions = DeleteColumn("storage:admin-volume-type-delete", "volume type")

    class Meta:
        attrs = {"class": "table table-sm table-hover align-middle", "id": "volume-types-table"}
        row_attrs = {"data-name": lambda record: record.name}

    def render_extra_specs(self, value):
        if not value:
            return "—"
        return format_html(
            ", ".join("<code>{}={}</code>" for _ in value), *[x for kv in value.items() for x in kv]
        )


def capacity_bar(used: float, total: float, label: str):
    """A small bar: ``used`` of ``total`` GiB, with ``label`` under it."""
    percent = min(100, round(100 * used / total)) if total else 0
    return progress_bar(percent, label=label, colour=usage_colour(percent), css="capacity-bar")


class PoolTable(tables.Table):
    """Storage backends: each storage host's pools, with what placement claimed and what libvirt reports."""

    host = tables.Column(accessor="host__name", verbose_name="Host")
    name = tables.Column(verbose_name="Backend")
    type = tables.Column(verbose_name="Type")
    pool = tables.Column(verbose_name="libvirt pool")
    allocated = tables.Column(empty_values=(), orderable=False, verbose_name="Allocated")
    used = tables.Column(empty_values=(), orderable=False, verbose_name="Used on disk")
    volume_count = tables.Column(verbose_name="Volumes")
    reaches = tables.Column(orderable=False, verbose_name="Reached from")
    state = tables.Column(empty_values=(), orderable=False, verbose_name="State")

    class Meta:
        attrs = {"class": "table table-sm table-hover align-middle", "id": "backends-table"}
        row_attrs = {"data-name": lambda record: f"{record.name}@{record.host.name}"}

    def render_allocated(self, record):
        limit = record.capacity_gb * record.allocation_ratio
        ratio = f" (× {record.allocation_ratio:g})" if record.allocation_ratio != 1 else ""
        return capacity_bar(record.allocated_gb, limit, f"{record.allocated_gb} of {limit:g} GiB{ratio}")

    def render_used(self, record):
        used = record.capacity_bytes - record.available_bytes
        return capacity_bar(
            used, record.capacity_bytes, f"{used / GIB:.1f} of {record.capacity_bytes / GIB:.1f} GiB"
        )

    def render_reaches(self, value):
        return "all compute hosts" if "*" in (value or []) else ", ".join(value or []) or "—"

    def render_state(self, record):
        return render_to_string("storage/_pool_state.html", {"pool": record})
