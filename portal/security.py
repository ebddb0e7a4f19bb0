"""Security middleware: a limit on request header size, and the Content-Security-Policy header."""

from __future__ import annotations

from django.conf import settings

from .errors import api_error


class HeaderLimitMiddleware:
    """Refuse requests whose headers together exceed ``ZENITH_MAX_HEADER_BYTES`` (431), in the API's JSON
    error shape under /api/. (gunicorn refuses a single header line over 8190 bytes itself, with its own
    plain page, before Django sees the request.)"""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.ZENITH_MAX_HEADER_BYTES
        if limit:
            size = sum(len(k) + len(str(v)) for k, v in request.META.items() if k.startswith("HTTP_"))
            if size > limit:
                message = f"The request headers are larger than the {limit} bytes allowed."
                if request.path.startswith("/api/"):
                    return api_error("headers_too_large", message, 431)
                from django.http import HttpResponse

                return HttpResponse(message, status=431, content_type="text/plain")
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """Send ``ZENITH_CSP`` as Content-Security-Policy (or only report it, ``ZENITH_CSP_REPORT_ONLY``)
    on every response that has none; an empty policy sends nothing."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.ZENITH_CSP
        header = (
            "Content-Security-Policy-Report-Only"
            if settings.ZENITH_CSP_REPORT_ONLY
            else "Content-Security-Policy"
        )
        if policy and header not in response:
            response[header] = policy
        return response
