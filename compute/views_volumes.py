"""Dashboard: volumes and instances, the part only compute can draw (it knows the instances): attach
a volume to an instance chosen from the project's instances, detach it, and the instance detail's
Volumes section. Each calls ``compute.services`` (which hands over to storage's services); a refusal
is a form error or a message, never a 500."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from identity.dashboard import call_service, permitted_object, redirect_back
from identity.scoping import is_uuid
from storage import queries as storage_queries
from storage.models import Volume

from . import services
from .models import Image, Instance
from .services.volumes import ATTACHABLE


def attachable_instances(ctx):
    """The project's instances a volume can be plugged into now (stable, on a host)."""
    return (
        Instance.objects.visible_to(ctx)
        .filter(vm_state__in=ATTACHABLE, task_state="", host__isnull=False)
        .order_by("name")
    )


def attachable_volumes(ctx):
    return Volume.objects.visible_to(ctx).filter(status=Volume.AVAILABLE, busy="").order_by("name")


def bootable_volumes(ctx):
    """The project's volumes an instance can boot from now (bootable, available, no action running)."""
    return attachable_volumes(ctx).filter(bootable=True).only("pk", "name", "size", "source")


class AttachForm(forms.Form):
    """Attach a volume to one of the project's instances."""

    instance = forms.ChoiceField(choices=(), error_messages={"required": "Choose an instance."})
    delete_on_termination = forms.BooleanField(required=False, label="Delete the volume with the instance")

    def __init__(self, *args, instances=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["instance"].choices = [("", "—")] + [
            (str(i.pk), f"{i.name} ({i.status})") for i in instances
        ]


def _back(request, volume, instance=None):
    if instance is not None and (request.POST.get("back") or request.GET.get("back")) == "instance":
        return redirect("compute:instance", pk=instance.pk)
    return redirect_back(
        request,
        default="storage:volumes",
        admin="storage:admin-volumes",
        detail=("storage:volume", volume.pk),
    )


@login_required
def volume_attach(request, pk):
    """Attach a volume (GET: the form with the project's instances; POST: the attach)."""
    ctx = request.zenith
    volume, refused = permitted_object(
        request, "storage:volume:attach", lambda ctx: Volume.objects.visible_to(ctx).filter(pk=pk).first()
    )
    if refused is not None:
        return refused
    instances = list(attachable_instances(ctx))
    form = AttachForm(request.POST or None, instances=instances)
    if request.method == "POST" and form.is_valid():
        instance = next(i for i in instances if str(i.pk) == form.cleaned_data["instance"])
        attachment = call_service(
            request,
            form,
            lambda: services.attach_volume_to_instance(
                ctx,
                instance,
                str(volume.pk),
                delete_on_termination=form.cleaned_data["delete_on_termination"],
            ),
        )
        if attachment is not None:
            messages.success(
                request, f"Attaching volume {volume.name} to {instance.name} as {attachment.device}."
            )
            return _back(request, volume, instance)
    status = 400 if request.method == "POST" else 200
    context = {
        "form": form,
        "volume": volume,
        "back": request.POST.get("back") or request.GET.get("back") or "list",
        "title": f"Attach volume {volume.name}",
        "submit": "Attach",
        "form_id": "attach-form",
        "no_instances": not instances,
    }
    return render(request, "compute/volume_attach.html", context, status=status)


@login_required
@require_POST
def volume_detach(request, pk):
    """Detach a volume from the instance it is attached to."""
    ctx = request.zenith
    volume, refused = permitted_object(
        request,
        "storage:volume:detach",
        lambda ctx: storage_queries.project_volumes(ctx).filter(pk=pk).first(),
    )
    if refused is not None:
        return refused
    live = volume.live_attachments[0] if volume.live_attachments else None
    instance = Instance.objects.visible_to(ctx).filter(pk=live.instance_id).first() if live else None
    if instance is None:
        messages.error(request, f"Volume {volume.name} is attached to no instance of this project.")
        return _back(request, volume)
    call_service(
        request,
        None,
        lambda: services.detach_volume_from_instance(ctx, instance, str(volume.pk)),
        f"Detaching volume {volume.name} from {instance.name}.",
    )
    return _back(request, volume, instance)


# --- the instance detail's Volumes section ----------------------------------------------------------


@login_required
@require_GET
def instance_volumes(request, pk):
    """The instance's attached volumes with detach, and a form to attach one of the project's
    available volumes (a fragment the instance detail loads into its Volumes tab)."""
    ctx = request.zenith
    instance, refused = permitted_object(
        request, "compute:instance:show", lambda ctx: Instance.objects.visible_to(ctx).filter(pk=pk).first()
    )
    if refused is not None:
        return refused
    attachments = services.instance_volumes([instance.pk]).get(str(instance.pk), [])
    context = {
        "instance": instance,
        "attachments": attachments,
        "volumes": list(attachable_volumes(ctx)) if ctx.can("storage:volume:attach") else [],
        "can_attach": instance.vm_state in ATTACHABLE and not instance.task_state,
    }
    return render(request, "compute/_instance_volumes.html", context)


@login_required
@require_POST
def instance_volume_attach(request, pk):
    """Attach the volume chosen on the instance detail to this instance."""
    ctx = request.zenith
    instance, refused = permitted_object(
        request, "storage:volume:attach", lambda ctx: Instance.objects.visible_to(ctx).filter(pk=pk).first()
    )
    if refused is not None:
        return refused
    chosen = request.POST.get("volume", "")
    volume = attachable_volumes(ctx).filter(pk=chosen).first() if is_uuid(chosen) else None
    if volume is None:
        messages.error(request, "Choose an available volume of this project to attach.")
        return redirect("compute:instance", pk=instance.pk)
    attachment = call_service(
        request, None, lambda: services.attach_volume_to_instance(ctx, instance, str(volume.pk))
    )
    if attachment is not None:
        messages.success(request, f"Attaching volume {volume.name} as {attachment.device}.")
    return redirect("compute:instance", pk=instance.pk)


# --- what storage's create form lists -------------------------------------------------------------


def image_choices(ctx) -> list[tuple[str, str]]:
    """The images a volume may start from (storage's create form; storage never imports compute)."""
    rows = Image.objects.visible_to(ctx).filter(status=Image.ACTIVE, disk_format__in=("qcow2", "raw"))
    return [(str(i.pk), i.name) for i in rows.order_by("name").only("pk", "name")]


def instance_names(ctx, ids) -> dict[str, str]:
    """Names of the instances among ``ids`` the caller may see (any project's for cloud admins)."""
    scope = Instance.objects.across_projects(ctx) if ctx.is_admin else Instance.objects.visible_to(ctx)
    return {str(pk): name for pk, name in scope.filter(pk__in=ids).values_list("pk", "name")}


def register_storage_dashboard() -> None:
    storage_queries.register_image_choices(image_choices)
    storage_queries.register_instance_names(instance_names)
