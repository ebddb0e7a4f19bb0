"""``manage.py seed_flavors``: OpenStack's m1.tiny ... m1.xlarge (idempotent)."""

from django.core.management.base import BaseCommand

from compute import services


class Command(BaseCommand):
    help = "Create the default flavors m1.tiny, m1.small, m1.medium, m1.large, m1.xlarge when missing."

    def handle(self, *args, **options):
        created = services.seed_flavors()
        names = ", ".join(flavor.name for flavor in created) or "none (all present)"
        self.stdout.write(f"flavors created: {names}")
