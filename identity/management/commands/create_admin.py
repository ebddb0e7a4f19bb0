"""``manage.py create_admin NAME --password P``: a cloud admin holding admin on the admin project."""

from django.conf import settings
from django.core.management.base import BaseCommand

from identity import services
from identity.context import system_context
from identity.models import Project, Role, RoleAssignment, User


class Command(BaseCommand):
    help = "Create (or update the password of) a cloud admin with the admin role on the admin project."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password", required=True)
        parser.add_argument("--email", default="")

    def handle(self, *args, username, password, email, **options):
        ensure_admin(username, password, email)
        self.stdout.write(f"cloud admin {username} ready (admin on project {settings.ZENITH_ADMIN_PROJECT})")


def ensure_admin(username: str, password: str, email: str = "") -> User:
    """Idempotent: the user exists, is a superuser, and holds admin on the admin project."""
    ctx = system_context()
    services.seed_roles()
    project = Project.objects.filter(name=settings.ZENITH_ADMIN_PROJECT).first() or services.create_project(
        ctx, name=settings.ZENITH_ADMIN_PROJECT, description="Cloud administrators"
    )
    user = User.objects.filter(username=username).first()
    if user is None:
        user = services.create_user(ctx, username=username, password=password, email=email, is_superuser=True)
    else:
        services.update_user(ctx, user, password=password)
    admin_role = Role.objects.get(name=Role.ADMIN)
    if not RoleAssignment.objects.filter(user=user, project=project, role=admin_role).exists():
        services.assign_role(ctx, user=user, project=project, role=admin_role)
    return user
