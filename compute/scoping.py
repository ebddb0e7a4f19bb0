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


class ImageQuerySet(ScopedQuerySet):
    """Glance's visibility: public images for all, private ones for their project, shared ones for
    the projects that accepted them (ImageMember rows with status ``accepted``). Cloud admins see
    every image. A shared image offered but not accepted is out of the catalogue: ``offered_to``
    reaches it where the member decides."""

    def visible_to(self, ctx: Context):
        if ctx.is_admin:
            return self.exclude(status="deleted")
        if ctx.user is None or ctx.project is None:
            return self.none()
        return self.usable_by_project(ctx.project.pk)

    def offered_to(self, ctx: Context, statuses: tuple[str, ...]):
        """The shared images offered to the caller's project whose membership has one of ``statuses``
        (whatever the caller's role: this is where the member sees what it may accept or reject)."""
        if ctx.user is None or ctx.project is None:
            return self.none()
        from .models import ImageMember

        offers = ImageMember.objects.filter(project_id=ctx.project.pk, status__in=statuses)
        return self.exclude(status="deleted").filter(visibility="shared", pk__in=offers.values("image_id"))

    def usable_by_project(self, project_id):
        """The images ``project_id`` may boot right now (public, its own, shared and accepted), for
        checks made without a caller (a signed download URL re-checks its project with this)."""
        from .models import ImageMember

        shared = ImageMember.objects.filter(project_id=project_id, status=ImageMember.ACCEPTED)
        return self.exclude(status="deleted").filter(
            Q(visibility="public")
            | Q(project_id=project_id)
            | Q(visibility="shared", pk__in=shared.values("image_id"))
        )


class InstanceQuerySet(ScopedQuerySet):
    """Instances belong to a project; deleted ones stay as rows (for the action log) but are hidden."""

    def live(self):
        return self.exclude(vm_state="deleted")

    def for_rows(self):
        """What an instance row shows (API list, dashboard tables) in one query, without the large
        columns no row shows: user data, key, operation payloads, image properties (a host's domains
        are on its compute node, which a row does not join)."""
        return self.select_related("flavor", "image", "operation", "host").defer(
            "user_data",
            "key_data",
            "operation__payload",
            "operation__result",
            "image__properties",
        )

    def visible_to(self, ctx: Context):
        if ctx.project is None:
            return self.none()
        return self.live().filter(project_id=ctx.project.pk)

    def across_projects(self, ctx: Context):
        """Every project's instances, for cloud admins' panels; nothing for anyone else."""
        return self.live() if ctx.is_admin else self.none()
