"""Identity v3 (Keystone) at ``/identity``: version discovery, password authentication scoped to a
project by name or id, token validation and revocation, the service catalog, projects, users, roles
and role assignments. A Keystone token is a native API token (``identity.services.issue_token``):
hashed, expiring, revocable, scoped to one project.

Zenith has one domain, ``Default`` (id ``default``): every user and project is in it.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import re_path

from .. import policy, services
from ..context import Context
from ..errors import InvalidInput, NotAuthenticated, NotFound
from ..models import ApiToken, Project, Role, RoleAssignment, User
from .http import KEYSTONE, authenticate, empty, endpoint, get_or_404, iso, json_body, not_found

DOMAIN = {"id": "default", "name": "Default"}
VERSION_UPDATED = "2020-04-07T00:00:00Z"

# The catalog: (service type, service name, path on this site). Volume and network join as their
# services land; a service listed here that answers 404 would break the clients (quota show).
CATALOG = (
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/v2.1"),
    ("image", "glance", "/image"),
)
REGION = "RegionOne"


def _url(request: HttpRequest, path: str) -> str:
    return request.build_absolute_uri(path)


def _version(request: HttpRequest) -> dict:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": VERSION_UPDATED,
        "links": [{"rel": "self", "href": _url(request, "/identity/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    }


def versions(request, ctx):
    """``GET /identity``: the version list (300 Multiple Choices, as Keystone answers)."""
    return JsonResponse({"versions": {"values": [_version(request)]}}, status=300)


def version(request, ctx):
    """``GET /identity/v3``."""
    return JsonResponse({"version": _version(request)})


def catalog(request: HttpRequest) -> list[dict]:
    """The service catalog with this site's reachable URLs."""
    entries = []
    for service_type, name, path in CATALOG:
        url = _url(request, path)
        entries.append(
            {
                "id": service_type,
                "type": service_type,
                "name": name,
                "endpoints": [
                    {
                        "id": f"{service_type}-{interface}",
                        "interface": interface,
                        "region": REGION,
                        "region_id": REGION,
                        "url": url,
                    }
                    for interface in ("public", "internal", "admin")
                ],
            }
        )
    return entries


def _user(user: User) -> dict:
    return {"id": str(user.pk), "name": user.username, "domain": DOMAIN, "password_expires_at": None}


def _project_ref(project: Project) -> dict:
    return {"id": str(project.pk), "name": project.name, "domain": DOMAIN}


def _token_body(request: HttpRequest, token: ApiToken, roles: list[str], with_catalog: bool = True) -> dict:
    by_name = dict(Role.objects.filter(name__in=roles).values_list("name", "pk"))
    body = {
        "methods": ["password"],
        "user": _user(token.user),
        "project": _project_ref(token.project),
        "roles": [{"id": str(by_name.get(name, name)), "name": name} for name in roles],
        "expires_at": iso(token.expires_at, micro=True),
        "issued_at": iso(token.created, micro=True),
        "audit_ids": [token.pk.hex[:22]],
        "is_domain": False,
    }
    if with_catalog:
        body["catalog"] = catalog(request)
    return {"token": body}


def _check_domain(ref) -> None:
    """Only the Default domain exists; a reference to another one fails authentication."""
    if ref is None:
        return
    if not isinstance(ref, dict):
        raise InvalidInput("A domain must be an object with an id or a name.")
    if ref.get("id") not in (None, "default") or str(ref.get("name", "Default")).lower() != "default":
        raise NotAuthenticated("Zenith has one domain, Default: the domain named is unknown.")


def _password_identity(auth: dict) -> tuple[str, str]:
    identity = auth.get("identity")
    if not isinstance(identity, dict) or not isinstance(identity.get("methods"), list):
        raise InvalidInput("auth.identity.methods is required.")
    if "password" not in identity["methods"]:
        raise NotAuthenticated(
            "Only the password method is supported: authenticate with a user name and password."
        )
    user = (
        (identity.get("password") or {}).get("user") if isinstance(identity.get("password"), dict) else None
    )
    if not isinstance(user, dict) or not isinstance(user.get("password"), str):
        raise InvalidInput("auth.identity.password.user with a password is required.")
    _check_domain(user.get("domain"))
    username = user.get("name")
    if username is None and isinstance(user.get("id"), str):
        username = (
            User.objects.filter(pk=user["id"]).values_list("username", flat=True).first()
            if _is_uuid(user["id"])
            else None
        )
        if username is None:
            raise NotAuthenticated("Invalid username or password.")
    if not isinstance(username, str):
        raise InvalidInput("auth.identity.password.user needs a name or an id.")
    return username, user["password"]


