"""Every identity state change: projects, users, role assignments, quotas, key pairs, tokens.

Each function takes the caller's Context first, checks policy, validates, and writes in one
transaction. Views (dashboard and API) only parse input and call these.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from . import audit, keys, policy, quotas, throttle
from .context import Context
from .errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from .models import ApiToken, KeyPair, Project, Role, RoleAssignment, User
from .names import clean_name

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@-]{0,63}$")
KEYPAIR_NAME_RE = re.compile(r"^[A-Za-z0-9 _.@-]{1,255}$")
TOKEN_PREFIX = "zt_"

# The object permissions a role assignment grants on its project (held by django-guardian).
ROLE_PROJECT_PERMS = {
    Role.READER: ("identity.view_project",),
    Role.MEMBER: ("identity.view_project",),
    Role.ADMIN: ("identity.view_project", "identity.change_project"),
}


def _clean_name(value: str, what: str) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not NAME_RE.match(name):
        raise InvalidInput(
            f"{what} name must be 1-64 characters: letters, digits, space, '_', '.', '@', '-', "
            "starting with a letter or digit."
        )
    return clean_name(name, what, 64)  # the rules every name keeps (this alphabet keeps them already)


# --- projects ----------------------------------------------------------------------------------


@transaction.atomic
def create_project(ctx: Context, *, name: str, description: str = "", enabled: bool = True) -> Project:
    """Create a tenant project."""
    policy.enforce(ctx, "identity:project:create")
    name = _clean_name(name, "Project")
    if Project.objects.filter(name__iexact=name).exists():
        raise Conflict(f"A project named {name!r} already exists.")
    project = Project.objects.create(name=name, description=description or "", enabled=enabled)
    audit.record(ctx, "project", project.pk, "create", project=None, message=f"created {name}")
    return project


@transaction.atomic
def update_project(ctx: Context, project: Project, *, name=None, description=None, enabled=None) -> Project:
    """Rename, describe, enable or disable a project."""
    policy.enforce(ctx, "identity:project:update")
    project = Project.objects.select_for_update().get(pk=project.pk)
    if name is not None:
        name = _clean_name(name, "Project")
        if Project.objects.filter(name__iexact=name).exclude(pk=project.pk).exists():
            raise Conflict(f"A project named {name!r} already exists.")
        if project.name == settings.ZENITH_ADMIN_PROJECT and name != project.name:
            raise Conflict("The admin project cannot be renamed.")
        project.name = name
    if description is not None:
        project.description = description
    if enabled is not None:
        if project.name == settings.ZENITH_ADMIN_PROJECT and not enabled:
            raise Conflict("The admin project cannot be disabled.")
        project.enabled = enabled
    project.save()
    message = audit.changed(name=name, description=description, enabled=enabled)
    audit.record(ctx, "project", project.pk, "update", project=None, message=message)
    return project


@transaction.atomic
def delete_project(ctx: Context, project: Project) -> None:
    """Delete an empty project (one whose quota usage is all zero)."""
    policy.enforce(ctx, "identity:project:delete")
    if project.name == settings.ZENITH_ADMIN_PROJECT:
        raise Conflict("The admin project cannot be deleted.")
    in_use = {k: v for k, v in quotas.usage(project).items() if v and k != "key_pairs"}
    if in_use:
        listed = ", ".join(f"{k}={v}" for k, v in in_use.items())
        raise Conflict(f"Project {project.name} still has resources ({listed}); delete them first.")
    audit.record(ctx, "project", project.pk, "delete", project=None, message=f"deleted {project.name}")
    project.delete()


# --- users ------------------------------------------------------------------------------------


@transaction.atomic
def create_user(
    ctx: Context, *, username: str, password: str, email: str = "", is_superuser: bool = False
) -> User:
    """Create a user account (a cloud admin when ``is_superuser``)."""
    policy.enforce(ctx, "identity:user:create")
    username = _clean_name(username, "User")
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict(f"A user named {username!r} already exists.")
    _check_password(password, username)
    user = User(username=username, email=email or "", is_superuser=is_superuser, is_staff=is_superuser)
    user.set_password(password)
    user.save()
    audit.record(ctx, "user", user.pk, "create", project=None, message=f"created {username}")
    return user


def _check_password(password: str, username: str) -> None:
    try:
        validate_password(password or "", User(username=username))
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages)) from None


@transaction.atomic
def update_user(
    ctx: Context, user: User, *, email=None, password=None, is_active=None, is_superuser=None
) -> User:
    """Change a user's e-mail, password, active flag, or cloud-admin (superuser) status."""
    policy.enforce(ctx, "identity:user:update")
    if email is not None:
        user.email = email
    revoke = False
    if password is not None:
        _check_password(password, user.username)
        user.set_password(password)
        revoke = True
    if is_active is not None:
        if not is_active and ctx.user is not None and user.pk == ctx.user.pk:
            raise Conflict("You cannot disable your own account.")
        revoke = revoke or (user.is_active and not is_active)
        user.is_active = is_active
    if is_superuser is not None:
        if not is_superuser and ctx.user is not None and user.pk == ctx.user.pk:
            raise Conflict("You cannot remove your own cloud-admin status.")
        user.is_superuser = user.is_staff = is_superuser
    user.save()
    if revoke:
        revoke_user_tokens(user)
    message = audit.changed(email=email, password=password, is_active=is_active, is_superuser=is_superuser)
    audit.record(ctx, "user", user.pk, "update", project=None, message=message)
    return user


