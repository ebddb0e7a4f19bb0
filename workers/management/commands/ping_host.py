"""``manage.py ping_host NAME``: check that a host's agent answers on its own queue."""

import time

from django.core.management.base import BaseCommand, CommandError

from identity.context import system_context
from identity.errors import ZenithError
from workers import services
from workers.models import Operation


class Command(BaseCommand):
    help = "Send host.ping to a host's agent through the conductor and wait for the answer."

    def add_arguments(self, parser):
        parser.add_argument("host")
        parser.add_argument("--timeout", type=float, default=15.0)
        parser.add_argument("--role", default="compute", help="which of the host's queues to ping")

    def handle(self, *args, host, timeout, role, **options):
        try:
            op = services.ping_host(system_context(), host, role)
        except ZenithError as exc:
            raise CommandError(exc.message) from None
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            op.refresh_from_db()
            if op.finished:
                break
            time.sleep(0.05)
        if op.state != Operation.SUCCEEDED:
            raise CommandError(f"{host} did not answer: operation {op.pk} is {op.state} {op.message}".strip())
        self.stdout.write(f"{op.message} (operation {op.pk})")
