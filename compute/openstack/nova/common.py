"""What the Compute views share: the version document, links and next-page links, and the
checks of request fields the services would choke on."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from identity.errors import InvalidInput
from identity.openstack.http import (
    COMPUTE_MICROVERSIONS,
)

VERSION = {
    "id": "v2.1",
    "status": "CURRENT",
    "version": str(COMPUTE_MICROVERSIONS.maximum),
    "min_version": str(COMPUTE_MICROVERSIONS.minimum),
    "updated": "2013-07-23T11:33:21Z",
}


def base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/compute/v2.1")


def resource_links(request: HttpRequest, collection: str, item) -> list[dict]:
    return [
        {"rel": "self", "href": f"{base_url(request)}/{collection}/{item}"},
        {"rel": "bookmark", "href": request.build_absolute_uri(f"/compute/{collection}/{item}")},
    ]


# --- version document -----------------------------------------------------------------------------


def version(request, ctx):
    """``GET /compute/v2.1``: the one version served."""
    doc = {
        **VERSION,
        "links": [{"rel": "self", "href": base_url(request) + "/"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}
        ],
    }
    return JsonResponse({"version": doc})


# --- pagination -----------------------------------------------------------------------------------


def next_link(request: HttpRequest, collection: str, page: list, limit: int | None, key: str) -> dict:
    if limit is None or not page or len(page) < limit:
        return {}
    query = request.GET.copy()
    query["marker"] = str(page[-1].pk)
    return {
        f"{key}_links": [{"rel": "next", "href": f"{base_url(request)}/{collection}?{query.urlencode()}"}]
    }


def text_field(body: dict, key: str) -> str | None:
    """A field that must be a string when given (the services take ``str`` and would choke on others)."""
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string.")
    return value


def whole_number(value, what: str, default: int | None = None) -> int:
    if value in (None, "") and default is not None:
        return default
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be a whole number.")
    return value
