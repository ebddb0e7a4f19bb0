"""Filters for compute lists."""

import django_filters

from workers.models import Host

from ..models import Flavor, Instance


class FlavorFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="iexact")
    min_vcpus = django_filters.NumberFilter(field_name="vcpus", lookup_expr="gte")
    min_ram_mb = django_filters.NumberFilter(field_name="ram_mb", lookup_expr="gte")
    min_disk_gb = django_filters.NumberFilter(field_name="disk_gb", lookup_expr="gte")

    class Meta:
        model = Flavor
        fields = ["name", "is_public", "disabled", "min_vcpus", "min_ram_mb", "min_disk_gb"]


class HostFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Host
        fields = ["name", "enabled", "availability_zone"]


class InstanceFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="exact")
    name__icontains = django_filters.CharFilter(field_name="name", lookup_expr="icontains")
    tag = django_filters.CharFilter(
        method="has_tags", help_text="comma-separated: instances with all of them"
    )

    class Meta:
        model = Instance
        fields = ["name", "vm_state", "task_state"]

    def has_tags(self, queryset, name, value):
        for tag in (t for t in value.split(",") if t):
            queryset = queryset.filter(tags__has_item=tag)
        return queryset
