"""``manage.py seed_images``: the public demo image ``zenith-demo`` (idempotent)."""

from django.core.management.base import BaseCommand

from compute import services


class Command(BaseCommand):
    help = "Create the public demo image zenith-demo (an empty 1 GiB qcow2) when missing."

    def handle(self, *args, **options):
        created = services.seed_images()
        names = ", ".join(image.name for image in created) or "none (all present)"
        self.stdout.write(f"images created: {names}")
