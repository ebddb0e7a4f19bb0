"""Request id and the dashboard's project context (the project switcher's choice, kept in the session)."""

import re
import uuid

from django.utils.functional import SimpleLazyObject

from .context import build_context
from .models import Project

SESSION_PROJECT_KEY = "zenith_project_id"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Give every request an id (or keep a well-formed ``X-Request-Id``) and echo it in the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-Id", "")
        request.request_id = incoming if _REQUEST_ID_RE.match(incoming) else f"req-{uuid.uuid4()}"
        response = self.get_response(request)
        response["X-Request-Id"] = request.request_id
        return response


def session_project(request):
    """The project chosen in this browser session, if the user still holds a role on it."""
    user = request.user
    project_id = request.session.get(SESSION_PROJECT_KEY)
    visible = Project.objects.filter(role_assignments__user=user, enabled=True)
    project = None
    if project_id:
        project = visible.filter(pk=project_id).first()
    if project is None and user.default_project_id:
        project = visible.filter(pk=user.default_project_id).first()
    if project is None:
        project = visible.order_by("name").first()
    if project is not None and str(project.pk) != project_id:
        request.session[SESSION_PROJECT_KEY] = str(project.pk)
    return project


class ProjectContextMiddleware:
    """Attach ``request.zenith``: the Context for session (dashboard) requests, built lazily."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        def build():
            if not request.user.is_authenticated:
                return build_context(None, None, request.request_id)
            return build_context(request.user, session_project(request), request.request_id)

        request.zenith = SimpleLazyObject(build)
        return self.get_response(request)
