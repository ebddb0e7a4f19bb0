"""Django admin for identity: every model, searchable and filterable; object grants through guardian."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from guardian.admin import GuardedModelAdmin

from .models import ApiToken, KeyPair, Project, Quota, QuotaLock, ResourceAction, Role, RoleAssignment, User


class RoleAssignmentInline(admin.TabularInline):
    model = RoleAssignment
    extra = 0
    autocomplete_fields = ["user", "role"]


@admin.register(User)
class ZenithUserAdmin(UserAdmin):
    list_display = ["username", "email", "is_active", "is_superuser", "default_project", "date_joined"]
    list_filter = ["is_active", "is_superuser", "is_staff"]
    search_fields = ["username", "email"]
    fieldsets = [*UserAdmin.fieldsets, ("Zenith", {"fields": ["default_project"]})]


@admin.register(Project)
class ProjectAdmin(GuardedModelAdmin):
    list_display = ["name", "enabled", "description", "created"]
    list_filter = ["enabled"]
    search_fields = ["name", "description", "id"]
    inlines = [RoleAssignmentInline]


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ["name", "description"]
    search_fields = ["name"]


@admin.register(RoleAssignment)
class RoleAssignmentAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role", "created"]
    list_filter = ["role", "project"]
    search_fields = ["user__username", "project__name"]
    list_select_related = ["user", "project", "role"]


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = ["project", "resource", "limit"]
    list_filter = ["resource"]
    search_fields = ["project__name", "resource"]
    list_select_related = ["project"]


@admin.register(QuotaLock)
class QuotaLockAdmin(admin.ModelAdmin):
    list_display = ["project"]
    search_fields = ["project__name"]


@admin.register(KeyPair)
class KeyPairAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "fingerprint", "created"]
    list_filter = ["key_type"]
    search_fields = ["name", "user__username", "fingerprint"]
    list_select_related = ["user"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "project", "created", "expires_at", "revoked_at"]
    list_filter = ["project", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "user__username", "project__name"]
    readonly_fields = ["digest", "prefix", "created"]
    list_select_related = ["user", "project"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable and searchable; changed only through the services (and thereby the hosts)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ResourceAction)
class ResourceActionAdmin(ReadOnlyAdmin):
    """The audit trail, read-only: it is written by the services, never by hand."""

    list_display = ["resource_type", "resource_id", "action", "user", "project", "start_time", "result"]
    list_filter = ["resource_type", "action", "result"]
    search_fields = ["resource_id", "request_id", "user__username", "project__name", "message"]
    list_select_related = ["user", "project"]
