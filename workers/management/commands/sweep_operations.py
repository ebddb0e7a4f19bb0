"""``manage.py sweep_operations``: one pass of the operation sweeper (the beat runs it periodically)."""

import json

from django.core.management.base import BaseCommand

from workers import services


class Command(BaseCommand):
    help = "Re-send operations never picked up and fail those past their deadline."

    def handle(self, *args, **options):
        self.stdout.write(json.dumps(services.sweep().as_dict()))
