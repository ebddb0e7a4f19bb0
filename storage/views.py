"""Dashboard: volumes (the table, create from blank / image / snapshot / volume, the detail page with
attachments, the operation's progress and the action log, extend, snapshot, delete), snapshots, and
the admins' panels (all volumes with force-detach and reset-state, volume types, storage backends).

Views parse, call storage.services through ``call_service`` and render: a refusal becomes a form error
or a message, never a 500. Attach and detach are compute's (it knows the instances): their pages are
in ``compute.views_volumes``; the buttons here link to them.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from identity import audit, dashboard

from . import queries, services
from .forms import (
    ExtendForm,
    ResetStateForm,
    SnapshotForm,
    UploadToImageForm,
    VolumeCreateForm,
    VolumeTypeForm,
)
from .models import Snapshot, Volume, VolumeType
from .tables import (
    AdminVolumeTable,
    PoolTable,
    SnapshotTable,
    VolumeTable,
    VolumeTypeTable,
    volume_buttons,
    volume_status,
)

ACTION_LOG_ROWS = 50


def _back(request, volume: Volume | None = None):
    """Where an action returns: the admins' list, the volume's page, or the project's list."""
    detail = ("storage:volume", volume.pk) if volume is not None else None
    return dashboard.redirect_back(
        request, default="storage:volumes", admin="storage:admin-volumes", detail=detail
    )


# --- the project's volumes ------------------------------------------------------------------------


@login_required
@require_GET
def volumes(request):
    """The project's volumes: status (with the running operation's progress), size, type, attachment."""
    ctx = request.zenith
    return dashboard.table_page(
        request,
        policy="storage:volume:list",
        table=lambda ctx: VolumeTable(queries.project_volumes(ctx), ctx=ctx),
        template="storage/volumes.html",
        on_page=lambda records: queries.name_row_instances(ctx, records),
    )


@login_required
@require_GET
def volume_row(request, pk):
    """One table row (htmx polls it while the volume is transitional); empty once it is deleted,
    which removes the row."""
    ctx = request.zenith
    admin = request.GET.get("admin") == "1" and ctx.is_admin

    def find():
        scope = queries.all_volumes(ctx) if admin else queries.project_volumes(ctx)
        volume = scope.filter(pk=pk).first()
        if volume is not None:
            queries.name_row_instances(ctx, [volume])
        return volume

    return dashboard.row_page(
        request,
        policy="storage:volume:list",
        find=find,
        gone=lambda: dashboard.was_deleted(ctx, Volume, pk, admin=admin, status=Volume.DELETED),
        table=lambda rows: (AdminVolumeTable if admin else VolumeTable)(rows, ctx=ctx),
    )


def _create_form(request, data=None, initial=None) -> VolumeCreateForm:
    ctx = request.zenith
    return VolumeCreateForm(
        data,
        initial=initial,
        images=queries.image_choices(ctx),
        snapshots=queries.snapshot_choices(ctx),
        volumes=queries.volume_choices(ctx),
        types=queries.type_choices(),
    )


def _create_page(form) -> dict:
    return {"form": form, "title": "Create volume", "submit": "Create volume", "form_id": "volume-form"}


@login_required
def volume_create(request):
    """The create form (GET, prefilled from ``?source=...&snapshot=...``) and the create (POST): one
    volume per idempotency key; a refusal (quota, no backend with room, bad size) is a form error."""
    if (denied := dashboard.forbidden_unless(request, "storage:volume:create")) is not None:
        return denied
    ctx = request.zenith
    if request.method == "POST":
        form = _create_form(request, request.POST)
        if form.is_valid():
            result = dashboard.call_service(
                request, form, lambda: services.create_volume(ctx, **form.service_kwargs())
            )
            if result is not None:
                volume, created = result
                if created:
                    messages.success(request, f"Creating volume {volume.name}.")
                else:
                    messages.info(request, f"Volume {volume.name} was already created from this form.")
                return redirect("storage:volumes")
        return render(request, "storage/volume_create.html", _create_page(form), status=400)
    names = ("name", "description", "source", "image", "snapshot", "source_volume", "size", "volume_type")
    initial = {k: request.GET[k] for k in names if k in request.GET}
    form = _create_form(request, initial=initial)
    if dashboard.is_htmx(request) and request.GET.get("fragment") == "fields":
        return render(request, "storage/_volume_create_fields.html", {"form": form})  # the source changed
    return render(request, "storage/volume_create.html", _create_page(form))


