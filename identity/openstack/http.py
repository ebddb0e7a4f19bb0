"""What every OpenStack-compatible view shares: token authentication (``X-Auth-Token``, the same
tokens as the native API's), JSON bodies, each service's own error shape, ``x-openstack-request-id``
and the microversion echo, method dispatch without trailing-slash redirects, CSRF exemption.

The views themselves only translate: they call the apps' services with the request's Context and
render the OpenStack shape (OPENSTACK-COMPAT.md). Domain errors (``identity.errors``) become the
service's error body with the same status, so a refusal reads the same in every client.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .. import policy
from ..api.authentication import token_context
from ..context import Context
from ..errors import InvalidInput, NotAuthenticated, NotFound, PolicyDenied, ZenithError
from ..models import Project
from ..scoping import is_uuid

# Nova's error keys by status (nova/api/openstack/wsgi.py's Fault names).
NOVA_FAULTS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "HTTPMethodNotAllowed",
    409: "conflictingRequest",
    413: "overLimit",
    415: "HTTPUnsupportedMediaType",
    503: "serviceUnavailable",
}


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def nova_error(status: int, message: str) -> HttpResponse:
    """Nova's shape: ``{"itemNotFound": {"code": 404, "message": ...}}``."""
    return JsonResponse(
        {NOVA_FAULTS.get(status, "computeFault"): {"code": status, "message": message}}, status=status
    )


def keystone_error(status: int, message: str) -> HttpResponse:
    """Keystone's shape: ``{"error": {"code", "title", "message"}}``."""
    return JsonResponse(
        {"error": {"code": status, "title": _title(status), "message": message}}, status=status
    )


# Neutron's error types by status (neutron_lib's exception names for the generic cases).
NEUTRON_TYPES = {
    400: "BadRequest",
    401: "NotAuthorized",
    403: "PolicyNotAuthorized",
    404: "NotFound",
    405: "HTTPMethodNotAllowed",
    409: "Conflict",
    413: "OverQuota",
    503: "ServiceUnavailable",
}


def neutron_error(status: int, message: str) -> HttpResponse:
    """Neutron's shape: ``{"NeutronError": {"type": "NotFound", "message": ..., "detail": ""}}``."""
    return JsonResponse(
        {
            "NeutronError": {
                "type": NEUTRON_TYPES.get(status, "NeutronException"),
                "message": message,
                "detail": "",
            }
        },
        status=status,
    )


def glance_error(status: int, message: str) -> HttpResponse:
    """Glance's (webob's) plain-text form: status line, blank line, the message."""
    body = f"{status} {_title(status)}\n\n{message}\n\n"
    return HttpResponse(body, status=status, content_type="text/plain; charset=UTF-8")


class NotAcceptable(ZenithError):
    """A microversion outside the range a service serves (Nova answers 406)."""

    status = 406
    code = "not_acceptable"


@dataclass(frozen=True, order=True)
class Microversion:
    """A ``major.minor`` API microversion, compared as numbers (2.10 > 2.9)."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> Microversion:
        major, _, minor = text.strip().partition(".")
        if not (major.isdigit() and minor.isdigit()):
            raise InvalidInput(
                f"API Version String {text} is of invalid format. Must be of format MajorNum.MinorNum."
            )
        return cls(int(major), int(minor))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True)
class Microversions:
    """The microversions a service serves, and how its requests name one: ``OpenStack-API-Version:
    <service> X.Y`` or the service's legacy header; none means the minimum, ``latest`` the maximum."""

    service: str
    legacy_header: str
    minimum: Microversion
    maximum: Microversion

    def negotiate(self, request: HttpRequest) -> Microversion:
        raw = None
        for part in (request.headers.get("OpenStack-API-Version") or "").split(","):
            name, _, value = part.strip().partition(" ")
            if name.lower() == self.service:
                raw = value.strip()
        if raw is None:
            raw = (request.headers.get(self.legacy_header) or "").strip() or None
        if raw is None:
            return self.minimum
        if raw.lower() == "latest":
            return self.maximum
        wanted = Microversion.parse(raw)
        if not self.minimum <= wanted <= self.maximum:
            raise NotAcceptable(
                f"Version {raw} is not supported by the API. Minimum is {self.minimum} and maximum is "
                f"{self.maximum}."
            )
        return wanted

    def headers(self, version: Microversion) -> dict[str, str]:
        return {
            "OpenStack-API-Version": f"{self.service} {version}",
            self.legacy_header: str(version),
            "Vary": f"OpenStack-API-Version, {self.legacy_header}",
        }


