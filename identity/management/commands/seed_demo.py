"""``manage.py seed_demo``: the demo project and users (idempotent; existing data is kept)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from identity import services
from identity.context import system_context
from identity.management.commands.create_admin import ensure_admin
from identity.models import Project, Role, RoleAssignment, User

DEMO_USERS = (("demo", Role.MEMBER), ("viewer", Role.READER))


class Command(BaseCommand):
    help = "Seed roles, the admin, the demo project and its users (admin, demo, viewer)."

    def handle(self, *args, **options):
        password = settings.ZENITH_DEMO_PASSWORD
        seed_demo(password)
        self.stdout.write(f"demo data ready: users admin, demo, viewer (password {password!r})")


def seed_demo(password: str) -> None:
    ctx = system_context()
    admin = ensure_admin("admin", password)
    demo = Project.objects.filter(name="demo").first() or services.create_project(
        ctx, name="demo", description="Demo project"
    )
    for username, role_name in DEMO_USERS:
        user = User.objects.filter(username=username).first() or services.create_user(
            ctx, username=username, password=password
        )
        role = Role.objects.get(name=role_name)
        if not RoleAssignment.objects.filter(user=user, project=demo, role=role).exists():
            services.assign_role(ctx, user=user, project=demo, role=role)
    member = Role.objects.get(name=Role.MEMBER)
    if not RoleAssignment.objects.filter(user=admin, project=demo, role=member).exists():
        services.assign_role(ctx, user=admin, project=demo, role=member)