@transaction.atomic
def set_default_project(ctx: Context, user: User, project: Project | None) -> User:
    """Set the project a user's sign-in lands in (None: the first one they are given a role on)."""
    policy.enforce(ctx, "identity:user:update")
    User.objects.filter(pk=user.pk).update(default_project=project)
    user.default_project = project
    return user


@transaction.atomic
def delete_user(ctx: Context, user: User) -> None:
    """Delete a user account; their tokens and key pairs go with it."""
    policy.enforce(ctx, "identity:user:delete")
    if ctx.user is not None and user.pk == ctx.user.pk:
        raise Conflict("You cannot delete your own account.")
    audit.record(ctx, "user", user.pk, "delete", project=None, message=f"deleted {user.username}")
    user.delete()


# --- role assignments -------------------------------------------------------------------------


def _sync_project_perms(user: User, project: Project) -> None:
    """Make the user's guardian grants on ``project`` match their remaining role assignments."""
    held = set(RoleAssignment.objects.filter(user=user, project=project).values_list("role__name", flat=True))
    wanted = {perm for role in held for perm in ROLE_PROJECT_PERMS.get(role, ("identity.view_project",))}
    for perm in {p for perms in ROLE_PROJECT_PERMS.values() for p in perms}:
        if perm in wanted:
            assign_perm(perm, user, project)
        else:
            remove_perm(perm, user, project)


@transaction.atomic
def assign_role(ctx: Context, *, user: User, project: Project, role: Role) -> RoleAssignment:
    """Give ``user`` ``role`` on ``project`` (and the object permissions that come with it)."""
    policy.enforce(ctx, "identity:role_assignment:create")
    if RoleAssignment.objects.filter(user=user, project=project, role=role).exists():
        raise Conflict(f"{user.username} already holds {role.name} on {project.name}.")
    try:
        with transaction.atomic():
            assignment = RoleAssignment.objects.create(user=user, project=project, role=role)
    except IntegrityError:
        raise Conflict(f"{user.username} already holds {role.name} on {project.name}.") from None
    _sync_project_perms(user, project)
    # The filter on the row, not the in-memory flag, decides: ``user`` may be a stale instance.
    if user.default_project_id is None and User.objects.filter(
        pk=user.pk, default_project__isnull=True
    ).update(default_project=project):
        user.default_project = project
    audit.record(
        ctx,
        "role_assignment",
        assignment.pk,
        "create",
        project=None,
        message=f"{role.name} on {project.name} for {user.username}",
    )
    return assignment


