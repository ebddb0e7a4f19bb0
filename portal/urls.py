"""URLs: the dashboard under /dashboard/, the REST API under /api/v1/, the OpenStack-compatible API,
the OpenAPI schema and docs, Django admin, and redirects from the dashboard's old paths.

The OpenStack-compatible API is at /identity, /compute/v2.1, /image, /volume/v3 and /network, where
the dashboard used to live. Each old page path now answers a redirect to its new place; only those
exact paths do, so every other path under those prefixes belongs to the compatible API.
"""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path, re_path
from django.urls.resolvers import RoutePattern
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from compute.openstack import glance, nova
from identity.api.views import TokenView
from identity.forms import ThrottledAuthenticationForm
from identity.openstack import keystone
from networking.openstack import neutron
from storage.openstack import cinder

from . import views

api_v1 = [
    path("auth/tokens", TokenView.as_view(), name="auth-tokens"),
    path("identity/", include("identity.api.urls")),
    path("compute/", include("compute.api.urls")),
    path("storage/", include("storage.api.urls")),
    path("networking/", include("networking.api.urls")),
    path("", include("workers.api.urls")),
]

# The dashboard's pages that were at the top level before it moved under /dashboard/: each old path
# redirects to the new one (moved_from below).
moved_pages = [
    path("overview/", views.overview, name="overview"),
    path("operations/", views.operations, name="operations"),
    path("switch-project/", views.switch_project, name="switch-project"),
    path("identity/", include(("identity.urls", "identity"), namespace="identity")),
    path("compute/", include(("compute.urls", "compute"), namespace="compute")),
]
# Every dashboard page, mounted at /dashboard/. Sections added since the move (storage, networking)
# go here, not in moved_pages: they had no old path, and /volume and /network are the OpenStack API's.
dashboard = [
    *moved_pages,
    path("storage/", include(("storage.urls", "storage"), namespace="storage")),
    path("networking/", include(("networking.urls", "networking"), namespace="networking")),
]


def moved_from(patterns, prefix: str = "", namespace: str = "") -> list[URLPattern]:
    """A redirect at each named page's old path (``prefix`` + its route) to ``reverse()`` of its name.

    Generated from the pages' own patterns, so the redirects cannot drift from the pages they point to.
    """
    redirects = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = ":".join(filter(None, [namespace, entry.namespace]))
            redirects += moved_from(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern) and entry.name:
            assert isinstance(entry.pattern, RoutePattern), f"{entry.name}: only path() routes are moved"
            to = f"{namespace}:{entry.name}" if namespace else entry.name
            redirects.append(path(prefix + str(entry.pattern), views.moved, {views.MOVED_TO: to}))
    return redirects


urlpatterns = [
    path("", views.home, name="home"),
    # Login and logout stay at the top: they are under no OpenStack prefix, so moving them would
    # only break bookmarks and the login URL that browsers' password managers saved.
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="portal/login.html",
            redirect_authenticated_user=True,
            authentication_form=ThrottledAuthenticationForm,
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("dashboard/", views.home, name="dashboard"),
    path("dashboard/", include(dashboard)),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its script as a file, so the docs page works under the CSP (no inline script).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("django-admin/", admin.site.urls),
    # The OpenStack-compatible API (OPENSTACK-COMPAT.md): each prefix answers with and without its
    # trailing slash, and nothing under it redirects. Before moved_from: the old dashboard paths under
    # /identity/ and /compute/ that these patterns do not name still redirect.
    re_path(r"^identity(?:/|$)", include(keystone.urlpatterns)),
    re_path(r"^compute/v2\.1(?:/|$)", include(nova.urlpatterns)),
    re_path(r"^image(?:/|$)", include(glance.urlpatterns)),
    re_path(r"^volume(?:/|$)", include(cinder.urlpatterns)),
    re_path(r"^network(?:/|$)", include(neutron.urlpatterns)),
    # Last, so that anything mounted at these prefixes (the OpenStack-compatible API) wins.
    *moved_from(moved_pages),
]

handler400 = "portal.errors.bad_request"
handler404 = "portal.errors.not_found"
handler500 = "portal.errors.server_error"
