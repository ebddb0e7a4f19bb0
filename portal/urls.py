"""URLs: dashboard pages, the REST API under /api/v1/, the OpenAPI schema and docs, Django admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from identity.api.views import TokenView
from identity.forms import ThrottledAuthenticationForm

from . import views

api_v1 = [
    path("auth/tokens", TokenView.as_view(), name="auth-tokens"),
    path("identity/", include("identity.api.urls")),
    path("compute/", include("compute.api.urls")),
    path("", include("workers.api.urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
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
    path("overview/", views.overview, name="overview"),
    path("operations/", views.operations, name="operations"),
    path("switch-project/", views.switch_project, name="switch-project"),
    path("identity/", include(("identity.urls", "identity"), namespace="identity")),
    path("compute/", include(("compute.urls", "compute"), namespace="compute")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its script as a file, so the docs page works under the CSP (no inline script).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("django-admin/", admin.site.urls),
]

handler400 = "portal.errors.bad_request"
handler404 = "portal.errors.not_found"
handler500 = "portal.errors.server_error"
