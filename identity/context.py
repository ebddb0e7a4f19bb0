"""The request context every service takes first: who, in which project, with which roles."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Q

from .models import Project, Role, RoleAssignment, User


@dataclass(frozen=True)
class Context:
    """Caller identity for one request or task: user, project, roles, cloud-admin flag, request id."""

    user: User | None
    project: Project | None
    roles: frozenset[str] = frozenset()
    is_admin: bool = False
    request_id: str = field(default_factory=lambda: f"req-{uuid.uuid4()}")

    @property
    def project_id(self):
        return self.project.pk if self.project else None

    def can(self, action: str, target=None) -> bool:
        from . import policy

        return policy.check(self, action, target)


def build_context(user: User | None, project: Project | None, request_id: str | None = None) -> Context:
    """Resolve the caller's roles on ``project`` and cloud-admin status in one query."""
    rid = request_id or f"req-{uuid.uuid4()}"
    if user is None or not user.is_authenticated:
        return Context(user=None, project=None, request_id=rid)
    scope = Q(project__name=settings.ZENITH_ADMIN_PROJECT, role__name=Role.ADMIN)
    if project is not None:
        scope |= Q(project=project)
    rows = RoleAssignment.objects.filter(scope, user=user).values_list(
        "project_id", "project__name", "role__name"
    )
    roles = set()
    is_admin = user.is_superuser
    for project_id, project_name, role in rows:
        if project is not None and project_id == project.pk:
            roles.add(role)
        if project_name == settings.ZENITH_ADMIN_PROJECT and role == Role.ADMIN:
            is_admin = True
    return Context(user=user, project=project, roles=frozenset(roles), is_admin=is_admin, request_id=rid)


def system_context(request_id: str | None = None) -> Context:
    """A context for the conductor, the sweeper and management commands: a cloud admin with no user."""
    return Context(
        user=None,
        project=None,
        roles=frozenset({Role.ADMIN}),
        is_admin=True,
        request_id=request_id or f"req-{uuid.uuid4()}",
    )
