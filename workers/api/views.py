"""Operations API: the ledger as the caller's project sees it."""

import django_filters
from rest_framework import mixins

from identity.api.base import ScopedViewSet

from ..models import Operation
from .serializers import OperationSerializer


class OperationFilterSet(django_filters.FilterSet):
    class Meta:
        model = Operation
        fields = ["state", "kind", "resource_type", "resource_id"]


class OperationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Asynchronous operations of your project: state, progress and message."""

    model = Operation
    policy_prefix = "workers:operation"
    serializer_class = OperationSerializer
    filterset_class = OperationFilterSet
    ordering_fields = ["created", "updated"]
