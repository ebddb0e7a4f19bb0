"""Identity v3 (Keystone) at ``/identity``: version discovery, password authentication scoped to a
project by name or id, token validation and revocation, the service catalog, projects, users, roles
and role assignments, and (for cloud admins, through ``identity.services``) creating, changing and
deleting projects and users and granting and revoking roles on projects. A Keystone token is a
native API token (``identity.services.issue_token``): hashed, expiring, revocable, scoped to one
project.

Zenith has one domain, ``Default`` (id ``default``): every user and project is in it.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import re_path

from .. import policy, services
from ..context import Context
from ..errors import Conflict, InvalidInput, NotAuthenticated, NotFound, PolicyDenied
from ..models import ApiToken, Project, Role, RoleAssignment, User
from .http import KEYSTONE, authenticate, empty, endpoint, get_or_404, iso, json_body, not_found

DOMAIN = {"id": "default", "name": "Default"}
VERSION_UPDATED = "2020-04-07T00:00:00Z"

# The catalog: (service type, service name, path on this site). A service listed here that answers
# 404 would break the clients (quota show).
CATALOG = (
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/v2.1"),
    ("image", "glance", "/image"),
    ("block-storage", "cinder", "/volume/v3"),
    ("network", "neutron", "/network"),
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
    rows = [_project(p) for p in _named(request, Project.objects.visible_to(ctx))]
    if not rows and request.GET.get("name") and not ctx.is_admin:
        # Keystone lets only admins list projects; its own ones answer a member here, and a name
        # (or an id the clients pass as one) among them none of is Keystone's 403: the clients then
        # use what they were given as the id.
        raise PolicyDenied("You are not authorized to perform the requested action: identity:list_projects.")
    return _collection(request, "projects", rows)


def project(request, ctx: Context, project_id: str):
    """``GET /identity/v3/projects/{id}``: a project the caller holds a role on (every one for cloud
    admins). Another existing project answers 403, as Keystone's policy does, so the clients go on
    with the id they were given (``image add project``, ``flavor set --project``)."""
    policy.enforce(ctx, "identity:project:show")
    visible = Project.objects.visible_to(ctx).filter(pk=project_id).first() if _is_uuid(project_id) else None
    if visible is None:
        if _is_uuid(project_id) and Project.objects.filter(pk=project_id).exists():
            raise PolicyDenied(
                "You are not authorized to perform the requested action: identity:get_project."
            )
        raise NotFound(f"Could not find project: {project_id}.")
    return JsonResponse({"project": _project(visible)})


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
    return _collection(request, "roles", [_role_row(r) for r in rows])


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
    names = str(request.GET.get("include_names", "")).lower() in ("1", "true", "")
    names = names and "include_names" in request.GET

    def named(row: dict, name: str) -> dict:
        return {**row, "name": name, "domain": DOMAIN} if names else row

    return _collection(
        request,
        "role_assignments",
        [
            {
                "user": named({"id": str(a.user_id)}, a.user.username),
                "role": {"id": str(a.role_id), "name": a.role.name},
                "scope": {"project": named({"id": str(a.project_id)}, a.project.name)},
                "links": {
                    "assignment": f"/identity/v3/projects/{a.project_id}/users/{a.user_id}/roles/{a.role_id}"
                },
            }
            for a in rows
        ],
    )


def _domain() -> dict:
    return {**DOMAIN, "enabled": True, "description": "", "tags": [], "options": {}, "links": {}}


def domains(request, ctx: Context):
    name = request.GET.get("name")
    rows = [_domain()] if name in (None, "", DOMAIN["name"]) else []
    return _collection(request, "domains", rows)


def domain(request, ctx: Context, domain_id: str):
    """``GET /identity/v3/domains/{id}``: only ``default`` (a name answers 404, then the list)."""
    if domain_id != DOMAIN["id"]:
        raise NotFound(f"Could not find domain: {domain_id}.")
    return JsonResponse({"domain": _domain()})


# --- writes (cloud admins) ------------------------------------------------------------------------


def _text(body: dict, key: str, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string.")
    return value


def _flag(body: dict, key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(f"{key} must be true or false.")
    return value


def _check_unsupported(body: dict) -> None:
    """Keystone features Zenith does not keep: refused rather than dropped."""
    if body.get("domain_id") not in (None, "default"):
        raise InvalidInput("Zenith has one domain, Default (id default).")
    if body.get("parent_id") not in (None, "default"):
        raise InvalidInput("Zenith's projects are not nested: leave parent_id out.")
    if body.get("is_domain"):
        raise InvalidInput("Zenith has one domain: a project cannot be a domain.")
    if body.get("tags"):
        raise InvalidInput("Project tags are not kept by this cloud.")
    if any((body.get("options") or {}).values()):
        raise InvalidInput("Resource options are not supported by this cloud.")


def create_project(request, ctx: Context):
    """``POST /identity/v3/projects`` (``project create``): 201."""
    body = json_body(request, "project")
    _check_unsupported(body)
    created = services.create_project(
        ctx,
        name=_text(body, "name", required=True),
        description=_text(body, "description") or "",
        enabled=_flag(body, "enabled") is not False,
    )
    return JsonResponse({"project": _project(created)}, status=201)


def _admin_project(ctx: Context, project_id: str) -> Project:
    return get_or_404(Project.objects.visible_to(ctx), "Project", pk=project_id)


def update_project(request, ctx: Context, project_id: str):
    """``PATCH /identity/v3/projects/{id}`` (``project set``): name, description, enabled."""
    target = _admin_project(ctx, project_id)
    body = json_body(request, "project")
    _check_unsupported(body)
    updated = services.update_project(
        ctx,
        target,
        name=_text(body, "name"),
        description=_text(body, "description"),
        enabled=_flag(body, "enabled"),
    )
    return JsonResponse({"project": _project(updated)})


def delete_project(request, ctx: Context, project_id: str):
    """``DELETE /identity/v3/projects/{id}`` (``project delete``): 204; 409 while it has resources."""
    services.delete_project(ctx, _admin_project(ctx, project_id))
    return empty(204)


def _default_project(ctx: Context, body: dict) -> Project | None:
    value = body.get("default_project_id")
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("default_project_id must be a project id.")
    project = Project.objects.visible_to(ctx).filter(pk=value).first() if _is_uuid(value) else None
    if project is None:
        raise InvalidInput(f"default_project_id {value} is not a project of this cloud.")
    return project


def create_user(request, ctx: Context):
    """``POST /identity/v3/users`` (``user create --password ... [--project P] [--email E]``): 201."""
    body = json_body(request, "user")
    _check_unsupported(body)
    project = _default_project(ctx, body)
    created = services.create_user(
        ctx,
        username=_text(body, "name", required=True),
        password=_text(body, "password", required=True),
        email=_text(body, "email") or "",
    )
    if _flag(body, "enabled") is False:
        created = services.update_user(ctx, created, is_active=False)
    if project is not None:
        created = services.set_default_project(ctx, created, project)
    return JsonResponse({"user": _user_row(created)}, status=201)


def _admin_user(ctx: Context, user_id: str) -> User:
    return get_or_404(User.objects.visible_to(ctx), "User", pk=user_id)


def update_user(request, ctx: Context, user_id: str):
    """``PATCH /identity/v3/users/{id}`` (``user set``): email, password, enabled, default project
    (a user keeps their name: it is how they sign in)."""
    target = _admin_user(ctx, user_id)
    body = json_body(request, "user")
    _check_unsupported(body)
    name = _text(body, "name")
    if name is not None and name != target.username:
        raise InvalidInput("Users cannot be renamed in this cloud: create a new user instead.")
    project = _default_project(ctx, body)
    updated = services.update_user(
        ctx,
        target,
        email=_text(body, "email"),
        password=_text(body, "password"),
        is_active=_flag(body, "enabled"),
    )
    if project is not None:
        updated = services.set_default_project(ctx, updated, project)
    return JsonResponse({"user": _user_row(updated)})


def delete_user(request, ctx: Context, user_id: str):
    """``DELETE /identity/v3/users/{id}`` (``user delete``): 204."""
    services.delete_user(ctx, _admin_user(ctx, user_id))
    return empty(204)


def _role_row(role: Role) -> dict:
    return {
        "id": str(role.pk),
        "name": role.name,
        "domain_id": None,
        "description": role.description,
        "options": {},
        "links": {"self": f"/identity/v3/roles/{role.pk}"},
    }


def role(request, ctx: Context, role_id: str):
    """``GET /identity/v3/roles/{id}`` (a name answers 404, then the list with ``?name=``)."""
    policy.enforce(ctx, "identity:role:list")
    return JsonResponse({"role": _role_row(get_or_404(Role.objects.visible_to(ctx), "Role", pk=role_id))})


def _grant_parts(ctx: Context, project_id: str, user_id: str, role_id: str) -> tuple[Project, User, Role]:
    policy.enforce(ctx, "identity:role_assignment:list")
    return (
        get_or_404(Project.objects.visible_to(ctx), "Project", pk=project_id),
        get_or_404(User.objects.visible_to(ctx), "User", pk=user_id),
        get_or_404(Role.objects.visible_to(ctx), "Role", pk=role_id),
    )


def check_grant(request, ctx: Context, project_id: str, user_id: str, role_id: str):
    """``HEAD``/``GET .../projects/{p}/users/{u}/roles/{r}``: 204 when the user holds the role."""
    target, user, role = _grant_parts(ctx, project_id, user_id, role_id)
    if not RoleAssignment.objects.filter(project=target, user=user, role=role).exists():
        raise NotFound(f"{user.username} does not hold {role.name} on {target.name}.")
    return empty(204)


def grant(request, ctx: Context, project_id: str, user_id: str, role_id: str):
    """``PUT .../projects/{p}/users/{u}/roles/{r}`` (``role add --project --user``): 204, also when
    the user holds the role already (Keystone's grant is idempotent)."""
    target, user, role = _grant_parts(ctx, project_id, user_id, role_id)
    try:
        services.assign_role(ctx, user=user, project=target, role=role)
    except Conflict:
        if not RoleAssignment.objects.filter(project=target, user=user, role=role).exists():
            raise
    return empty(204)


def revoke_grant(request, ctx: Context, project_id: str, user_id: str, role_id: str):
    """``DELETE .../projects/{p}/users/{u}/roles/{r}`` (``role remove``): 204; 404 when not held."""
    target, user, role = _grant_parts(ctx, project_id, user_id, role_id)
    assignment = (
        RoleAssignment.objects.filter(project=target, user=user, role=role)
        .select_related("user", "project", "role")
        .first()
    )
    if assignment is None:
        raise NotFound(f"{user.username} does not hold {role.name} on {target.name}.")
    services.revoke_role(ctx, assignment)
    return empty(204)


def project_user_roles(request, ctx: Context, project_id: str, user_id: str):
    """``GET .../projects/{p}/users/{u}/roles``: the roles the user holds on the project."""
    policy.enforce(ctx, "identity:role_assignment:list")
    target = get_or_404(Project.objects.visible_to(ctx), "Project", pk=project_id)
    user = get_or_404(User.objects.visible_to(ctx), "User", pk=user_id)
    rows = Role.objects.filter(assignments__project=target, assignments__user=user).order_by("name")
    return _collection(request, "roles", [_role_row(r) for r in rows])


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
    re_path(r"^v3/projects$", endpoint(KEYSTONE, get=projects, post=create_project)),
    re_path(
        rf"^v3/projects/{ID.format('project_id')}$",
        endpoint(KEYSTONE, get=project, patch=update_project, delete=delete_project),
    ),
    re_path(
        rf"^v3/projects/{ID.format('project_id')}/users/{ID.format('user_id')}/roles$",
        endpoint(KEYSTONE, get=project_user_roles),
    ),
    re_path(
        rf"^v3/projects/{ID.format('project_id')}/users/{ID.format('user_id')}/roles/{ID.format('role_id')}$",
        endpoint(KEYSTONE, get=check_grant, put=grant, delete=revoke_grant),
    ),
    re_path(r"^v3/users$", endpoint(KEYSTONE, get=users, post=create_user)),
    re_path(
        rf"^v3/users/{ID.format('user_id')}$",
        endpoint(KEYSTONE, get=user, patch=update_user, delete=delete_user),
    ),
    re_path(rf"^v3/users/{ID.format('user_id')}/projects$", endpoint(KEYSTONE, get=user_projects)),
    re_path(r"^v3/roles$", endpoint(KEYSTONE, get=roles)),
    re_path(rf"^v3/roles/{ID.format('role_id')}$", endpoint(KEYSTONE, get=role)),
    re_path(r"^v3/role_assignments$", endpoint(KEYSTONE, get=role_assignments)),
    re_path(r"^v3/domains$", endpoint(KEYSTONE, get=domains)),
    re_path(rf"^v3/domains/{ID.format('domain_id')}$", endpoint(KEYSTONE, get=domain)),
    re_path(r"^v3/.*$", not_found(KEYSTONE)),
]
