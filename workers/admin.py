from django.contrib import admin

from .models import Host, Operation


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = [
        "kind",
        "state",
        "progress",
        "project",
        "resource_type",
        "resource_id",
        "send_count",
        "created",
        "deadline",
    ]
    list_filter = ["state", "kind", "resource_type"]
    search_fields = ["id", "kind", "resource_id", "message", "request_id"]
    readonly_fields = ["created", "updated"]
    list_select_related = ["project"]


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    """Hosts register through their agents' heartbeats; admins disable them from the dashboard."""

    list_display = ["name", "roles", "state", "enabled", "availability_zone", "last_heartbeat"]
    list_filter = ["enabled", "availability_zone"]
    search_fields = ["name", "uri", "id"]
    readonly_fields = ["created", "updated", "last_heartbeat"]
