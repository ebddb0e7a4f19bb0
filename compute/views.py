"""Compute dashboard pages: the flavors admin page."""

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.views.decorators.http import require_POST

from identity.dashboard import admin_delete, admin_list_page

from . import services
from .forms import FlavorForm
from .models import Flavor
from .tables import FlavorTable


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
        queryset=Flavor.objects.visible_to(ctx).annotate(projects=Count("access")),
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
