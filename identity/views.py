"""Identity dashboard pages: key pairs for everyone; projects, users and role assignments for admins."""

import django_tables2 as tables
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import services
from .dashboard import call_service, forbidden_unless
from .errors import NotFound
from .forms import KeyPairForm, ProjectForm, RoleAssignmentForm, UserForm
from .models import KeyPair, Project, RoleAssignment, User
from .tables import KeyPairTable, ProjectTable, RoleAssignmentTable, UserTable

PER_PAGE = 25


def _table(request, table):
    tables.RequestConfig(request, paginate={"per_page": PER_PAGE}).configure(table)
    return table


@login_required
def keypairs(request):
    """List your key pairs; import or generate one (a generated private key is shown exactly once)."""
    ctx = request.zenith
    form = KeyPairForm(request.POST or None)
    created = None
    if request.method == "POST":
        if (denied := forbidden_unless(request, "identity:keypair:create")) is not None:
            return denied
        if form.is_valid():
            created = call_service(
                request,
                form,
                lambda: services.create_keypair(ctx, **form.cleaned_data),
                success=f"Key pair {form.cleaned_data['name']} created.",
            )
            if created is not None and created.private_key is None:
                return redirect("identity:keypairs")
            if created is not None:
                form = KeyPairForm()
    table = _table(request, KeyPairTable(KeyPair.objects.visible_to(ctx)))
    return render(request, "identity/keypairs.html", {"table": table, "form": form, "created": created})


@login_required
@require_POST
def keypair_delete(request, pk):
    ctx = request.zenith
    try:
        keypair = KeyPair.objects.get_visible(ctx, pk=pk)
    except NotFound:
        return render(request, "portal/404.html", status=404)
    call_service(
        request, None, lambda: services.delete_keypair(ctx, keypair), f"Key pair {keypair.name} deleted."
    )
    return redirect("identity:keypairs")


@login_required
def admin_projects(request):
    ctx = request.zenith
    if (denied := forbidden_unless(request, "identity:project:create")) is not None:
        return denied
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        done = call_service(
            request,
            form,
            lambda: services.create_project(ctx, **form.cleaned_data),
            success=f"Project {form.cleaned_data['name']} created.",
        )
        if done is not None:
            return redirect("identity:admin-projects")
    queryset = Project.objects.visible_to(ctx).annotate(members=Count("role_assignments"))
    return render(
        request,
        "identity/admin_projects.html",
        {"table": _table(request, ProjectTable(queryset)), "form": form},
    )


@login_required
@require_POST
def admin_project_delete(request, pk):
    ctx = request.zenith
    if (denied := forbidden_unless(request, "identity:project:delete")) is not None:
        return denied
    try:
        project = Project.objects.get_visible(ctx, pk=pk)
    except NotFound:
        return render(request, "portal/404.html", status=404)
    call_service(
        request, None, lambda: services.delete_project(ctx, project), f"Project {project.name} deleted."
    )
    return redirect("identity:admin-projects")


@login_required
def admin_users(request):
    ctx = request.zenith
    if (denied := forbidden_unless(request, "identity:user:create")) is not None:
        return denied
    form = UserForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        done = call_service(
            request,
            form,
            lambda: services.create_user(ctx, **form.cleaned_data),
            success=f"User {form.cleaned_data['username']} created.",
        )
        if done is not None:
            return redirect("identity:admin-users")
    table = _table(request, UserTable(User.objects.visible_to(ctx)))
    return render(request, "identity/admin_users.html", {"table": table, "form": form})


@login_required
@require_POST
def admin_user_delete(request, pk):
    ctx = request.zenith
    if (denied := forbidden_unless(request, "identity:user:delete")) is not None:
        return denied
    try:
        user = User.objects.get_visible(ctx, pk=pk)
    except NotFound:
        return render(request, "portal/404.html", status=404)
    call_service(request, None, lambda: services.delete_user(ctx, user), f"User {user.username} deleted.")
    return redirect("identity:admin-users")


@login_required
def admin_roles(request):
    ctx = request.zenith
    if (denied := forbidden_unless(request, "identity:role_assignment:create")) is not None:
        return denied
    form = RoleAssignmentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        done = call_service(
            request,
            form,
            lambda: services.assign_role(ctx, **data),
            success=f"{data['user'].username} is now {data['role'].name} on {data['project'].name}.",
        )
        if done is not None:
            return redirect("identity:admin-roles")
    queryset = RoleAssignment.objects.visible_to(ctx).select_related("user", "project", "role")
    return render(
        request,
        "identity/admin_roles.html",
        {"table": _table(request, RoleAssignmentTable(queryset)), "form": form},
    )


@login_required
@require_POST
def admin_role_revoke(request, pk):
    ctx = request.zenith
    if (denied := forbidden_unless(request, "identity:role_assignment:delete")) is not None:
        return denied
    try:
        assignment = RoleAssignment.objects.select_related("user", "project", "role").get_visible(ctx, pk=pk)
    except NotFound:
        return render(request, "portal/404.html", status=404)
    call_service(request, None, lambda: services.revoke_role(ctx, assignment), "Role assignment removed.")
    return redirect("identity:admin-roles")
