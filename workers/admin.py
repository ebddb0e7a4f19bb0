from django.contrib import admin

from .models import Operation


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
