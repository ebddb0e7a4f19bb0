"""Error pages: JSON under /api/, HTML elsewhere."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.shortcuts import render
from django.views.defaults import bad_request as django_bad_request


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"code": "not_found", "message": "Not found."}}, status=404)
    return render(request, "portal/404.html", status=404)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"code": "server_error", "message": "Internal error."}}, status=500)
    return render(request, "portal/500.html", status=500)


def api_error(code: str, message: str, status: int) -> JsonResponse:
    """The API's error shape, for errors raised before a view runs (Django's handlers, middleware)."""
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def bad_request(request, exception=None):
    """Django's 400s (a body over DATA_UPLOAD_MAX_MEMORY_SIZE, a malformed request): the JSON error shape
    under /api/ (413 for a body too large), Django's page elsewhere."""
    if not request.path.startswith("/api/"):
        return django_bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return api_error("too_large", f"The request body is larger than the {limit} bytes allowed.", 413)
    return api_error("bad_request", "The request is malformed.", 400)
