"""Helpers every app's dashboard views share: call a service, turn refusals into form errors; and the
pieces every table shows the same way: the status colours, the status badge, the progress bar, the
delete form and the polling of rows that are still changing (templates in ``dashboard/``)."""

from collections.abc import Callable
from typing import Any

import django_tables2 as tables
from django import forms
from django.contrib import messages
from django.core.paginator import EmptyPage
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timesince import timesince
from django.utils.timezone import localtime

from . import policy
from .errors import NotFound, ZenithError

PER_PAGE = 25
# How every dashboard table shows a moment: readable, with its zone named (TIME_ZONE is UTC).
DATETIME_FORMAT = "Y-m-d H:i:s T"
MAX_PER_PAGE = 100
POLL_EVERY = "every 2s"  # how often a row (or card) that is still changing asks for itself again

# Every status, state and result the dashboard shows -> its Bootstrap colour (lower case keys: Nova's
# instance statuses, Glance's image statuses, operation states, host states, action results, image
# memberships). Settled and well: success; changing: info; stopped: secondary; paused or waiting on a
# decision: warning; failed: danger.
STATUS_COLOURS = {
    "active": "success",
    "up": "success",
    "succeeded": "success",
    "success": "success",
    "accepted": "success",
    "build": "info",
    "reboot": "info",
    "hard_reboot": "info",
    "saving": "info",
    "running": "info",
    "shutoff": "secondary",
    "queued": "secondary",
    "pending": "secondary",
    "paused": "warning",
    "suspended": "warning",
    "error": "danger",
    "killed": "danger",
    "failed": "danger",
    "down": "danger",
    "rejected": "danger",
    # volumes and snapshots (Cinder's statuses)
    "creating": "info",
    "available": "success",
    "reserved": "info",
    "attaching": "info",
    "in-use": "primary",
    "detaching": "info",
    "extending": "info",
    "deleting": "info",
    "error_deleting": "danger",
    "error_extending": "danger",
    "deleted": "dark",
    # networks, ports and floating IPs (Neutron's statuses; a port's or floating IP's DOWN is drawn
    # with ``status_badge(..., colour="secondary")``: not yet wired, not failed)
    "updating": "info",
    "associating": "info",
    "disassociating": "info",
}


def status_colour(value) -> str:
    """The Bootstrap colour of a status (``dark`` for one the table does not know)."""
    return STATUS_COLOURS.get(str(value).lower(), "dark")


def status_badge(value, css: str = "", colour: str = ""):
    """The badge of a status: its text on its colour (``colour`` where one word means two things,
    e.g. a host's DOWN and an unassociated floating IP's)."""
    return format_html(
        '<span class="badge text-bg-{}{}">{}</span>',
        colour or status_colour(value),
        f" {css}" if css else "",
        value,
    )


def usage_colour(percent: float) -> str:
    """The colour of a usage bar: green, amber from 70 %, red from 90 %."""
    return "danger" if percent >= 90 else "warning" if percent >= 70 else "success"


def progress_bar(
    percent, *, label: str = "", colour: str = "", animated: bool = False, css: str = "", name: str = ""
):
    """The one progress bar: ``percent`` filled (at least a sliver while ``animated``), ``label`` under it."""
    return render_to_string(
        "dashboard/_progress.html",
        {
            "percent": percent,
            "label": label,
            "colour": colour,
            "animated": animated,
            "css": css,
            "name": name,
        },
    )


def polling_attrs(url: str) -> dict[str, str]:
    """The htmx attributes that make an element fetch ``url`` and replace itself every POLL_EVERY."""
    return {"hx-get": url, "hx-trigger": POLL_EVERY, "hx-swap": "outerHTML", "data-polling": "true"}


