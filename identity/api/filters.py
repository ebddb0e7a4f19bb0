"""Filters for identity lists."""

import django_filters

from ..models import KeyPair, Project, ResourceAction, RoleAssignment, User


class ProjectFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Project
        fields = ["name", "enabled"]


class UserFilterSet(django_filters.FilterSet):
    username = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = User
        fields = ["username", "is_active"]


class RoleAssignmentFilterSet(django_filters.FilterSet):
    # Plain UUID filters, not model choices: "no such user" (400) vs "none of yours" (empty 200)
    # would tell a caller which ids exist in other projects.
    user = django_filters.UUIDFilter(field_name="user_id")
    project = django_filters.UUIDFilter(field_name="project_id")
    role = django_filters.CharFilter(field_name="role__name")

    class Meta:
        model = RoleAssignment
        fields = ["user", "project", "role"]


class KeyPairFilterSet(django_filters.FilterSet):
    class Meta:
        model = KeyPair
        fields = ["name"]


class ResourceActionFilterSet(django_filters.FilterSet):
    """The audit trail of one resource (``?resource_type=flavor&resource_id=``), one kind, one user's
    or one request's actions."""

    resource_type = django_filters.CharFilter()
    resource_id = django_filters.UUIDFilter()
    action = django_filters.CharFilter()
    user = django_filters.UUIDFilter(field_name="user_id")
    project = django_filters.UUIDFilter(field_name="project_id")
    request_id = django_filters.CharFilter()
    operation = django_filters.UUIDFilter(field_name="operation_id")

    class Meta:
        model = ResourceAction
        fields = [
            "resource_type",
            "resource_id",
            "action",
            "user",
            "project",
            "request_id",
            "operation",
            "result",
        ]
