"""API authentication: project-scoped bearer tokens (the dashboard's session is DRF's own)."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from .. import services
from ..context import build_context
from ..errors import NotAuthenticated


def token_context(raw: str, request_id: str | None = None):
    """``(token, Context)`` for a raw token (the native API's and the OpenStack API's alike);
    NotAuthenticated when it is unknown, expired, revoked or disabled."""
    token = services.authenticate_token(raw)
    return token, build_context(token.user, token.project, request_id)


class ProjectTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <token>`` or ``X-Auth-Token: <token>``; sets ``request.zenith``."""

    keyword = "bearer"

    def authenticate(self, request):
        raw = None
        header = authentication.get_authorization_header(request).decode(errors="replace").split()
        if header and header[0].lower() == self.keyword:
            if len(header) != 2:
                raise exceptions.AuthenticationFailed(_("Authorization header must be 'Bearer <token>'."))
            raw = header[1]
        elif request.headers.get("X-Auth-Token"):
            raw = request.headers["X-Auth-Token"].strip()
        if raw is None:
            return None
        try:
            token, request._request.zenith = token_context(raw, getattr(request, "request_id", None))
        except NotAuthenticated as exc:
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from None
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="zenith"'


class TokenScheme(OpenApiAuthenticationExtension):
    target_class = ProjectTokenAuthentication
    name = "ProjectToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "POST /api/v1/auth/tokens to obtain one."}
