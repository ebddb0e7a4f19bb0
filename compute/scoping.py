"""Who sees which compute rows: the ``visible_to(ctx)`` querysets of compute's models."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Q

from identity.scoping import ScopedQuerySet

if TYPE_CHECKING:
    from identity.context import Context


class FlavorQuerySet(ScopedQuerySet):
    """Cloud admins see every flavor; others the public ones and the private ones shared with them."""

    def visible_to(self, ctx: Context):
        if ctx.is_admin:
            return self.all()
        if ctx.user is None or ctx.project is None:
            return self.none()
        from .models import FlavorAccess

        # A subquery, not a join: a join on the access rows would repeat a flavor once per project.
        shared = FlavorAccess.objects.filter(project_id=ctx.project.pk).values("flavor_id")
        return self.filter(Q(is_public=True) | Q(pk__in=shared))
