"""Django admin for compute: flavors (with their project access inline) and flavor access."""

from django.contrib import admin

from .models import Flavor, FlavorAccess


class FlavorAccessInline(admin.TabularInline):
    model = FlavorAccess
    extra = 0
    autocomplete_fields = ["project"]


@admin.register(Flavor)
class FlavorAdmin(admin.ModelAdmin):
    list_display = ["name", "vcpus", "ram_mb", "disk_gb", "ephemeral_gb", "swap_mb", "is_public", "disabled"]
    list_filter = ["is_public", "disabled", "vcpus"]
    search_fields = ["name", "description", "id"]
    readonly_fields = ["created"]
    inlines = [FlavorAccessInline]


@admin.register(FlavorAccess)
class FlavorAccessAdmin(admin.ModelAdmin):
    list_display = ["flavor", "project", "created"]
    list_filter = ["project"]
    search_fields = ["flavor__name", "project__name"]
    list_select_related = ["flavor", "project"]
    autocomplete_fields = ["flavor", "project"]