def _detail_context(request, volume: Volume) -> dict:
    ctx = request.zenith
    action_log = []
    if ctx.can("storage:volume:actions"):
        action_log = list(audit.log_for("volume", volume.pk, ACTION_LOG_ROWS))
    attachments = queries.volume_attachments(volume)
    live = getattr(volume, "live_attachments", [])
    queries.name_instances(ctx, [*attachments, *live])
    return {
        "volume": volume,
        "status": volume_status(volume),
        "buttons": volume_buttons(ctx, volume, admin=ctx.is_admin),
        "attachments": attachments,
        "snapshots": queries.volume_snapshots(volume),
        "action_log": action_log,
        "back": "detail",
    }


@login_required
@require_GET
def volume_detail(request, pk):
    """Overview, attachments, snapshots and action log. While the volume is transitional its summary
    polls ``?fragment=summary``, which answers the summary and, out of band, the rest."""
    if (denied := dashboard.forbidden_unless(request, "storage:volume:show")) is not None:
        return denied
    volume = queries.find_volume(request.zenith, pk)
    fragment = dashboard.is_htmx(request) and request.GET.get("fragment") == "summary"
    if volume is None:
        if fragment:
            response = HttpResponse("")
            response["HX-Redirect"] = reverse("storage:volumes")  # deleted while the page was open
            return response
        return dashboard.not_found(request)
    context = _detail_context(request, volume)
    if fragment:
        return render(request, "storage/_volume_summary_fragment.html", {**context, "oob": True})
    return render(request, "storage/volume_detail.html", context)


def _volume_form_page(request, pk, *, policy, form_class, title, submit, act, initial=None):
    """A volume action that takes input (extend, snapshot, reset-state): the form (GET) and the action
    (POST); a refusal is shown on the form, with what was typed."""
    ctx = request.zenith
    volume, refused = dashboard.permitted_object(request, policy, lambda ctx: queries.find_volume(ctx, pk))
    if refused is not None:
        return refused
    form = form_class(request.POST or None, initial=initial(volume) if initial else None)
    if request.method == "POST" and form.is_valid():
        done = dashboard.call_service(request, form, lambda: act(ctx, volume, form.cleaned_data))
        if done is not None:
            return _back(request, volume)
    status = 400 if request.method == "POST" else 200
    back = request.POST.get("back") or request.GET.get("back") or "list"
    context = {"form": form, "volume": volume, "back": back, "submit": submit}
    context.update(title=title.format(name=volume.name), form_id=f"{form_class.__name__.lower()}")
    return render(request, "storage/_form_page.html", context, status=status)


@login_required
def volume_extend(request, pk):
    def act(ctx, volume, data):
        services.extend_volume(ctx, volume, data["new_size"])
        messages.success(request, f"Extending volume {volume.name} to {data['new_size']} GiB.")
        return True

    return _volume_form_page(
        request,
        pk,
        policy="storage:volume:extend",
        form_class=ExtendForm,
        title="Extend volume {name}",
        submit="Extend",
        act=act,
        initial=lambda v: {"new_size": v.size + 1},
    )


@login_required
def volume_snapshot(request, pk):
    def act(ctx, volume, data):
        snap = services.create_snapshot(
            ctx,
            volume=str(volume.pk),
            name=data["name"],
            description=data["description"] or None,
            idempotency_key=data["idempotency_key"] or None,
        )
        messages.success(request, f"Creating snapshot {snap.name} of volume {volume.name}.")
        return snap

    return _volume_form_page(
        request,
        pk,
        policy="storage:snapshot:create",
        form_class=SnapshotForm,
        title="Snapshot volume {name}",
        submit="Create snapshot",
        act=act,
        initial=lambda v: {"name": f"{v.name}-snap"},
    )


@login_required
def volume_upload(request, pk):
    """Upload to image: a new image (of this project) receives the volume's bytes from its host."""

    def act(ctx, volume, data):
        services.upload_to_image(ctx, volume, **UploadToImageForm.service_kwargs(data))
        messages.success(request, f"Uploading volume {volume.name} to image {data['image_name']}.")
        return True

    title = "Upload volume {name} to an image"
    return _volume_form_page(
        request,
        pk,
        policy="storage:volume:upload",
        form_class=UploadToImageForm,
        title=title,
        submit="Upload to image",
        act=act,
        initial=lambda v: {"image_name": v.name},
    )


@login_required
def volume_reset_state(request, pk):
    def act(ctx, volume, data):
        services.reset_state(ctx, volume, data["status"])
        messages.success(request, f"Volume {volume.name} is now {data['status']}.")
        return True

    return _volume_form_page(
        request,
        pk,
        policy="storage:volume:reset_state",
        form_class=ResetStateForm,
        title="Reset the state of volume {name}",
        submit="Reset state",
        act=act,
        initial=lambda v: {"status": v.status},
    )


