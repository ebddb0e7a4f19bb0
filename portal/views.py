"""Dashboard shell: overview with quota usage, project switcher, the project's operations, and the
redirects from the dashboard's old paths."""

import django_tables2 as tables
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponsePermanentRedirect, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from identity import policy, quotas
from identity.dashboard import DATETIME_FORMAT, paginated
from identity.middleware import SESSION_PROJECT_KEY
from identity.models import Project
from identity.scoping import is_uuid
from workers.dashboard import resource_names, resources_named
from workers.lifecycle import action_label, message_shown, shows_hosts
from workers.models import Operation


@login_required
def overview(request):
    """The project's quota usage: limit, in use, remaining, per resource."""
    ctx = request.zenith
    rows = quotas.summary(ctx.project, request.user) if ctx.project else []
    return render(request, "portal/overview.html", {"quota_rows": rows})


@login_required
@require_POST
def switch_project(request):
    """Make another project (one the user holds a role on) the current one for this session."""
    project = (
        Project.objects.filter(
            pk=request.POST.get("project") or None, role_assignments__user=request.user, enabled=True
        ).first()
        if is_uuid(request.POST.get("project"))
        else None
    )
    if project is None:
        messages.error(request, "You have no role on that project.")
    else:
        request.session[SESSION_PROJECT_KEY] = str(project.pk)
        messages.success(request, f"Switched to project {project.name}.")
    target = request.POST.get("next") or reverse("overview")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("overview")
    return HttpResponseRedirect(target)


class OperationTable(tables.Table):
    kind = tables.Column()
    resource = tables.Column(empty_values=(), orderable=False, verbose_name="Resource")
    project = tables.Column(accessor="project__name", verbose_name="Project", default="—")
    state = tables.TemplateColumn(template_name="portal/_operation_state.html")
    progress = tables.TemplateColumn(template_name="portal/_operation_progress.html", orderable=False)
    message = tables.Column(orderable=False)
    created = tables.DateTimeColumn(format=DATETIME_FORMAT)

    class Meta:
        model = Operation
        fields = ("kind", "resource", "project", "state", "progress", "message", "created")
        attrs = {"class": "table table-sm table-hover align-middle"}
        order_by = "-created"
        empty_text = "No operations yet: launching, stopping or deleting a resource starts one."

    def __init__(self, data, *, ctx, **kwargs):
        super().__init__(data, **kwargs)
        self.ctx = ctx
        self.hosts_shown = shows_hosts(ctx)
        self._names = None

    def render_resource(self, record):
        if record.resource_id is None:
            return "—"
        if self._names is None:  # the page's resources, named in one query per type
            self._names = resource_names(self.ctx, (row.record for row in self.page.object_list))
        found = self._names.get((record.resource_type, str(record.resource_id)))
        if found is None:  # gone, or a kind this caller is not shown
            return format_html(
                '{} <code class="small text-secondary">{}</code>',
                record.resource_type,
                str(record.resource_id)[:8],
            )
        name, url = found
        return format_html(
            '<a href="{}" data-resource="{}">{}</a> <span class="small text-secondary">{}</span>',
            url,
            record.resource_id,
            name,
            record.resource_type,
        )

    def render_kind(self, record):
        # The action as its button names it, then the operation's kind as the API reports it.
        resource, _dot, action = record.kind.partition(".")
        return format_html(
            '{} <code class="small text-secondary">{}</code>',
            action_label(record.resource_type or resource, action or resource),
            record.kind,
        )

    def render_message(self, value):
        return message_shown(value, self.hosts_shown)


class OperationFilterForm(forms.Form):
    """The operations page's filters: kind (``instance`` or ``instance.reboot``), state, resource
    (its id or name)."""

    kind = forms.RegexField(regex=r"^[a-z_]{1,32}(\.[a-z_]{1,32})?$", required=False, max_length=64)
    state = forms.ChoiceField(choices=[("", "any state"), *Operation.STATES], required=False)
    resource = forms.CharField(required=False, max_length=255, strip=True)

    error_messages = {"kind": "A kind is a resource type, or type.action (e.g. instance.reboot)."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].error_messages["invalid"] = self.error_messages["kind"]

    def apply(self, ctx, queryset):
        data = self.cleaned_data
        if data.get("kind"):
            kind = data["kind"]
            queryset = (
                queryset.filter(kind=kind) if "." in kind else queryset.filter(kind__startswith=f"{kind}.")
            )
        if data.get("state"):
            queryset = queryset.filter(state=data["state"])
        if data.get("resource"):
            ref = data["resource"]
            ids = [ref] if is_uuid(ref) else resources_named(ctx, ref)
            queryset = queryset.filter(resource_id__in=ids)
        return queryset


@login_required
def operations(request):
    """The project's asynchronous operations, newest first; cloud admins may see every project's."""
    ctx = request.zenith
    if not policy.check(ctx, "workers:operation:list"):
        return render(request, "portal/forbidden.html", status=403)
    all_projects = ctx.is_admin and request.GET.get("all") == "1"
    queryset = (
        Operation.objects.across_projects(ctx).select_related("project")
        if all_projects
        else Operation.objects.visible_to(ctx)
    )
    filters = OperationFilterForm(request.GET or None)
    if filters.is_valid():
        queryset = filters.apply(ctx, queryset)
    elif filters.is_bound:
        queryset = queryset.none()  # a bad filter shows its message, never every operation as if unfiltered
    table = OperationTable(queryset, ctx=ctx, exclude=() if all_projects else ("project",))
    paginated(request, table)
    context = {"table": table, "all_projects": all_projects, "filters": filters}
    return render(request, "portal/operations.html", context)


def home(request):
    return redirect("overview" if request.user.is_authenticated else "login")


# The keyword argument by which portal.urls tells `moved` the URL name of the page's new place.
MOVED_TO = "moved_to"


class HttpResponsePermanentRedirectKeepMethod(HttpResponsePermanentRedirect):
    """308 Permanent Redirect: as 301, but the client repeats the request's method and body."""

    status_code = 308


def moved(request, **kwargs):
    """A page's old path: a permanent redirect to its new one, with the same captured values and
    query string. 301 for GET and HEAD; 308 otherwise, so that a form posted from a page loaded
    before the move is sent again, as a POST, to the new place."""
    url = reverse(kwargs.pop(MOVED_TO), kwargs=kwargs)
    if query := request.META.get("QUERY_STRING"):
        url = f"{url}?{query}"
    if request.method in ("GET", "HEAD"):
        return HttpResponsePermanentRedirect(url)
    return HttpResponsePermanentRedirectKeepMethod(url)
