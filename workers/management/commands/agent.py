"""``manage.py agent --host NAME [--libvirt-uri URI] [--roles compute,...]``: run the Celery worker
of one host, consuming the queues of the roles it carries."""

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workers import queues
from workers.agent.runtime import DEFAULT_ROLES, DEFAULT_URI, HOST_ENV, ROLES_ENV, URI_ENV


class Command(BaseCommand):
    help = "Start the agent of one compute host: a Celery worker consuming exactly that host's queues."

    def add_arguments(self, parser):
        parser.add_argument("--host", required=True, help="host name (used in queue names)")
        parser.add_argument(
            "--libvirt-uri",
            default=DEFAULT_URI,
            help=f"hypervisor connection (default {DEFAULT_URI}, libvirt's test driver)",
        )
        parser.add_argument(
            "--roles",
            default=",".join(DEFAULT_ROLES),
            help=f"comma-separated roles: {', '.join(queues.HOST_QUEUE_KINDS)} "
            f"(default {','.join(DEFAULT_ROLES)})",
        )
        parser.add_argument("--concurrency", type=int, default=4, help="threads working at once")
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args, host, libvirt_uri, roles, concurrency, loglevel, **options):
        from celery import current_app
        from kombu import Queue
        from kombu.common import Broadcast

        from identity.errors import InvalidInput
        from workers.agent import heartbeat, runtime
        from workers.agent.drivers import DriverError, PoolConflict
        from workers.services import validate_host_name

        try:
            validate_host_name(host)
        except InvalidInput as exc:
            raise CommandError(exc.message) from None
        os.environ[HOST_ENV] = host
        named = [r.strip() for r in roles.split(",") if r.strip()]
        unknown = sorted(set(named) - set(queues.HOST_QUEUE_KINDS))
        if not named or unknown:
            raise CommandError(
                f"--roles takes {', '.join(queues.HOST_QUEUE_KINDS)}"
                + (f"; not {', '.join(unknown)}" if unknown else "")
            )
        os.environ[ROLES_ENV] = ",".join(named)
        os.environ[URI_ENV] = libvirt_uri
        # The agent's own storage pool, reconciled with its configuration before it takes any task.
        try:
            pool = runtime.driver().ensure_pool()
        except PoolConflict as exc:
            runtime.driver().close()  # now, not in libvirt's __del__ at interpreter exit
            raise CommandError(str(exc)) from None
        except DriverError as exc:  # libvirtd not up yet: the heartbeat retries until it is
            self.stderr.write(f"agent for host {host}: storage pool not ready yet: {exc}")
        else:
            self.stdout.write(f"agent for host {host}: storage pool {pool.name()} at {runtime.pool_path()}")
        # Registers the host on start (capacity from libvirt), then heartbeats until shutdown.
        heartbeat.install()
        task_queues = [Queue(name, routing_key=name) for name in queues.host_queues(host, named)]
        if queues.broker_has_fanout(settings.CELERY_BROKER_URL):
            task_queues.append(Broadcast(queues.BROADCAST))
        current_app.conf.task_queues = task_queues
        self.stdout.write(
            f"agent for host {host} ({libvirt_uri}): queues {', '.join(q.name for q in task_queues)}"
        )
        # Threads, not prefork: a host's hypervisor connection (and libvirt's test driver state)
        # lives in this one process.
        current_app.worker_main(
            [
                "worker",
                "--pool=threads",
                f"--concurrency={concurrency}",
                f"--hostname=agent@{host}",
                f"--loglevel={loglevel}",
                "--without-gossip",
                "--without-mingle",
                "-Q",
                ",".join(q.name for q in task_queues),
            ]
        )