@login_required
@require_GET
def volume_clone(request, pk):
    """Clone: the create form with this volume as the source."""
    volume = queries.find_volume(request.zenith, pk)
    if volume is None:
        return dashboard.not_found(request)
    return redirect(reverse("storage:volume-create") + f"?source=volume&source_volume={volume.pk}")


@login_required
@require_POST
def volume_delete(request, pk):
    ctx = request.zenith
    volume, refused = dashboard.permitted_object(
        request, "storage:volume:delete", lambda ctx: queries.find_volume(ctx, pk)
    )
    if refused is not None:
        return refused
    dashboard.call_service(
        request, None, lambda: services.delete_volume(ctx, volume), f"Deleting volume {volume.name}."
    )
    return _back(request, None)  # not its own page: it is going away


@login_required
@require_POST
def volume_force_detach(request, pk):
    ctx = request.zenith
    volume, refused = dashboard.permitted_object(
        request, "storage:volume:force_detach", lambda ctx: queries.find_volume(ctx, pk)
    )
    if refused is not None:
        return refused
    dashboard.call_service(
        request,
        None,
        lambda: services.force_detach(ctx, volume),
        f"Volume {volume.name} is detached (forced).",
    )
    return _back(request, volume)


# --- snapshots ----------------------------------------------------------------------------------


@login_required
@require_GET
def snapshots(request):
    return dashboard.table_page(
        request,
        policy="storage:snapshot:list",
        table=lambda ctx: SnapshotTable(queries.project_snapshots(ctx), ctx=ctx),
        template="storage/snapshots.html",
    )


@login_required
@require_GET
def snapshot_row(request, pk):
    ctx = request.zenith
    return dashboard.row_page(
        request,
        policy="storage:snapshot:list",
        find=lambda: queries.find_snapshot(ctx, pk),
        gone=lambda: dashboard.was_deleted(ctx, Snapshot, pk, status=Snapshot.DELETED),
        table=lambda rows: SnapshotTable(rows, ctx=ctx),
    )


@login_required
@require_POST
def snapshot_delete(request, pk):
    ctx = request.zenith
    snapshot, refused = dashboard.permitted_object(
        request, "storage:snapshot:delete", lambda ctx: queries.find_snapshot(ctx, pk)
    )
    if refused is not None:
        return refused
    dashboard.call_service(
        request, None, lambda: services.delete_snapshot(ctx, snapshot), f"Deleting snapshot {snapshot.name}."
    )
    return redirect("storage:snapshots")


@login_required
@require_GET
def snapshot_new_volume(request, pk):
    """Create a volume from this snapshot: the create form with it as the source."""
    snapshot = queries.find_snapshot(request.zenith, pk)
    if snapshot is None:
        return dashboard.not_found(request)
    return redirect(reverse("storage:volume-create") + f"?source=snapshot&snapshot={snapshot.pk}")


# --- admin panels --------------------------------------------------------------------------------


@login_required
@require_GET
def admin_volumes(request):
    """Every project's volumes, with their project and storage host (cloud admins)."""
    ctx = request.zenith
    return dashboard.table_page(
        request,
        policy="storage:volume:force_detach",
        table=lambda ctx: AdminVolumeTable(queries.all_volumes(ctx), ctx=ctx),
        template="storage/admin_volumes.html",
        on_page=lambda records: queries.name_row_instances(ctx, records),
    )


@login_required
def admin_volume_types(request):
    """Every volume type (with how many volumes use it), with a form to define a new one."""
    ctx = request.zenith
    return dashboard.admin_list_page(
        request,
        action="storage:volume_type:create",
        form_class=VolumeTypeForm,
        create=lambda data: services.create_volume_type(ctx, **data),
        success=lambda data: f"Volume type {data['name']} created.",
        queryset=queries.volume_types_with_use(),
        table_class=VolumeTypeTable,
        title="Volume types",
        form_id="volume-type-form",
        submit="Create volume type",
    )


@login_required
@require_POST
def admin_volume_type_delete(request, pk):
    return dashboard.admin_delete(
        request,
        action="storage:volume_type:delete",
        queryset=VolumeType.objects,
        pk=pk,
        delete=lambda vtype: services.delete_volume_type(request.zenith, vtype),
        success=lambda vtype: f"Volume type {vtype.name} deleted.",
        back="storage:admin-volume-types",
    )


@login_required
@require_GET
def admin_backends(request):
    """Each storage host's backends (libvirt pools): capacity claimed and used, who reaches them."""
    return dashboard.table_page(
        request,
        policy="storage:pool:list",
        table=lambda ctx: PoolTable(queries.pools_with_use(ctx)),
        template="storage/admin_backends.html",
    )
