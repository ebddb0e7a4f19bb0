"""Dashboard: instances (the table, the launch wizard, the detail page with console log and action
log, every action as a POST) and the admins' panels over them (all instances, drift, scheduler).

Views parse, call compute.services through ``call_service`` and render: a refusal becomes a form error
or a message, never a 500. No view talks to a hypervisor except the console log, which asks the host
through the service (with its timeout) only when the user opens it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from identity import audit, quotas
from identity.dashboard import (
    call_service,
    forbidden_unless,
    is_htmx,
    not_found,
    permitted_object,
    redirect_back,
    row_page,
    table_page,
    was_deleted,
)
from identity.models import KeyPair

from . import services
from .forms_instances import (
    BOOT_SOURCES,
    STEPS,
    ExplainForm,
    InstanceFilterForm,
    LaunchForm,
    RebuildForm,
    SnapshotForm,
)
from .models import Flavor, Image, Instance
from .tables_instances import ACTIONS, STATUS_FILTER, AdminInstanceTable, InstanceTable
from .tables_instances import instance_buttons as buttons_for
from .views_volumes import bootable_volumes

ROW_RELATED = ("flavor", "image", "operation", "host")
ACTION_LOG_ROWS = 50


def _find_instance(request, pk) -> Instance | None:
    """The caller's project's instance; for cloud admins, any project's (the admin panels link here)."""
    ctx = request.zenith
    instance = Instance.objects.visible_to(ctx).select_related(*ROW_RELATED).filter(pk=pk).first()
    if instance is None and ctx.is_admin:
        instance = (
            Instance.objects.across_projects(ctx)
            .select_related(*ROW_RELATED, "project")
            .filter(pk=pk)
            .first()
        )
    return instance


def _filtered(queryset, filters: InstanceFilterForm):
    """Apply the filters whose values are valid; the form carries the others' errors to the page."""
    filters.is_valid()
    if q := filters.cleaned_data.get("q", "").strip():
        queryset = queryset.filter(name__icontains=q)
    if status := filters.cleaned_data.get("status"):
        queryset = queryset.filter(vm_state=STATUS_FILTER[status])
    return queryset


# --- the project's instances -----------------------------------------------------------------------


@login_required
@require_GET
def instances(request):
    """The project's instances: status, task (with the running operation's progress), flavor, age."""
    filters = InstanceFilterForm(request.GET)
    return table_page(
        request,
        policy="compute:instance:list",
        table=lambda ctx: InstanceTable(
            _filtered(Instance.objects.visible_to(ctx).for_rows(), filters), ctx=ctx
        ),
        template="compute/instances.html",
        context={"filters": filters},
    )


@login_required
@require_GET
def instance_row(request, pk):
    """One table row (htmx polls it while the instance is transitional); empty once it is deleted,
    which removes the row."""
    ctx = request.zenith
    admin = request.GET.get("admin") == "1" and ctx.is_admin

    def find():
        scope = Instance.objects.across_projects(ctx) if admin else Instance.objects.visible_to(ctx)
        return scope.select_related(*ROW_RELATED, "project").filter(pk=pk).first()

    return row_page(
        request,
        policy="compute:instance:list",
        find=find,
        gone=lambda: was_deleted(ctx, Instance, pk, admin=admin, vm_state=Instance.DELETED),
        table=lambda rows: (AdminInstanceTable if admin else InstanceTable)(rows, ctx=ctx),
    )


# --- the launch wizard ------------------------------------------------------------------------------


@dataclass
class FlavorChoice:
    """A flavor as the wizard shows it: sizes, what quota is left after launching it, hosts that fit."""

    flavor: Flavor
    hosts: int
    after: list[tuple[str, int | None]] = field(default_factory=list)  # (unit, left); None: unlimited
    over_quota: list[str] = field(default_factory=list)


@dataclass
class ImageChoice:
    image: Image
    too_small: list[str] = field(default_factory=list)  # names of flavors it cannot boot on


QUOTA_NEEDS = (("instances", "instances", None), ("cores", "vCPUs", "vcpus"), ("ram", "MB of RAM", "ram_mb"))


def _too_small(image: Image, flavor: Flavor) -> bool:
    return (flavor.disk_gb > 0 and image.min_disk > flavor.disk_gb) or image.min_ram > flavor.ram_mb


