"""The site's URLs with a stand-in for the OpenStack-compatible services not yet served (network)
appended at their prefixes, as they will be mounted: their views must get those paths, not the
dashboard's redirects. (Identity, compute, image and block storage are real now: tests/openstack/.)"""

import re

from django.http import HttpResponse
from django.urls import re_path

from portal.urls import handler404, handler500  # noqa: F401 (the handlers)
from portal.urls import urlpatterns as site

OPENSTACK_PREFIXES = ("network",)


def compat(request, rest=""):
    return HttpResponse(f"compat {request.path}")


urlpatterns = [
    *site,
    *(re_path(rf"^{re.escape(prefix)}(?P<rest>/.*)?$", compat) for prefix in OPENSTACK_PREFIXES),
]
