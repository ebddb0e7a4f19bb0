"""Shared API plumbing: the scoped base viewset and the context accessor."""

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from rest_framework import viewsets

from .. import policy
from ..context import Context
from ..errors import NotAuthenticated, NotFound


def context_of(request) -> Context:
    """The Context the authentication attached to the request (token or session)."""
    ctx = getattr(request._request if hasattr(request, "_request") else request, "zenith", None)
    if ctx is None or ctx.user is None:
        raise NotAuthenticated("Authentication credentials were not provided.")
    return ctx


class CallerInContext:
    """A viewset whose serializers see the caller's Context as ``context["ctx"]`` (for ``allowed_once``)."""

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["ctx"] = self.ctx
        return context


def allowed_once(serializer, action: str) -> bool:
    """Whether the caller (``context["ctx"]``) may ``action``, decided once per response on the root
    serializer, not per row (the policy check is the same for every row)."""
    root = serializer.parent if serializer.parent is not None else serializer
    memo = root.__dict__.setdefault("_zenith_allowed", {})
    if action not in memo:
        ctx = serializer.context.get("ctx")
        memo[action] = ctx is not None and ctx.can(action)
    return memo[action]


class ServiceWrites:
    """A viewset's writes go to its app's services: it names them (``create_service =
    staticmethod(services.create_flavor)``; the service takes the Context first, then the validated
    fields, or the object), and never saves a model itself."""

    create_service = None
    update_service = None
    delete_service = None

    def perform_create(self, serializer):
        serializer.instance = self.create_service(self.ctx, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = self.update_service(self.ctx, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        self.delete_service(self.ctx, instance)


class ScopedViewSet(viewsets.GenericViewSet):
    """Base for every resource viewset: the queryset is always ``Model.objects.visible_to(ctx)``.

    Subclasses set ``model`` and may override ``scope_queryset`` to add select/prefetch; they never
    build a queryset that skips ``visible_to``.
    """

    model = None
    # e.g. "compute:flavor": list enforces "compute:flavor:list"; retrieve, once the object is found
    # (so an invisible one is 404 first), enforces "compute:flavor:show".
    policy_prefix: str | None = None
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"

    @property
    def ctx(self) -> Context:
        return context_of(self.request)

    def scope_queryset(self, queryset):
        return queryset

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.model.objects.none()
        return self.scope_queryset(self.model.objects.visible_to(self.ctx))

    def get_object(self):
        value = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        try:
            obj = self.get_queryset().get(**{self.lookup_field: value})
        except (ObjectDoesNotExist, ValueError, ValidationError):
            raise NotFound(f"No such {self.model._meta.verbose_name}.") from None
        self.check_object_permissions(self.request, obj)
        if self.policy_prefix and self.action == "retrieve":
            policy.enforce(self.ctx, f"{self.policy_prefix}:show")
        return obj

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if self.policy_prefix and self.action == "list":
            policy.enforce(self.ctx, f"{self.policy_prefix}:list")