def _launch_context(request, form: LaunchForm) -> dict:
    ctx = request.zenith
    flavors = list(Flavor.objects.visible_to(ctx).filter(disabled=False))
    images = list(
        Image.objects.visible_to(ctx).filter(status=Image.ACTIVE).exclude(disk_format__in=["aki", "ari"])
    )
    keypairs = list(KeyPair.objects.visible_to(ctx).order_by("name"))
    volumes = list(bootable_volumes(ctx))
    quota = {row["resource"]: row for row in quotas.summary(ctx.project, ctx.user)} if ctx.project else {}
    fitting = services.hosts_fitting(flavors)
    flavor_choices = []
    for flavor in flavors:
        choice = FlavorChoice(flavor=flavor, hosts=fitting.get(flavor.pk, 0))
        for resource, unit, size in QUOTA_NEEDS:
            need = getattr(flavor, size) if size else 1
            remaining = quota.get(resource, {}).get("remaining")
            choice.after.append((unit, None if remaining is None else remaining - need))
            if remaining is not None and remaining < need:
                choice.over_quota.append(f"needs {need} {unit}, {remaining} left in the quota")
        flavor_choices.append(choice)
    image_choices = [
        ImageChoice(image=image, too_small=[f.name for f in flavors if _too_small(image, f)])
        for image in images
    ]
    data = form.data if form.is_bound else {}
    return {
        "form": form,
        "steps": STEPS,
        "active_step": (form.first_step_with_errors() if form.is_bound else None) or STEPS[0][0],
        "flavors": flavor_choices,
        "images": image_choices,
        "keypairs": keypairs,
        "volumes": volumes,
        "boot_sources": BOOT_SOURCES,
        "quota": [quota[r] for r in ("instances", "cores", "ram") if r in quota],
        "chosen": {
            "image": data.get("image", images[0].pk if len(images) == 1 else ""),
            "flavor": data.get("flavor", ""),
            "key_name": data.get("key_name", keypairs[0].name if len(keypairs) == 1 else ""),
            "source": form.chosen_source(),
            "boot_volume": data.get("boot_volume", ""),
        },
    }


@login_required
def launch(request):
    """The launch wizard (GET) and the launch itself (POST): one instance per idempotency key."""
    if (denied := forbidden_unless(request, "compute:instance:create")) is not None:
        return denied
    ctx = request.zenith
    form = LaunchForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        result = call_service(
            request,
            form,
            lambda: services.create_instance(
                ctx,
                name=data["name"],
                flavor=data["flavor"],
                key_name=data["key_name"] or None,
                user_data=data["user_data"] or None,
                metadata=data["metadata"],
                idempotency_key=data["idempotency_key"] or None,
                **form.boot_kwargs(),
            ),
        )
        if result is not None:
            instance, created = result
            if created:
                messages.success(request, f"Launching instance {instance.name}.")
            else:
                messages.info(request, f"Instance {instance.name} was already launched from this form.")
            return redirect("compute:instances")
    status = 400 if request.method == "POST" else 200
    return render(request, "compute/launch.html", _launch_context(request, form), status=status)


# --- one instance -------------------------------------------------------------------------------------


def _detail_context(request, instance: Instance) -> dict:
    ctx = request.zenith
    action_log = []
    if ctx.can("compute:instance:actions"):
        action_log = list(audit.log_for("instance", instance.pk, ACTION_LOG_ROWS))
    return {
        "instance": instance,
        "buttons": buttons_for(ctx, instance),
        "action_log": action_log,
        "back": "detail",
    }


@login_required
@require_GET
def instance_detail(request, pk):
    """Overview, console log (fetched from the host when the tab is opened) and action log.

    While the instance is transitional its summary polls ``?fragment=summary``, which answers the
    summary and, out of band, the overview and the action log."""
    if (denied := forbidden_unless(request, "compute:instance:show")) is not None:
        return denied
    instance = _find_instance(request, pk)
    if instance is None:
        if is_htmx(request) and request.GET.get("fragment") == "summary":
            response = HttpResponse("")
            response["HX-Redirect"] = reverse("compute:instances")  # deleted while the page was open
            return response
        return not_found(request)
    context = _detail_context(request, instance)
    if is_htmx(request) and request.GET.get("fragment") == "summary":
        return render(request, "compute/_instance_summary_fragment.html", {**context, "oob": True})
    return render(request, "compute/instance_detail.html", context)


class ConsoleForm(forms.Form):
    lines = forms.IntegerField(min_value=1, max_value=services.MAX_CONSOLE_LINES, initial=100, required=False)


@login_required
@require_GET
def instance_console(request, pk):
    """The guest's serial console log, asked of its host; an htmx request gets the panel only."""
    instance, refused = permitted_object(
        request, "compute:instance:console", lambda _ctx: _find_instance(request, pk)
    )
    if refused is not None:
        return refused
    form = ConsoleForm(request.GET)
    log = None
    if form.is_valid():
        lines = form.cleaned_data["lines"] or 100
        log = call_service(request, form, lambda: services.console_log(request.zenith, instance, lines))
    context = {"instance": instance, "form": form, "log": log}
    template = "compute/_instance_console.html" if is_htmx(request) else "compute/instance_console.html"
    return render(request, template, context)


@login_required
@require_POST
def instance_action(request, pk, action):
    """Start an action (or lock/unlock); the page it came from shows the instance polling."""
    button = ACTIONS.get(action)
    if button is None:
        return not_found(request)
    ctx = request.zenith
    instance, refused = permitted_object(request, button.policy, lambda _ctx: _find_instance(request, pk))
    if refused is not None:
        return refused
    if action in FORM_ACTIONS:
        return _form_action(request, instance, FORM_ACTIONS[action])
    if action == "lock":
        change = lambda: services.lock_instance(ctx, instance)  # noqa: E731
    elif action == "unlock":
        change = lambda: services.unlock_instance(ctx, instance)  # noqa: E731
    else:
        change = lambda: services.instance_action(ctx, instance, action)  # noqa: E731
    call_service(request, None, change, button.message.format(name=instance.name))
    detail = ("compute:instance", instance.pk) if action != "delete" else None
    return redirect_back(request, default="compute:instances", admin="compute:admin-instances", detail=detail)


