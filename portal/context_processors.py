"""Template context for every dashboard page: the caller's context, switchable projects, menu."""

from identity import policy
from identity.models import Project

from .navigation import MENU


def zenith(request):
    ctx = getattr(request, "zenith", None)
    if (
        ctx is None
        or not request.user.is_authenticated
        or request.path.startswith(("/api/", "/django-admin/"))
    ):
        return {}

    def menu():
        sections: dict[str, list] = {}
        for item in MENU:
            if item.action == "authenticated" or policy.check(ctx, item.action):
                sections.setdefault(item.section, []).append(item)
        return sections

    def projects():
        return list(Project.objects.filter(role_assignments__user=request.user, enabled=True).distinct())

    return {"zctx": ctx, "nav_sections": menu, "switchable_projects": projects}
