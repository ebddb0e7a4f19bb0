"""Helpers every app's dashboard views share: call a service, turn refusals into form errors."""

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.shortcuts import render

from . import policy
from .errors import ZenithError


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