@dataclass(frozen=True)
class FormAction:
    """An action that needs more than a click (the generated button posts without its field: the
    small form for it is shown; the form's post starts it)."""

    field: str
    title: str
    submit: str
    intro: str
    form: Callable[[Any, Instance, Any], forms.Form]  # (POST data or None, instance, ctx) -> its form
    start: Callable[[Any, Instance, dict], Any]  # (ctx, instance, cleaned data) -> started
    success: Callable[[Any, Instance], str]


def _rebuild_images(ctx):
    return Image.objects.visible_to(ctx).filter(status=Image.ACTIVE).exclude(disk_format__in=["aki", "ari"])


FORM_ACTIONS = {
    "snapshot": FormAction(
        field="name",
        title="Create snapshot",
        submit="Create snapshot",
        intro="Its host copies the instance's root disk into a new image of this project (a running guest "
        "is paused for the copy). The image is listed in Images: queued, then saving, then active; a new "
        "instance can boot from it.",
        form=lambda data, instance, _ctx: SnapshotForm(data, initial={"name": f"{instance.name}-snapshot"}),
        start=lambda ctx, instance, data: services.snapshot_instance(
            ctx, instance, name=data["name"], idempotency_key=data["idempotency_key"] or None
        ),
        success=lambda started, instance: (
            f"Creating snapshot {started[1].name} of instance {instance.name}: it is listed in Images."
        ),
    ),
    "rebuild": FormAction(
        field="image",
        title="Rebuild",
        submit="Rebuild",
        intro="The instance keeps its id, flavor and host; its root disk is made anew from the image "
        "chosen here and it is started: what is on its disk now is lost.",
        form=lambda data, instance, ctx: RebuildForm(
            data, images=_rebuild_images(ctx), initial={"image": str(instance.image_id or "")}
        ),
        start=lambda ctx, instance, data: services.rebuild_instance(
            ctx, instance, image=data["image"], idempotency_key=data["idempotency_key"] or None
        ),
        success=lambda started, instance: f"Rebuilding instance {instance.name}.",
    ),
}


def _form_action(request, instance: Instance, action: FormAction):
    """The generated button (no ``action.field`` posted) gets the small form; its post starts it."""
    ctx = request.zenith
    posted = action.field in request.POST
    form = action.form(request.POST if posted else None, instance, ctx)
    if posted and form.is_valid():
        started = call_service(request, form, lambda: action.start(ctx, instance, form.cleaned_data))
        if started is not None:
            messages.success(request, action.success(started, instance))
            return redirect_back(
                request,
                default="compute:instances",
                admin="compute:admin-instances",
                detail=("compute:instance", instance.pk),
            )
    context = {
        "form": form,
        "instance": instance,
        "action": action,
        "action_name": next(name for name, a in FORM_ACTIONS.items() if a is action),
        "back": request.POST.get("back") or "list",
    }
    return render(request, "compute/instance_action_form.html", context, status=400 if posted else 200)


# --- admin panels ------------------------------------------------------------------------------------


@login_required
@require_GET
def admin_instances(request):
    """Every project's instances (cloud admins), with their project and host."""
    filters = InstanceFilterForm(request.GET)

    def table(ctx):
        rows = Instance.objects.across_projects(ctx).for_rows().select_related("project")
        return AdminInstanceTable(_filtered(rows, filters), ctx=ctx)

    return table_page(
        request,
        policy="compute:instance:list_all",
        table=table,
        template="compute/admin_instances.html",
        context={"filters": filters},
    )


@login_required
@require_GET
def admin_drift(request):
    """Domains on hosts that no instance row knows, and rows whose domain is gone."""
    if (denied := forbidden_unless(request, "compute:instance:drift")) is not None:
        return denied
    report = call_service(request, None, lambda: services.drift(request.zenith))
    return render(request, "compute/admin_drift.html", {"report": report})


@login_required
@require_GET
def admin_explain(request):
    """The scheduler's dry run for a flavor: every host, pass or the reasons it fails, best first."""
    if (denied := forbidden_unless(request, "compute:host:explain")) is not None:
        return denied
    ctx = request.zenith
    form = ExplainForm(request.GET or None, flavors=Flavor.objects.visible_to(ctx))
    result = None
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        result = call_service(
            request,
            form,
            lambda: services.explain_scheduling(
                ctx,
                flavor=data["flavor"],
                availability_zone=data["availability_zone"],
                hypervisor_type=data["hypervisor_type"],
            ),
        )
    return render(request, "compute/admin_explain.html", {"form": form, "result": result})
