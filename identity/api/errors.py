"""One JSON error shape for the whole API: ``{"error": {"code", "message", "details"?}}``."""

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..errors import ZenithError

log = logging.getLogger(__name__)


def _flatten(detail, prefix=""):
    """Turn DRF's nested validation detail into 'field: message' strings."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            out += _flatten(value, f"{prefix}{name}." if name else prefix)
        return out
    if isinstance(detail, list):
        return [msg for item in detail for msg in _flatten(item, prefix)]
    return [f"{prefix.rstrip('.')}: {detail}" if prefix else str(detail)]


def error_response(status_code: int, code: str, message: str, details=None, headers=None) -> Response:
    body = {"error": {"code": code, "message": message}}
    if details:
        body["error"]["details"] = details
    return Response(body, status=status_code, headers=headers)


def exception_handler(exc, context):
    """Map domain and DRF errors to the JSON error shape; everything else stays a 500 (a bug)."""
    if isinstance(exc, ZenithError):
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        return error_response(exc.status, exc.code, exc.message, exc.details or None, headers=headers)
    if isinstance(exc, Http404):
        return error_response(status.HTTP_404_NOT_FOUND, "not_found", "Not found.")
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        messages = _flatten(exc.detail)
        return error_response(
            response.status_code, "invalid", " ".join(messages) or "Invalid input.", exc.detail
        )
    code = getattr(exc, "default_code", "error")
    if isinstance(exc.detail, (dict, list)):
        message = " ".join(_flatten(exc.detail))
    else:
        message = str(exc.detail)
        code = getattr(exc.detail, "code", code) or code
    headers = {k: v for k, v in response.items() if k in ("WWW-Authenticate", "Retry-After", "Allow")}
    return error_response(response.status_code, code, message, headers=headers)