def polling_row_attrs(prefix: str, url_name: str, *, status: Callable, transitional: Callable) -> dict:
    """A table's ``row_attrs``: the row's id (``prefix-pk``), name and ``status(record)``, and htmx
    polling of ``url_name`` (with the table's ``poll_query``) while, only while, ``transitional(record)``
    (an attribute whose value is None is left out)."""

    def polled(attr):
        return lambda record, table: (
            polling_attrs(reverse(url_name, args=[record.pk]) + table.poll_query)[attr]
            if transitional(record)
            else None
        )

    return {
        "id": lambda record: f"{prefix}-{record.pk}",
        "data-name": lambda record: record.name,
        "data-status": status,
        **{attr: polled(attr) for attr in ("hx-get", "hx-trigger", "hx-swap", "data-polling")},
    }


def age(moment):
    """How long ago, with the moment itself on hover (a table's created column)."""
    return format_html(
        '<span title="{}">{}</span>', date_format(localtime(moment), DATETIME_FORMAT), timesince(moment)
    )


class ResourceTable(tables.Table):
    """A table of async resources drawn for one caller (``ctx``: the buttons its role may use), whose
    changing rows poll (``poll_query``: added to a row's URL, which table it is a row of) and whose
    created column shows the age."""

    poll_query = ""

    def __init__(self, data, *, ctx, **kwargs):
        super().__init__(data, **kwargs)
        self.ctx = ctx

    def render_created(self, record):
        return age(record.created)


class DeleteColumn(tables.Column):
    """A table's delete (or revoke) button: one POST form with a confirmation naming the row."""

    def __init__(self, url_name: str, noun: str, *, name_attr: str = "name", label: str = "Delete", **kwargs):
        kwargs.setdefault("orderable", False)
        kwargs.setdefault("verbose_name", "")
        kwargs.setdefault("empty_values", ())
        super().__init__(**kwargs)
        self.url_name, self.noun, self.name_attr, self.label = url_name, noun, name_attr, label

    def render(self, record, table):
        return delete_form(
            reverse(self.url_name, args=[record.pk]),
            f"{self.label} {self.noun} {getattr(record, self.name_attr)}?",
            label=self.label,
            request=getattr(table, "request", None),
        )


def delete_form(url: str, confirm: str, *, label: str = "Delete", disabled: str = "", request=None, data=""):
    """The one delete form: a POST to ``url`` after the browser confirmed ``confirm``; ``disabled``
    says why the button cannot be used (e.g. "protected")."""
    return render_to_string(
        "dashboard/_delete_form.html",
        {"url": url, "confirm": confirm, "label": label, "disabled": disabled, "data": data},
        request=request,
    )


def call_service(
    request,
    form: forms.Form | None,
    fn: Callable[[], Any],
    success: str | None = None,
    field_of: Callable[[str], str | None] | None = None,
):
    """Run a service call; on a ZenithError put its message on the form (on the field
    ``field_of(message)`` names, if any) or in messages, and return None."""
    try:
        result = fn()
    except ZenithError as exc:
        if form is not None:
            field = field_of(exc.message) if field_of is not None else None
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            messages.error(request, exc.message)
        return None
    if success:
        messages.success(request, success)
    return result


def is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"


def not_found(request):
    return render(request, "portal/404.html", status=404)


def permitted_object(request, policy: str, find: Callable[[Any], Any]):
    """``(obj, None)`` when the caller's role allows ``policy`` and ``find(ctx)`` finds the object;
    else ``(None, response)``: the 403 page, or the 404 page when there is nothing
    (for the caller) to find."""
    if (denied := forbidden_unless(request, policy)) is not None:
        return None, denied
    obj = find(request.zenith)
    return (obj, None) if obj is not None else (None, not_found(request))


def row_page(request, *, policy: str, find: Callable[[], Any], gone: Callable[[], bool], table: Callable):
    """One table row, which htmx polls while its resource is changing: ``table([obj])`` rendered as
    rows; empty once ``gone()`` (the resource was deleted), which removes the row; 404 otherwise."""
    if (denied := forbidden_unless(request, policy)) is not None:
        return denied
    obj = find()
    if obj is None:
        return HttpResponse("") if gone() else not_found(request)
    rows = table([obj])
    rows.request = request
    return render(request, "dashboard/_rows.html", {"table": rows})