def is_own_admin_grant(ctx: Context, assignment: RoleAssignment) -> bool:
    """Whether ``assignment`` is the caller's own admin role on the admin project: the grant that
    makes them a cloud admin, which they may not revoke themselves (as they may not delete themselves),
    superuser or not: a superuser without it would lose the admin project from their switcher."""
    return (
        ctx.user is not None
        and assignment.user_id == ctx.user.pk
        and assignment.project.name == settings.ZENITH_ADMIN_PROJECT
        and assignment.role.name == Role.ADMIN
    )


@transaction.atomic
def revoke_role(ctx: Context, assignment: RoleAssignment) -> None:
    """Remove a role assignment; the user's tokens for that project stop working if no role is left."""
    policy.enforce(ctx, "identity:role_assignment:delete")
    user, project = assignment.user, assignment.project
    if is_own_admin_grant(ctx, assignment):
        raise Conflict("You cannot remove your own admin role on the admin project.")
    audit.record(
        ctx,
        "role_assignment",
        assignment.pk,
        "delete",
        project=None,
        message=f"{assignment.role.name} on {project.name} for {user.username}",
    )
    assignment.delete()
    _sync_project_perms(user, project)
    if not RoleAssignment.objects.filter(user=user, project=project).exists():
        ApiToken.objects.filter(user=user, project=project, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )


# --- quotas -----------------------------------------------------------------------------------


@transaction.atomic
def set_quotas(ctx: Context, project: Project, limits: dict[str, int]) -> dict[str, int]:
    """Set a project's limits (admin); -1 means unlimited."""
    policy.enforce(ctx, "identity:quota:update")
    result = quotas.set_limits(project, limits)
    listed = ", ".join(f"{name}={limits[name]}" for name in sorted(limits))
    audit.record(
        ctx, "quota", project.pk, "update", project=None, message=f"{project.name}: {listed or 'no change'}"
    )
    return result


# --- key pairs --------------------------------------------------------------------------------


@dataclass
class CreatedKeyPair:
    keypair: KeyPair
    private_key: str | None  # only when generated; shown once, never stored


@transaction.atomic
def create_keypair(
    ctx: Context, *, name: str, public_key: str | None = None, key_type: str = "ed25519"
) -> CreatedKeyPair:
    """Import an OpenSSH public key, or generate a pair and return the private key exactly once."""
    policy.enforce(ctx, "identity:keypair:create")
    name = name.strip() if isinstance(name, str) else ""
    if not KEYPAIR_NAME_RE.match(name):
        raise InvalidInput(
            "Key pair name must be 1-255 characters: letters, digits, space, '_', '.', '@', '-'."
        )
    name = clean_name(name, "Key pair", 255)
    # Key pairs belong to the user and their quota counts per user, so the lock is the user's row, not
    # the project's quota row: concurrent creates through two projects' tokens (or of one name) queue.
    User.objects.select_for_update().filter(pk=ctx.user.pk).exists()
    if KeyPair.objects.filter(user=ctx.user, name=name).exists():
        raise Conflict(f"You already have a key pair named {name!r}.")
    quotas.enforce(ctx.project, {"key_pairs": 1}, user=ctx.user)
    private_key = None
    if public_key:
        public_key = keys.normalise_public_key(public_key)
    else:
        public_key, private_key = keys.generate(key_type, comment=f"{name}@zenith")
    try:
        with transaction.atomic():
            keypair = KeyPair.objects.create(
                user=ctx.user, name=name, public_key=public_key, fingerprint=keys.fingerprint(public_key)
            )
    except IntegrityError:  # the unique (user, name) still guards whatever the lock did not see
        raise Conflict(f"You already have a key pair named {name!r}.") from None
    return CreatedKeyPair(keypair=keypair, private_key=private_key)