def _is_uuid(value: str) -> bool:
    from ..scoping import is_uuid

    return is_uuid(value)


def _project_scope(auth: dict) -> str | None:
    scope = auth.get("scope")
    if scope in (None, "unscoped"):
        return None
    if not isinstance(scope, dict) or not isinstance(scope.get("project"), dict):
        raise InvalidInput("Only project scope is supported: scope.project with a name or an id.")
    project = scope["project"]
    _check_domain(project.get("domain"))
    ref = project.get("id") or project.get("name")
    if not isinstance(ref, str) or not ref:
        raise InvalidInput("scope.project needs a name or an id.")
    return ref


def issue(request, ctx):
    """``POST /identity/v3/auth/tokens``: password authentication; the token in ``X-Subject-Token``."""
    auth = json_body(request, "auth")
    username, password = _password_identity(auth)
    issued = services.issue_token(username=username, password=password, project=_project_scope(auth))
    token = ApiToken.objects.select_related("user", "project").get(pk=issued.record.pk)
    response = JsonResponse(_token_body(request, token, issued.roles), status=201)
    response["X-Subject-Token"] = issued.token
    return response


def _subject(request: HttpRequest) -> ApiToken:
    raw = (request.headers.get("X-Subject-Token") or "").strip()
    if not raw:
        raise InvalidInput("Name the token to check in X-Subject-Token.")
    try:
        return services.authenticate_token(raw)
    except NotAuthenticated:
        raise NotFound("The token could not be found (unknown, expired or revoked).") from None


def validate(request, ctx: Context):
    """``GET /identity/v3/auth/tokens``: the subject token's body (404 when it is not valid). A user
    checks their own tokens; cloud admins any."""
    token = _subject(request)
    if token.user_id != ctx.user.pk and not ctx.is_admin:
        raise NotFound("The token could not be found (unknown, expired or revoked).")
    roles = sorted(
        RoleAssignment.objects.filter(user=token.user, project=token.project).values_list(
            "role__name", flat=True
        )
    )
    response = JsonResponse(_token_body(request, token, roles, with_catalog="nocatalog" not in request.GET))
    response["X-Subject-Token"] = request.headers["X-Subject-Token"].strip()
    return response


def revoke(request, ctx: Context):
    """``DELETE /identity/v3/auth/tokens``: revoke the subject token (204)."""
    services.revoke_token(ctx, _subject(request))
    return empty(204)


def auth_catalog(request, ctx):
    """``GET /identity/v3/auth/catalog``."""
    return JsonResponse({"catalog": catalog(request), "links": {"self": _url(request, request.path)}})


def _project(project: Project) -> dict:
    return {
        "id": str(project.pk),
        "name": project.name,
        "description": project.description,
        "enabled": project.enabled,
        "domain_id": "default",
        "parent_id": "default",
        "is_domain": False,
        "tags": [],
        "options": {},
        "links": {"self": f"/identity/v3/projects/{project.pk}"},
    }


def _collection(request: HttpRequest, key: str, rows: list[dict]) -> JsonResponse:
    return JsonResponse(
        {key: rows, "links": {"self": _url(request, request.path), "next": None, "previous": None}}
    )


def _named(request: HttpRequest, rows, field: str = "name"):
    """``rows`` ordered by name, filtered by ``?name=`` (how the clients look a name up)."""
    rows = rows.order_by(field)
    return rows.filter(**{field: request.GET["name"]}) if request.GET.get("name") else rows


def projects(request, ctx: Context):
    """``GET /identity/v3/projects``: the projects the caller may see (every one for cloud admins)."""
    policy.enforce(ctx, "identity:project:list")
    rows = _named(request, Project.objects.visible_to(ctx))
    return _collection(request, "projects", [_project(p) for p in rows])


def project(request, ctx: Context, project_id: str):
    policy.enforce(ctx, "identity:project:show")
    return JsonResponse(
        {"project": _project(get_or_404(Project.objects.visible_to(ctx), "Project", pk=project_id))}
    )


def my_projects(request, ctx: Context):
    """``GET /identity/v3/auth/projects``: the projects the caller holds a role on."""
    rows = Project.objects.filter(role_assignments__user=ctx.user, enabled=True).distinct().order_by("name")
    return _collection(request, "projects", [_project(p) for p in rows])


