"""Helpers every app's dashboard views share: call a service, turn refusals into form errors."""

from collections.abc import Callable
from typing import Any

import django_tables2 as tables
from django import forms
from django.contrib import messages
from django.core.paginator import EmptyPage
from django.shortcuts import redirect, render

from . import policy
from .errors import NotFound, ZenithError

PER_PAGE = 25
# How every dashboard table shows a moment: readable, with its zone named (TIME_ZONE is UTC).
DATETIME_FORMAT = "Y-m-d H:i:s T"
MAX_PER_PAGE = 100


def call_service(request, form: forms.Form | None, fn: Callable[[], Any], success: str | None = None):
    """Run a service call; on a ZenithError put its message on the form (or in messages) and return None."""
    try:
        result = fn()
    except ZenithError as exc:
        if form is not None:
            form.add_error(None, exc.message)
        else:
            messages.error(request, exc.message)
        return None
    if success:
        messages.success(request, success)
    return result


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
        return render(request, "portal/404.html", status=404)
    call_service(request, None, lambda: delete(obj), success(obj))
    return redirect(back)
