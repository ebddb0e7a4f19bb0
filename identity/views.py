"""Identity dashboard pages: key pairs for everyone; projects, users and role assignments for admins."""

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import services
from .dashboard import admin_delete, admin_list_page, call_service, forbidden_unless, not_found, paginated
from .errors import NotFound
from .forms import KeyPairForm, ProjectForm, RoleAssignmentForm, UserForm
from .models import KeyPair, Project, RoleAssignment, User
from .tables import KeyPairTable, ProjectTable, RoleAssignmentTable, UserTable


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
    table = paginated(request, KeyPairTable(KeyPair.objects.visible_to(ctx)))
    return render(request, "identity/keypairs.html", {"table": table, "form": form, "created": created})


@login_required
@require_POST
def keypair_delete(request, pk):
    ctx = request.zenith
    try:
        keypair = KeyPair.objects.get_visible(ctx, pk=pk)
    except NotFound:
        return not_found(request)
    call_service(
        request, None, lambda: services.delete_keypair(ctx, keypair), f"Key pair {keypair.name} deleted."
    )
    return redirect("identity:keypairs")


@login_required
def admin_projects(request):
    ctx = request.zenith
    return admin_list_page(
        request,
        action="identity:project:create",
        form_class=ProjectForm,
        create=lambda data: services.create_project(ctx, **data),
        success=lambda data: f"Project {data['name']} created.",
        queryset=Project.objects.visible_to(ctx).annotate(members=Count("role_assignments")),
        table_class=ProjectTable,
        title="Projects",
        form_id="project-form",
        submit="Create project",
    )


@login_required
@require_POST
def admin_project_delete(request, pk):
    return admin_delete(
        request,
        action="identity:project:delete",
        queryset=Project.objects,
        pk=pk,
        delete=lambda project: services.delete_project(request.zenith, project),
        success=lambda project: f"Project {project.name} deleted.",
        back="identity:admin-projects",
    )


@login_required
def admin_users(request):
    ctx = request.zenith
    return admin_list_page(
        request,
        action="identity:user:create",
        form_class=UserForm,
        create=lambda data: services.create_user(ctx, **data),
        success=lambda data: f"User {data['username']} created.",
        queryset=User.objects.visible_to(ctx),
        table_class=UserTable,
        title="Users",
        form_id="user-form",
        submit="Create user",
    )


@login_required
@require_POST
def admin_user_delete(request, pk):
    return admin_delete(
        request,
        action="identity:user:delete",
        queryset=User.objects,
        pk=pk,
        delete=lambda user: services.delete_user(request.zenith, user),
        success=lambda user: f"User {user.username} deleted.",
        back="identity:admin-users",
    )


@login_required
def admin_roles(request):
    ctx = request.zenith
    return admin_list_page(
        request,
        action="identity:role_assignment:create",
        form_class=RoleAssignmentForm,
        create=lambda data: services.assign_role(ctx, **data),
        success=lambda data: f"{data['user'].username} is now {data['role'].name} on {data['project'].name}.",
        queryset=RoleAssignment.objects.visible_to(ctx).select_related("user", "project", "role"),
        table_class=RoleAssignmentTable,
        title="Role assignments",
        form_id="assignment-form",
        submit="Assign role",
    )


@login_required
@require_POST
def admin_role_revoke(request, pk):
    return admin_delete(
        request,
        action="identity:role_assignment:delete",
        queryset=RoleAssignment.objects.select_related("user", "project", "role"),
        pk=pk,
        delete=lambda assignment: services.revoke_role(request.zenith, assignment),
        success=lambda assignment: "Role assignment removed.",
        back="identity:admin-roles",
    )