@dataclass(frozen=True)
class Service:
    """One OpenStack service's conventions: how its errors look, which headers it adds, and the
    microversions it serves (the request's is ``request.microversion``, echoed in the answer)."""

    name: str
    error: Callable[[int, str], HttpResponse]
    headers: dict[str, str] = field(default_factory=dict)
    microversions: Microversions | None = None

    def negotiate(self, request: HttpRequest) -> None:
        if self.microversions is not None:
            request.microversion = self.microversions.minimum
            request.microversion = self.microversions.negotiate(request)

    def finish(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        response["x-openstack-request-id"] = getattr(request, "request_id", "")
        headers = dict(self.headers)
        if self.microversions is not None:
            version = getattr(request, "microversion", None) or self.microversions.minimum
            headers.update(self.microversions.headers(version))
        for key, value in headers.items():
            response[key] = value
        return response


# The highest compute microversion whose every response shape Zenith renders (nova.py; the
# changes up to it that touch what Zenith serves are listed there).
COMPUTE_MICROVERSIONS = Microversions(
    "compute", "X-OpenStack-Nova-API-Version", Microversion(2, 1), Microversion(2, 53)
)
NOVA = Service("compute", nova_error, microversions=COMPUTE_MICROVERSIONS)
KEYSTONE = Service("identity", keystone_error)
GLANCE = Service("image", glance_error)
NEUTRON = Service("network", neutron_error)


def authenticate(request: HttpRequest) -> Context:
    """The Context of the request's ``X-Auth-Token`` (401 when missing or not valid)."""
    raw = (request.headers.get("X-Auth-Token") or "").strip()
    if not raw:
        raise NotAuthenticated("Authentication required: send a token in X-Auth-Token.")
    _, ctx = token_context(raw, getattr(request, "request_id", None))
    return ctx


def json_body(request: HttpRequest, wrapper: str | None = None) -> Any:
    """The request's JSON body (``body[wrapper]`` when given, which must be an object); 400 otherwise."""
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("The request body is not valid JSON.") from None
    if wrapper is None:
        return body
    if not isinstance(body, dict) or not isinstance(body.get(wrapper), dict):
        raise InvalidInput(f"The request body must be an object with a {wrapper!r} object.")
    return body[wrapper]


def endpoint(service: Service, *, auth: bool = True, **handlers: Callable) -> Callable:
    """A view answering the HTTP methods named (``get=``, ``post=``, ...): each handler is called as
    ``handler(request, ctx, **url_kwargs)`` (``ctx`` None when ``auth`` is False) and returns an
    HttpResponse. Domain errors become the service's error shape; other methods answer 405."""
    allowed = {name.upper(): handler for name, handler in handlers.items()}
    if "GET" in allowed and "HEAD" not in allowed:
        allowed["HEAD"] = allowed["GET"]

    @csrf_exempt
    def view(request: HttpRequest, **kwargs) -> HttpResponse:
        handler = allowed.get(request.method)
        try:
            if handler is None:
                response = service.error(
                    405, f"The method {request.method} is not allowed for this resource."
                )
                response["Allow"] = ", ".join(sorted(allowed))
            else:
                service.negotiate(request)
                ctx = authenticate(request) if auth else None
                response = handler(request, ctx, **kwargs)
        except ZenithError as exc:
            response = service.error(exc.status, exc.message)
            if exc.status == 401:
                response["WWW-Authenticate"] = f'Keystone uri="{request.build_absolute_uri("/identity")}"'
        return service.finish(request, response)

    return view


def not_found(service: Service) -> Callable:
    """The service's 404 for any path under its prefix that names no resource."""

    @csrf_exempt
    def view(request: HttpRequest, **kwargs) -> HttpResponse:
        try:
            service.negotiate(request)
        except ZenithError as exc:
            return service.finish(request, service.error(exc.status, exc.message))
        return service.finish(request, service.error(404, f"No such resource: {request.path}."))

    return view


def at_least(request: HttpRequest, version: str) -> bool:
    """Whether the request's negotiated microversion is ``version`` or later."""
    current = getattr(request, "microversion", None)
    return current is not None and current >= Microversion.parse(version)


def empty(status: int) -> HttpResponse:
    """A response with no body (202 and 204 answers)."""
    return HttpResponse(status=status)


def iso(value: datetime | None, micro: bool = False) -> str | None:
    """OpenStack's timestamp: ``2026-12-02T17:00:00Z`` (with microseconds for Keystone's tokens)."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def query_bool(request: HttpRequest, name: str) -> bool | None:
    """A boolean query parameter as the clients send it (True/true/1/yes, False/...); None when
    absent or ``None`` (the SDK sends ``is_public=None`` to mean "any")."""
    raw = request.GET.get(name)
    if raw is None or raw.strip().lower() in ("", "none"):
        return None
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "t", "y", "on"):
        return True
    if value in ("false", "0", "no", "f", "n", "off"):
        return False
    raise InvalidInput(f"{name} must be true or false, not {raw!r}.")


def query_limit(request: HttpRequest, maximum: int = 1000) -> int | None:
    """The ``limit`` query parameter (a page size), None when absent; 400 when not a whole number."""
    raw = request.GET.get("limit")
    if raw in (None, ""):
        return None
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidInput(f"limit must be a whole number, not {raw!r}.") from None
    if limit < 0:
        raise InvalidInput("limit must not be negative.")
    return min(limit, maximum)


def keyset_page(request: HttpRequest, rows, missing: str) -> tuple[list, int | None]:
    """One page of ``rows`` ordered newest first (``-created, -id``): ``limit``, and ``marker`` (the
    id of the last row seen; 400 with ``missing`` formatted with it when it names no row of ``rows``)."""
    marker = request.GET.get("marker")
    if marker:
        last = rows.filter(pk=marker).values("created", "pk").first() if is_uuid(marker) else None
        if last is None:
            raise InvalidInput(missing.format(marker=marker))
        rows = rows.filter(Q(created__lt=last["created"]) | Q(created=last["created"], pk__lt=last["pk"]))
    limit = query_limit(request)
    return list(rows if limit is None else rows[:limit]), limit


def get_or_404(queryset, what: str, **lookup):
    """One row of ``queryset`` (already scoped to the caller) or NotFound, also for malformed ids."""
    try:
        return queryset.get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, TypeError, ValidationError):
        raise NotFound(f"{what} could not be found.") from None


def quota_project(ctx: Context, project_id: str) -> Project:
    """The project whose quotas are asked for: the token's own, or any project for cloud admins."""
    policy.enforce(ctx, "identity:quota:show")
    if not ctx.is_admin and project_id != str(ctx.project_id):
        raise PolicyDenied("You may only see the quotas of the project your token is scoped to.")
    return get_or_404(Project.objects.visible_to(ctx), f"Project {project_id}", pk=project_id)


def quota_limit(value, name: str) -> int:
    """A quota limit as the clients send it (a number, or its text): a whole number, -1 or more."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise InvalidInput(f"Quota limit for {name} must be a whole number, -1 or more.")
    return value
