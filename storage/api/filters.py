"""Filters for storage lists."""

import django_filters

from ..models import Snapshot, Volume


class VolumeFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="iexact")
    name__icontains = django_filters.CharFilter(field_name="name", lookup_expr="icontains")
    status = django_filters.CharFilter(field_name="status")
    volume_type = django_filters.CharFilter(field_name="volume_type__name")

    class Meta:
        model = Volume
        fields = ["name", "status", "bootable", "volume_type"]


class SnapshotFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="iexact")
    volume = django_filters.UUIDFilter(field_name="volume_id")

    class Meta:
        model = Snapshot
        fields = ["name", "status", "volume"]