@transaction.atomic
def delete_keypair(ctx: Context, keypair: KeyPair) -> None:
    """Delete one of the caller's key pairs (instances already launched keep their key)."""
    policy.enforce(ctx, "identity:keypair:delete", keypair)
    keypair.delete()


# --- tokens -----------------------------------------------------------------------------------


def token_digest(token: str) -> str:
    """The stored form of a token: its SHA-256 (tokens are 256-bit random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def resolve_project(user: User, reference: str | None) -> Project:
    """The project a user names (by name or id) that they hold a role on; their default when omitted."""
    mine = Project.objects.filter(role_assignments__user=user, enabled=True).distinct()
    if not reference:
        project = mine.filter(pk=user.default_project_id).first() or mine.first()
    else:
        # A name may be 32 or 36 characters long too: only a reference that parses as a UUID is an id.
        match = Q(name=reference)
        with contextlib.suppress(ValueError):
            match |= Q(pk=uuid.UUID(reference))
        project = mine.filter(match).first()
    if project is None:
        raise NotAuthenticated(
            f"You have no role on a project named {reference!r}."
            if reference
            else "You have no role on any project.",
            code="no_project",
        )
    return project


@dataclass
class IssuedToken:
    token: str
    record: ApiToken
    roles: list[str]


def issue_token(
    *, username: str, password: str, project: str | None = None, address: str | None = None
) -> IssuedToken:
    """Authenticate by password and issue a token scoped to one project the user holds a role on.
    Throttled (``identity.throttle``): after too many failures, TooManyAttempts before any hashing.
    Not one transaction with the check: a refusal must not roll back the failure it counted."""
    throttle.check(username, address)
    user = authenticate(username=username or "", password=password or "", address=address)
    if user is None:
        raise NotAuthenticated("Invalid username or password.", code="invalid_credentials")
    return _issue_token(user, project)


@transaction.atomic
def _issue_token(user: User, project: str | None) -> IssuedToken:
    """Record a new token for an authenticated user on the project they named (or their default)."""
    scoped = resolve_project(user, project)
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken.objects.create(
        user=user,
        project=scoped,
        digest=token_digest(raw),
        prefix=raw[:8],
        expires_at=timezone.now() + settings.ZENITH_TOKEN_TTL,
    )
    roles = sorted(
        RoleAssignment.objects.filter(user=user, project=scoped).values_list("role__name", flat=True)
    )
    return IssuedToken(token=raw, record=record, roles=roles)


def authenticate_token(raw: str, now: datetime | None = None) -> ApiToken:
    """The usable token for ``raw``; NotAuthenticated when unknown, expired or revoked."""
    now = now or timezone.now()
    token = ApiToken.objects.select_related("user", "project").filter(digest=token_digest(raw or "")).first()
    if token is None:
        raise NotAuthenticated("The token is not valid.", code="invalid_token")
    if token.revoked_at is not None:
        raise NotAuthenticated("The token has been revoked.", code="token_revoked")
    if token.expires_at <= now:
        raise NotAuthenticated("The token has expired.", code="token_expired")
    if not token.user.is_active or not token.project.enabled:
        raise NotAuthenticated("The token's user or project is disabled.", code="token_disabled")
    return token


def revoke_user_tokens(user: User) -> int:
    """Revoke every live token of ``user`` (a new password, or a disabled account: whoever held a
    token must authenticate again, and a re-enabled account does not bring old tokens back)."""
    return ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())


@transaction.atomic
def revoke_token(ctx: Context, token: ApiToken) -> None:
    """Revoke a token so that it is refused from now on."""
    if ctx.user is None or (token.user_id != ctx.user.pk and not ctx.is_admin):
        raise NotFound("No such token.")
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


# --- seeding ----------------------------------------------------------------------------------


@transaction.atomic
def seed_roles() -> None:
    """Make sure the built-in roles exist (idempotent)."""
    for name in Role.SEEDED:
        Role.objects.get_or_create(name=name, defaults={"description": f"built-in {name} role"})
