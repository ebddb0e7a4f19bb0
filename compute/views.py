"""Compute dashboard pages: the flavors and hypervisors admin pages."""

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from identity.dashboard import (
    admin_delete,
    admin_list_page,
    call_service,
    forbidden_unless,
    not_found,
    paginated,
)
from identity.errors import NotFound
from workers.models import Host

from . import services
from .forms import FlavorForm
from .models import Flavor
from .tables import FlavorTable, HostTable


@login_required
def admin_flavors(request):
    """Every flavor, with a form to define a new one."""
    ctx = request.zenith
    return admin_list_page(
        request,
        action="compute:flavor:create",
        form_class=FlavorForm,
        create=lambda data: services.create_flavor(ctx, **data),
        success=lambda data: f"Flavor {data['name']} created.",
        # By size: Meta.ordering is dropped from a GROUP BY query, so it is repeated here.
        queryset=Flavor.objects.visible_to(ctx)
        .annotate(projects=Count("access"))
        .order_by(*Flavor._meta.ordering),
        table_class=FlavorTable,
        title="Flavors",
        form_id="flavor-form",
        submit="Create flavor",
    )


@login_required
@require_POST
def admin_flavor_delete(request, pk):
    return admin_delete(
        request,
        action="compute:flavor:delete",
        queryset=Flavor.objects,
        pk=pk,
        delete=lambda flavor: services.delete_flavor(request.zenith, flavor),
        success=lambda flavor: f"Flavor {flavor.name} deleted.",
        back="compute:admin-flavors",
    )


@login_required
def admin_hosts(request):
    """Every compute host: up/down, enabled, capacity and usage; disable (with a reason) or enable."""
    if (denied := forbidden_unless(request, "compute:host:list")) is not None:
        return denied
    table = HostTable(services.host_rows(Host.objects.visible_to(request.zenith)))
    return render(request, "compute/admin_hosts.html", {"table": paginated(request, table)})


def _host_action(request, pk, action, change, success):
    if (denied := forbidden_unless(request, action)) is not None:
        return denied
    try:
        host = Host.objects.get_visible(request.zenith, pk=pk)
    except NotFound:
        return not_found(request)
    call_service(request, None, lambda: change(host), success(host))
    return redirect("compute:admin-hosts")


@login_required
@require_POST
def admin_host_disable(request, pk):
    return _host_action(
        request,
        pk,
        "compute:host:disable",
        lambda host: services.disable_host(request.zenith, host, request.POST.get("reason", "")),
        lambda host: f"Host {host.name} disabled.",
    )


@login_required
@require_POST
def admin_host_enable(request, pk):
    return _host_action(
        request,
        pk,
        "compute:host:enable",
        lambda host: services.enable_host(request.zenith, host),
        lambda host: f"Host {host.name} enabled.",
    )