def was_deleted(ctx, model, pk, *, admin: bool = False, **deleted) -> bool:
    """Whether the row ``pk`` of ``model`` is marked deleted (``deleted``: its field and value) in the
    caller's project (any project for ``admin``): its polled table row then answers empty."""
    owned = model.objects.filter(pk=pk) if admin else model.objects.filter(pk=pk, project=ctx.project)
    return ctx.project is not None and owned.filter(**deleted).exists()


def forbidden_unless(request, action: str):
    """A 403 page when the caller's role does not allow ``action``; None when it does."""
    if policy.check(request.zenith, action):
        return None
    return render(request, "portal/forbidden.html", status=403)


def _whole(value: Any, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(value), low), high)
    except (TypeError, ValueError):
        return default


def paginated(request, table):
    """Apply the request's sorting and page to a django-tables2 table.

    ``per_page`` is kept within 1..MAX_PER_PAGE (0 or less crashed the paginator, and a huge one
    would list every row); a page past the end shows the last one."""
    tables.RequestConfig(request, paginate=False).configure(table)  # sorting only
    per_page = _whole(request.GET.get(table.prefixed_per_page_field), PER_PAGE, 1, MAX_PER_PAGE)
    page = _whole(request.GET.get(table.prefixed_page_field), 1, 1, 2**31)
    try:
        table.paginate(page=page, per_page=per_page)
    except EmptyPage:
        table.paginate(page=table.paginator.num_pages, per_page=per_page)
    return table


def table_page(request, *, policy: str, table: Callable, template: str, context=None, on_page=None):
    """A list page: 403 unless the role allows ``policy``; else ``table(ctx)`` sorted and paginated
    by the request, ``on_page(records)`` given the page's rows (to name what they link to in one
    query), rendered with ``template`` and ``context``."""
    if (denied := forbidden_unless(request, policy)) is not None:
        return denied
    rows = paginated(request, table(request.zenith))
    if on_page is not None:
        on_page([row.record for row in rows.page.object_list])
    return render(request, template, {"table": rows, **(context or {})})


def redirect_back(request, *, default: str, admin: str = "", detail: tuple[str, Any] | None = None):
    """Where an action returns, as its form's ``back`` says: the admins' list (cloud admins only),
    the resource's page (``detail``: its URL name and pk, while it has one), else ``default``."""
    back = request.POST.get("back") or request.GET.get("back")
    if back == "admin" and admin and request.zenith.is_admin:
        return redirect(admin)
    if back == "detail" and detail is not None:
        return redirect(detail[0], pk=detail[1])
    return redirect(default)


def admin_list_page(
    request, *, action, form_class, create, success, queryset, table_class, title, form_id, submit
):
    """An admin list with a create form beside it: the same shape for projects, users, assignments."""
    if (denied := forbidden_unless(request, action)) is not None:
        return denied
    form = form_class(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if call_service(request, form, lambda: create(data), success=success(data)) is not None:
            return redirect(request.path)
    return render(
        request,
        "identity/admin_list.html",
        {
            "table": paginated(request, table_class(queryset)),
            "form": form,
            "title": title,
            "form_id": form_id,
            "submit": submit,
        },
    )


def admin_delete(request, *, action, queryset, pk, delete, success, back):
    """Delete one row the admin can see through a service; 404 for anything else."""
    if (denied := forbidden_unless(request, action)) is not None:
        return denied
    try:
        obj = queryset.get_visible(request.zenith, pk=pk)
    except NotFound:
        return not_found(request)
    call_service(request, None, lambda: delete(obj), success(obj))
    return redirect(back)
