"""``manage.py ensure_secret_key``: generate the portal's SECRET_KEY into ``var/`` once (make run)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from portal.secret_key import ensure_key_file


class Command(BaseCommand):
    help = "Write a random SECRET_KEY to ZENITH_SECRET_KEY_FILE (var/secret_key) unless it exists."

    def handle(self, *args, **options):
        path = settings.ZENITH_SECRET_KEY_FILE
        if ensure_key_file(path):
            self.stdout.write(f"Generated a new secret key in {path}.")
        elif settings.ZENITH_SECRET_KEY_SOURCE == "environment":
            self.stdout.write("SECRET_KEY comes from the environment; the key file is not used.")
