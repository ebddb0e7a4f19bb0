"""Django admin for compute: flavors (with their project access inline), flavor access, hosts, images
and their members, instances (read-only: an instance's state changes only through compute.services,
which talk to its host; its action log is identity's audit trail)."""

from django.contrib import admin

from identity.admin import ReadOnlyAdmin

from .models import ComputeNode, Flavor, FlavorAccess, Image, ImageMember, Instance


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


@admin.register(ComputeNode)
class ComputeNodeAdmin(admin.ModelAdmin):
    """A host's compute capacity and the scheduler's claims (the host itself: the async plane's)."""

    list_display = [
        "host",
        "hypervisor_type",
        "vcpus",
        "vcpus_used",
        "memory_mb",
        "memory_mb_used",
        "disk_gb",
        "disk_gb_used",
    ]
    list_filter = ["hypervisor_type"]
    search_fields = ["host__name", "host__id"]
    list_select_related = ["host"]
    readonly_fields = ["host", "updated", "domains", "domains_reported_at"]


class ImageMemberInline(admin.TabularInline):
    model = ImageMember
    extra = 0
    autocomplete_fields = ["project"]


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "visibility", "disk_format", "size", "project", "protected", "created"]
    list_filter = ["status", "visibility", "disk_format", "protected"]
    search_fields = ["name", "id", "checksum", "project__name"]
    list_select_related = ["project"]
    readonly_fields = ["size", "checksum", "file", "created", "updated"]
    autocomplete_fields = ["project", "owner"]
    inlines = [ImageMemberInline]


@admin.register(ImageMember)
class ImageMemberAdmin(admin.ModelAdmin):
    list_display = ["image", "project", "status", "created", "updated"]
    list_filter = ["status", "project"]
    search_fields = ["image__name", "project__name"]
    list_select_related = ["image", "project"]
    autocomplete_fields = ["image", "project"]


@admin.register(Instance)
class InstanceAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "status",
        "vm_state",
        "task_state",
        "power_state",
        "project",
        "host",
        "flavor",
        "created",
    ]
    list_filter = ["vm_state", "task_state", "power_state", "locked", "host"]
    search_fields = ["name", "id", "project__name", "host__name"]
    list_select_related = ["project", "host", "flavor"]
