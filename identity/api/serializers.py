"""Identity API shapes. Validation of meaning lives in identity.services; these check types only."""

from django.utils import timezone
from rest_framework import serializers

from ..models import ApiToken, KeyPair, Project, ResourceAction, Role, RoleAssignment, User
from .strict import StrictBooleanField, StrictCharField, StrictModelSerializer, StrictSerializer


class RefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class TokenRequestSerializer(StrictSerializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=4096, trim_whitespace=False)
    project = StrictCharField(
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="project name or id; your default project when omitted",
    )


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()
    user = RefSerializer()
    project = RefSerializer()
    roles = serializers.ListField(child=serializers.CharField())


class ProjectSerializer(StrictModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "description", "enabled", "created"]
        read_only_fields = ["id", "created"]
        extra_kwargs = {"name": {"validators": []}, "description": {"required": False}}


class UserSerializer(StrictModelSerializer):
    password = StrictCharField(write_only=True, required=False, max_length=4096, trim_whitespace=False)
    is_admin = StrictBooleanField(source="is_superuser", required=False)

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "email",
            "is_active",
            "is_admin",
            "default_project",
            "date_joined",
            "password",
        ]
        read_only_fields = ["id", "date_joined", "default_project"]
        extra_kwargs = {"username": {"validators": []}}


class RoleSerializer(serializers.ModelSerializer):
    class Meta:
        model = Role
        fields = ["id", "name", "description"]


class RoleAssignmentSerializer(StrictModelSerializer):
    user = serializers.PrimaryKeyRelatedField(queryset=User.objects.all())
    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.all())
    role = serializers.SlugRelatedField(slug_field="name", queryset=Role.objects.all())
    user_name = serializers.CharField(source="user.username", read_only=True)
    project_name = serializers.CharField(source="project.name", read_only=True)

    class Meta:
        model = RoleAssignment
        fields = ["id", "user", "user_name", "project", "project_name", "role", "created"]
        read_only_fields = ["id", "created"]
        validators = []


class QuotaRowSerializer(serializers.Serializer):
    resource = serializers.CharField()
    limit = serializers.IntegerField()
    in_use = serializers.IntegerField()
    remaining = serializers.IntegerField(allow_null=True)


class QuotaSetSerializer(serializers.Serializer):
    """Body of PUT quotas: ``{"instances": 20, "cores": 40, ...}``; -1 means unlimited."""

    def to_internal_value(self, data):
        if not isinstance(data, dict) or not data:
            # Keyed: Serializer.errors must be a dict, a bare message here made is_valid() crash (500).
            raise serializers.ValidationError(
                {"non_field_errors": ['Send an object of resource: limit, e.g. {"instances": 20}.']}
            )
        return data


class KeyPairSerializer(StrictModelSerializer):
    public_key = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=16384,
        help_text="OpenSSH public key to import; omit to generate a pair",
    )
    key_type = serializers.ChoiceField(
        choices=["ed25519", "rsa"],
        default="ed25519",
        write_only=True,
        help_text="type of key to generate when no public_key is given",
    )

    class Meta:
        model = KeyPair
        fields = ["id", "name", "public_key", "fingerprint", "key_type", "created"]
        read_only_fields = ["id", "fingerprint", "created"]
        extra_kwargs = {"name": {"max_length": 255}}
        validators = []


class CreatedKeyPairSerializer(KeyPairSerializer):
    private_key = serializers.CharField(
        read_only=True, allow_null=True, help_text="returned once, when the pair was generated"
    )

    class Meta(KeyPairSerializer.Meta):
        fields = [*KeyPairSerializer.Meta.fields, "private_key"]


class ApiTokenSerializer(serializers.ModelSerializer):
    """One of the caller's API tokens: never the token itself (only its digest is stored)."""

    project_name = serializers.CharField(source="project.name", read_only=True)
    current = serializers.SerializerMethodField(help_text="the token this request is authenticated with")
    active = serializers.SerializerMethodField(help_text="neither revoked nor expired")

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "prefix",
            "project",
            "project_name",
            "created",
            "expires_at",
            "revoked_at",
            "active",
            "current",
        ]
        read_only_fields = fields

    def get_current(self, obj) -> bool:
        auth = getattr(self.context.get("request"), "auth", None)
        return isinstance(auth, ApiToken) and auth.pk == obj.pk

    def get_active(self, obj) -> bool:
        return obj.revoked_at is None and obj.expires_at > timezone.now()


class ResourceActionSerializer(serializers.ModelSerializer):
    """One record of the audit trail: who asked for what on which resource, when, and how it ended."""

    user = serializers.CharField(source="user.username", default=None, read_only=True)
    operation = serializers.UUIDField(source="operation_id", read_only=True, allow_null=True)
    project = serializers.UUIDField(source="project_id", read_only=True, allow_null=True)

    class Meta:
        model = ResourceAction
        fields = [
            "id",
            "resource_type",
            "resource_id",
            "project",
            "action",
            "user",
            "request_id",
            "operation",
            "start_time",
            "finish_time",
            "result",
            "message",
        ]
        read_only_fields = fields
