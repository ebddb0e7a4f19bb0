"""Users, projects, roles, role assignments, quotas, key pairs and API tokens."""

import uuid

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .scoping import (
    AdminOnlyQuerySet,
    ProjectQuerySet,
    RoleAssignmentQuerySet,
    RoleQuerySet,
    UserOwnedQuerySet,
    UserQuerySet,
)


class ZenithUserManager(UserManager.from_queryset(UserQuerySet)):
    pass


class User(AbstractUser):
    """A person or service account. Cloud admins are superusers or hold `admin` on the admin project."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    default_project = models.ForeignKey(
        "identity.Project", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ZenithUserManager()

    class Meta:
        ordering = ["username"]


class Project(models.Model):
    """A tenant: every cloud resource belongs to exactly one project."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=64, unique=True)
    description = models.TextField(blank=True, default="")
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.Model):
    """A named set of rights; `admin` implies `member` implies `reader` (see identity.policy)."""

    ADMIN = "admin"
    MEMBER = "member"
    READER = "reader"
    SEEDED = (ADMIN, MEMBER, READER)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=64, unique=True)
    description = models.CharField(max_length=255, blank=True, default="")

    objects = RoleQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RoleAssignment(models.Model):
    """`user` holds `role` on `project`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="role_assignments")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="role_assignments")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="assignments")
    created = models.DateTimeField(auto_now_add=True)

    objects = RoleAssignmentQuerySet.as_manager()

    class Meta:
        ordering = ["project__name", "user__username", "role__name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "project", "role"], name="unique_role_assignment")
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} on {self.project}"


class Quota(models.Model):
    """An admin-set limit for one resource of one project; absent rows mean the default limit."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="quotas")
    resource = models.CharField(max_length=32)
    limit = models.IntegerField(help_text="-1 means unlimited")

    class Meta:
        ordering = ["project__name", "resource"]
        constraints = [models.UniqueConstraint(fields=["project", "resource"], name="unique_quota")]

    def __str__(self) -> str:
        return f"{self.project}: {self.resource}={self.limit}"


class QuotaLock(models.Model):
    """One row per project that quota checks lock (SELECT ... FOR UPDATE) to serialise usage counts."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="+")

    def __str__(self) -> str:
        return f"quota lock of {self.project_id}"


class KeyPair(models.Model):
    """An SSH public key owned by a user, injected into instances they launch."""

    TYPE_SSH = "ssh"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="keypairs")
    name = models.CharField(max_length=255)
    public_key = models.TextField()
    fingerprint = models.CharField(max_length=128)
    key_type = models.CharField(max_length=16, default=TYPE_SSH)
    created = models.DateTimeField(auto_now_add=True)

    objects = UserOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="unique_keypair_name")]

    def __str__(self) -> str:
        return self.name


class ApiTokenQuerySet(UserOwnedQuerySet):
    def usable(self, now):
        return self.filter(revoked_at__isnull=True, expires_at__gt=now)


class ApiToken(models.Model):
    """A project-scoped bearer token; only its SHA-256 digest is stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_tokens")
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, help_text="first characters, to recognise a token in lists")
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["expires_at"], name="apitoken_expiry", condition=Q(revoked_at=None))]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user} on {self.project})"


class ResourceAction(models.Model):
    """The audit trail of every resource: who asked for what on which resource, when, and how it
    ended. One table for instances, volumes, networks, flavors, hosts, images, projects, roles and
    quotas; ``resource_type`` + ``resource_id`` name the resource (by UUID, as Cinder and Neutron
    refer to instances), ``operation_id`` the asynchronous Operation carrying it out (none for work
    done inside the request, which is recorded finished)."""

    SUCCESS = "success"
    ERROR = "error"

    id = models.BigAutoField(primary_key=True)
    resource_type = models.CharField(max_length=32)
    resource_id = models.UUIDField()
    project = models.ForeignKey(
        "identity.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    action = models.CharField(max_length=32)
    user = models.ForeignKey(
        "identity.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    request_id = models.CharField(max_length=64, blank=True, default="")
    operation_id = models.UUIDField(null=True, blank=True)
    start_time = models.DateTimeField(default=timezone.now)
    finish_time = models.DateTimeField(null=True, blank=True)
    result = models.CharField(max_length=16, blank=True, default="")
    message = models.TextField(blank=True, default="")
    idempotency_key = models.CharField(max_length=255, blank=True, default="")

    objects = AdminOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-start_time", "-id"]
        indexes = [
            models.Index(fields=["resource_type", "resource_id", "-start_time"], name="resource_action_log"),
            models.Index(fields=["operation_id"], name="resource_action_operation"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["resource_type", "resource_id", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="unique_resource_action_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.action} of {self.resource_type} {self.resource_id}"


class LoginThrottle(models.Model):
    """Failed password logins counted per key (``user:<name>`` or ``addr:<ip>``): past the limit the
    key is locked until ``locked_until`` and tries are refused before any password is hashed."""

    key = models.CharField(max_length=200, unique=True)
    failures = models.PositiveIntegerField(default=0)
    window_start = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.failures} failures"
