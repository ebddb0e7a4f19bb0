"""Tenancy in one place: every model a caller can list or fetch has a ``visible_to(ctx)`` queryset.

Views, serializers and services reach rows only through ``visible_to`` (or ``get_visible``), so no
list or detail can return another project's row: it is simply not in the queryset, hence 404.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import models

from .errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from .context import Context


class ScopedQuerySet(models.QuerySet):
    """Base: subclasses say what a caller may see."""

    def visible_to(self, ctx: Context):
        raise NotImplementedError

    def resolve(self, ctx: Context, ref, what: str):
        """A row the caller may see, by id or (unique) name: what a user types to name a flavor, an
        image, a volume or a network. 400 with a clear message otherwise (never a 404 for input)."""
        if isinstance(ref, self.model):
            ref = ref.pk
        if not isinstance(ref, str) or not ref.strip():
            raise InvalidInput(f"Say which {what} to use (its id or name).")
        ref = ref.strip()
        try:
            return self.get_visible(ctx, pk=ref)
        except NotFound:
            pass
        matches = list(self.visible_to(ctx).filter(name=ref)[:2])
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise InvalidInput(f"More than one {what} is named {ref!r}: use its id.")
        raise InvalidInput(f"No {what} {ref!r} is available to this project.")

    def get_visible(self, ctx: Context, **lookup):
        """One row the caller may see, or NotFound (also for malformed ids)."""
        try:
            return self.visible_to(ctx).get(**lookup)
        except (self.model.DoesNotExist, ValueError, ValidationError):
            raise NotFound(f"No such {self.model._meta.verbose_name}.") from None


class ProjectOwnedQuerySet(ScopedQuerySet):
    """Rows with a ``project`` foreign key: visible inside that project only."""

    def visible_to(self, ctx: Context):
        if ctx.project is None:
            return self.none()
        return self.filter(project_id=ctx.project.pk)

    def across_projects(self, ctx: Context):
        """Every project's rows, for cloud admins' panels; nothing for anyone else."""
        return self.all() if ctx.is_admin else self.none()


class UserOwnedQuerySet(ScopedQuerySet):
    """Rows with a ``user`` foreign key (key pairs, tokens): visible to their owner."""

    def visible_to(self, ctx: Context):
        if ctx.user is None:
            return self.none()
        return self.filter(user_id=ctx.user.pk)


class ProjectQuerySet(ScopedQuerySet):
    """Cloud admins see every project; others the projects a role assignment granted them (guardian)."""

    def visible_to(self, ctx: Context):
        if ctx.user is None:
            return self.none()
        if ctx.is_admin:
            return self.all()
        from guardian.shortcuts import get_objects_for_user

        return get_objects_for_user(ctx.user, "identity.view_project", klass=self, accept_global_perms=False)


class UserQuerySet(ScopedQuerySet):
    """Cloud admins see every user; others only themselves."""

    def visible_to(self, ctx: Context):
        if ctx.user is None:
            return self.none()
        return self.all() if ctx.is_admin else self.filter(pk=ctx.user.pk)


class RoleAssignmentQuerySet(ScopedQuerySet):
    """Cloud admins see every assignment; others their own."""

    def visible_to(self, ctx: Context):
        if ctx.user is None:
            return self.none()
        return self.all() if ctx.is_admin else self.filter(user_id=ctx.user.pk)


class AdminOnlyQuerySet(ScopedQuerySet):
    """Rows only cloud admins read (the audit trail: who did what to every resource)."""

    def visible_to(self, ctx: Context):
        return self.all() if ctx.user is not None and ctx.is_admin else self.none()


class RoleQuerySet(ScopedQuerySet):
    def visible_to(self, ctx: Context):
        return self.all() if ctx.user is not None else self.none()


def is_uuid(value) -> bool:
    """Whether ``value`` reads as a UUID: a lookup by primary key would refuse anything else."""
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
