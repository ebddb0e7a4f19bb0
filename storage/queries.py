"""Read-only querysets the storage dashboard's pages use (the services own every write), and the one
thing the pages need of images, which are compute's: the list a volume may start from, registered by
compute at start-up (storage never imports compute)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Count, Prefetch, Q

from .models import Attachment, Snapshot, StoragePool, Volume, VolumeType

_image_choices: Callable[[Any], list[tuple[str, str]]] | None = None
_instance_names: Callable[[Any, list], dict[str, str]] | None = None


def register_image_choices(fn: Callable[[Any], list[tuple[str, str]]]) -> None:
    """``fn(ctx)``: ``(id, label)`` of the images the caller may create a volume from."""
    global _image_choices
    _image_choices = fn


def image_choices(ctx) -> list[tuple[str, str]]:
    return _image_choices(ctx) if _image_choices is not None else []


def register_instance_names(fn: Callable[[Any, list], dict[str, str]]) -> None:
    """``fn(ctx, ids)``: ``{str(id): name}`` of the instances the caller may see among ``ids``."""
    global _instance_names
    _instance_names = fn


def name_instances(ctx, attachments) -> None:
    """Set ``instance_name`` on each attachment (one query for all of them; none when there are
    none): the instance's name, or "" for one the caller cannot see."""
    attachments = list(attachments)
    ids = sorted({str(a.instance_id) for a in attachments})
    names = _instance_names(ctx, ids) if ids and _instance_names is not None else {}
    for attachment in attachments:
        attachment.instance_name = names.get(str(attachment.instance_id), "")


def name_row_instances(ctx, volumes) -> None:
    """``name_instances`` for the live attachments of a page of volume rows."""
    name_instances(ctx, [a for v in volumes for a in getattr(v, "live_attachments", [])])


def live_attachments() -> Prefetch:
    """A volume's live attachment (at most one), as ``volume.live_attachments``."""
    return Prefetch(
        "attachments",
        queryset=Attachment.objects.live().select_related("host"),
        to_attr="live_attachments",
    )


def volume_rows(queryset):
    """What a volume table row shows: type, operation, pool and host, live attachment (two queries)."""
    return queryset.for_rows().prefetch_related(live_attachments())


def project_volumes(ctx):
    return volume_rows(Volume.objects.visible_to(ctx))


def all_volumes(ctx):
    return volume_rows(Volume.objects.across_projects(ctx).select_related("project"))


def find_volume(ctx, pk) -> Volume | None:
    """The caller's project's volume; for cloud admins, any project's (the admin list links here)."""
    volume = project_volumes(ctx).select_related("project").filter(pk=pk).first()
    if volume is None and ctx.is_admin:
        volume = all_volumes(ctx).filter(pk=pk).first()
    return volume


def volume_attachments(volume: Volume) -> list[Attachment]:
    """Every attachment the volume had, the live one first."""
    return list(
        Attachment.objects.filter(volume=volume).select_related("host").order_by("-detached_at", "-created")
    )


def volume_snapshots(volume: Volume) -> list[Snapshot]:
    return list(
        Snapshot.objects.filter(volume=volume).exclude(status=Snapshot.DELETED).select_related("operation")
    )


def project_snapshots(ctx):
    return Snapshot.objects.visible_to(ctx).select_related("volume", "operation")


def find_snapshot(ctx, pk) -> Snapshot | None:
    return project_snapshots(ctx).filter(pk=pk).first()


def volume_types_with_use():
    """Every volume type with how many live volumes use it."""
    return VolumeType.objects.annotate(
        volume_count=Count("volumes", filter=~Q(volumes__status=Volume.DELETED))
    ).order_by(*VolumeType._meta.ordering)


def pools_with_use(ctx):
    """Every storage host's pools, with their host and how many live volumes each holds."""
    return (
        StoragePool.objects.visible_to(ctx)
        .select_related("host")
        .annotate(volume_count=Count("volumes", filter=~Q(volumes__status=Volume.DELETED)))
        .order_by("host__name", "name")
    )


def volume_choices(ctx, exclude=None) -> list[tuple[str, str]]:
    """The project's volumes a new volume may clone (available or in-use, no action running)."""
    rows = Volume.objects.visible_to(ctx).filter(status__in=(Volume.AVAILABLE, Volume.IN_USE), busy="")
    if exclude is not None:
        rows = rows.exclude(pk=exclude)
    return [(str(v.pk), f"{v.name} ({v.size} GiB)") for v in rows.only("pk", "name", "size")]


def snapshot_choices(ctx) -> list[tuple[str, str]]:
    rows = Snapshot.objects.visible_to(ctx).filter(status=Snapshot.AVAILABLE, busy="")
    return [(str(s.pk), f"{s.name} ({s.size} GiB)") for s in rows.only("pk", "name", "size")]


def type_choices() -> list[tuple[str, str]]:
    return [
        (str(t.pk), f"{t.name} (default)" if t.is_default else t.name)
        for t in VolumeType.objects.order_by("-is_default", "name")
    ]
