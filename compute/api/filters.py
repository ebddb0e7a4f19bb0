"""Filters for compute lists."""

import django_filters

from workers.models import Host

from ..models import Flavor


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
