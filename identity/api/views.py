"""Identity API: tokens, projects, users, roles, role assignments, quotas, key pairs, the audit trail."""

from django.db.models.deletion import ProtectedError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import policy, quotas, services
from ..context import build_context
from ..errors import Conflict, InvalidInput
from ..models import ApiToken, KeyPair, Project, ResourceAction, Role, RoleAssignment, User
from . import filters, serializers
from .base import ScopedViewSet, ServiceWrites, context_of


class TokenView(APIView):
    """Issue (POST) or revoke (DELETE) a project-scoped API token."""

    def _issuing(self) -> bool:
        return self.request is not None and self.request.method == "POST"

    def get_authenticators(self):
        return [] if self._issuing() else super().get_authenticators()

    def get_permissions(self):
        return [AllowAny()] if self._issuing() else super().get_permissions()

    @extend_schema(
        request=serializers.TokenRequestSerializer,
        responses={201: serializers.TokenResponseSerializer},
        auth=[],
    )
    def post(self, request):
        body = serializers.TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        issued = services.issue_token(**body.validated_data, address=request.META.get("REMOTE_ADDR"))
        token = issued.record
        return Response(
            {
                "token": issued.token,
                "expires_at": token.expires_at,
                "user": {"id": token.user.pk, "name": token.user.username},
                "project": {"id": token.project.pk, "name": token.project.name},
                "roles": issued.roles,
            },
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        if not isinstance(request.auth, ApiToken):
            raise InvalidInput("Send the token to revoke as 'Authorization: Bearer <token>'.")
        services.revoke_token(context_of(request), request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProjectViewSet(
    ServiceWrites,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    ScopedViewSet,
):
    """Projects: everyone lists those they hold a role on; cloud admins see and manage all."""

    model = Project
    policy_prefix = "identity:project"
    serializer_class = serializers.ProjectSerializer
    filterset_class = filters.ProjectFilterSet
    ordering_fields = ["name", "created"]

    create_service = staticmethod(services.create_project)
    update_service = staticmethod(services.update_project)
    delete_service = staticmethod(services.delete_project)

    @extend_schema(request=None, responses=serializers.QuotaRowSerializer(many=True), methods=["GET"])
    @extend_schema(
        request=serializers.QuotaSetSerializer,
        responses=serializers.QuotaRowSerializer(many=True),
        methods=["PUT"],
    )
    @action(detail=True, methods=["get", "put"], url_path="quotas", pagination_class=None, filter_backends=[])
    def quotas(self, request, pk=None):
        """Limit, in use and remaining per resource; admins change limits with PUT."""
        project = self.get_object()
        if request.method == "PUT":
            body = serializers.QuotaSetSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            services.set_quotas(self.ctx, project, body.validated_data)
        else:
            policy.enforce(build_context(self.ctx.user, project, self.ctx.request_id), "identity:quota:show")
        return Response(quotas.summary(project, self.ctx.user))


class UserViewSet(
    ServiceWrites,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    ScopedViewSet,
):
    """Users: admins manage every account; others see only themselves."""

    model = User
    serializer_class = serializers.UserSerializer
    filterset_class = filters.UserFilterSet
    ordering_fields = ["username", "date_joined"]

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.create_user(
            self.ctx,
            username=data["username"],
            password=data.get("password", ""),
            email=data.get("email", ""),
            is_superuser=data.get("is_superuser", False),
        )

    def perform_update(self, serializer):
        data = serializer.validated_data
        if "username" in data and data["username"] != serializer.instance.username:
            raise Conflict("Usernames cannot be changed.")
        serializer.instance = services.update_user(
            self.ctx,
            serializer.instance,
            email=data.get("email"),
            password=data.get("password"),
            is_active=data.get("is_active"),
            is_superuser=data.get("is_superuser"),
        )

    delete_service = staticmethod(services.delete_user)


class RoleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """The roles that can be assigned (admin, member, reader)."""

    model = Role
    serializer_class = serializers.RoleSerializer


class RoleAssignmentViewSet(
    ServiceWrites,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    ScopedViewSet,
):
    """Who holds which role on which project; admins assign and revoke."""

    model = RoleAssignment
    serializer_class = serializers.RoleAssignmentSerializer
    filterset_class = filters.RoleAssignmentFilterSet

    def scope_queryset(self, queryset):
        return queryset.select_related("user", "project", "role")

    def create(self, request, *args, **kwargs):
        # Refuse before validating: otherwise 400 "object does not exist" vs 403 tells a non-admin
        # which user and project ids exist.
        policy.enforce(self.ctx, "identity:role_assignment:create")
        return super().create(request, *args, **kwargs)

    create_service = staticmethod(services.assign_role)

    def perform_destroy(self, instance):
        try:
            services.revoke_role(self.ctx, instance)
        except ProtectedError:
            raise Conflict("The role assignment is in use.") from None


class KeyPairViewSet(
    ServiceWrites,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    ScopedViewSet,
):
    """Your SSH key pairs: import a public key, or generate a pair (the private key is returned once)."""

    model = KeyPair
    serializer_class = serializers.KeyPairSerializer
    filterset_class = filters.KeyPairFilterSet
    ordering_fields = ["name", "created"]

    @extend_schema(responses={201: serializers.CreatedKeyPairSerializer})
    def create(self, request, *args, **kwargs):
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        created = services.create_keypair(self.ctx, **body.validated_data)
        out = serializers.CreatedKeyPairSerializer(created.keypair).data
        out["private_key"] = created.private_key
        return Response(out, status=status.HTTP_201_CREATED)

    delete_service = staticmethod(services.delete_keypair)


class ApiTokenViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ScopedViewSet
):
    """Your own API tokens, on every project (newest first): see which exist, revoke any of them
    (DELETE). The token strings themselves are never shown again."""

    model = ApiToken
    policy_prefix = "identity:token"
    serializer_class = serializers.ApiTokenSerializer
    ordering_fields = ["created", "expires_at"]

    def scope_queryset(self, queryset):
        return queryset.select_related("project")

    def perform_destroy(self, instance):
        services.revoke_token(self.ctx, instance)


class ResourceActionViewSet(mixins.ListModelMixin, ScopedViewSet):
    """Cloud admins: the audit trail of every resource, newest first (who asked for what, when, and how
    it ended): ``?resource_type=flavor&resource_id=<id>`` for one flavor, host, image, project, user,
    role assignment, quota (by project id) or instance."""

    model = ResourceAction
    policy_prefix = "identity:action"
    serializer_class = serializers.ResourceActionSerializer
    filterset_class = filters.ResourceActionFilterSet
    ordering_fields = ["start_time"]

    def scope_queryset(self, queryset):
        return queryset.select_related("user")