def user_projects(request, ctx: Context, user_id: str):
    """``GET /identity/v3/users/{id}/projects``: your own, or any user's for cloud admins."""
    user = get_or_404(User.objects.visible_to(ctx), "User", pk=user_id)
    rows = Project.objects.filter(role_assignments__user=user).distinct().order_by("name")
    return _collection(request, "projects", [_project(p) for p in rows])


def _user_row(user: User) -> dict:
    return {
        "id": str(user.pk),
        "name": user.username,
        "email": user.email,
        "enabled": user.is_active,
        "domain_id": "default",
        "default_project_id": str(user.default_project_id) if user.default_project_id else None,
        "password_expires_at": None,
        "options": {},
        "links": {"self": f"/identity/v3/users/{user.pk}"},
    }


def users(request, ctx: Context):
    policy.enforce(ctx, "identity:user:list")
    rows = _named(request, User.objects.visible_to(ctx), "username")
    return _collection(request, "users", [_user_row(u) for u in rows])


def user(request, ctx: Context, user_id: str):
    return JsonResponse({"user": _user_row(get_or_404(User.objects.visible_to(ctx), "User", pk=user_id))})


def roles(request, ctx: Context):
    policy.enforce(ctx, "identity:role:list")
    rows = _named(request, Role.objects.visible_to(ctx))
    return _collection(
        request,
        "roles",
        [{"id": str(r.pk), "name": r.name, "domain_id": None, "description": r.description} for r in rows],
    )


def role_assignments(request, ctx: Context):
    """``GET /identity/v3/role_assignments``: yours, or everyone's for cloud admins
    (``user.id``, ``scope.project.id`` and ``role.id`` filters)."""
    policy.enforce(ctx, "identity:role_assignment:list")
    rows = (
        RoleAssignment.objects.visible_to(ctx).select_related("user", "project", "role").order_by("created")
    )
    for param, field in (("user.id", "user_id"), ("scope.project.id", "project_id"), ("role.id", "role_id")):
        value = request.GET.get(param)
        if value:
            if not _is_uuid(value):
                rows = rows.none()
                break
            rows = rows.filter(**{field: value})
    return _collection(
        request,
        "role_assignments",
        [
            {
                "user": {"id": str(a.user_id)},
                "role": {"id": str(a.role_id), "name": a.role.name},
                "scope": {"project": {"id": str(a.project_id), "name": a.project.name}},
                "links": {
                    "assignment": f"/identity/v3/projects/{a.project_id}/users/{a.user_id}/roles/{a.role_id}"
                },
            }
            for a in rows
        ],
    )


def domains(request, ctx: Context):
    return _collection(request, "domains", [{**DOMAIN, "enabled": True, "description": "", "links": {}}])


ID = r"(?P<{}>[^/]+)"

urlpatterns = [
    re_path(r"^$", endpoint(KEYSTONE, auth=False, get=versions)),
    re_path(r"^v3/?$", endpoint(KEYSTONE, auth=False, get=version)),
    re_path(
        r"^v3/auth/tokens$",
        endpoint(
            KEYSTONE,
            auth=False,  # POST authenticates by password; checking and revoking need a token
            post=issue,
            get=lambda request, _: validate(request, authenticate(request)),
            delete=lambda request, _: revoke(request, authenticate(request)),
        ),
    ),
    re_path(r"^v3/auth/catalog$", endpoint(KEYSTONE, get=auth_catalog)),
    re_path(r"^v3/auth/projects$", endpoint(KEYSTONE, get=my_projects)),
    re_path(r"^v3/projects$", endpoint(KEYSTONE, get=projects)),
    re_path(rf"^v3/projects/{ID.format('project_id')}$", endpoint(KEYSTONE, get=project)),
    re_path(r"^v3/users$", endpoint(KEYSTONE, get=users)),
    re_path(rf"^v3/users/{ID.format('user_id')}$", endpoint(KEYSTONE, get=user)),
    re_path(rf"^v3/users/{ID.format('user_id')}/projects$", endpoint(KEYSTONE, get=user_projects)),
    re_path(r"^v3/roles$", endpoint(KEYSTONE, get=roles)),
    re_path(r"^v3/role_assignments$", endpoint(KEYSTONE, get=role_assignments)),
    re_path(r"^v3/domains$", endpoint(KEYSTONE, get=domains)),
    re_path(r"^v3/.*$", not_found(KEYSTONE)),
]
