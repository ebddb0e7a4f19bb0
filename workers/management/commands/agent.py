"""``manage.py agent --host NAME [--libvirt-uri URI] [--roles compute,...]``: run the Celery worker
of one host, consuming the queues of the roles it carries.

``manage.py agent --simulate N [--host-prefix sim-]``: one worker serving N simulated hosts
(``sim-1`` ... ``sim-N``), each with its own queues, libvirt test-driver connection (its own in-memory
state, from ``--libvirt-uri``: by default ``workers/agent/simhost.xml``), directory and heartbeat, the
heartbeats batched into one message per ``ZENITH_HEARTBEAT_BATCH`` hosts. To the conductor and the
scheduler they are N hosts, as from N agents.
"""

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workers import processes, queues
from workers.agent.runtime import DEFAULT_ROLES, DEFAULT_URI, HOST_ENV, ROLES_ENV, URI_ENV


class Command(BaseCommand):
    help = (
        "Start the agent of one compute host (or of N simulated hosts): a Celery worker consuming "
        "exactly those hosts' queues."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", help="host name (used in queue names); required unless --simulate")
        parser.add_argument(
            "--libvirt-uri",
            default=None,
            help=f"hypervisor connection (default {DEFAULT_URI}, libvirt's test driver; with --simulate a "
            "test:// URI of a host description file, opened once per host: workers/agent/simhost.xml)",
        )
        parser.add_argument(
            "--roles",
            default=",".join(DEFAULT_ROLES),
            help=f"comma-separated roles: {', '.join(queues.HOST_QUEUE_KINDS)} "
            f"(default {','.join(DEFAULT_ROLES)})",
        )
        parser.add_argument(
            "--simulate", type=int, default=0, metavar="N", help="serve N simulated hosts from this process"
        )
        parser.add_argument(
            "--host-prefix", default="sim-", help="with --simulate: hosts are <prefix>1 ... <prefix>N"
        )
        parser.add_argument("--concurrency", type=int, default=4, help="threads working at once")
        parser.add_argument("--loglevel", default="INFO")

    def _storage_backends(self, host: str, verbose: bool = True) -> None:
        """The storage role's backends (``ZENITH_STORAGE_BACKENDS``): a configuration that does not
        parse, or a dir pool that another checkout's domains still use, stops the agent here."""
        from workers.agent import runtime
        from workers.agent.drivers import DriverError, PoolConflict

        try:
            backends = runtime.storage_backends()
        except runtime.BackendConfigError as exc:
            runtime.close_driver()
            raise CommandError(str(exc)) from None
        for backend in backends:
            try:
                pool = runtime.driver().backend_pool(backend)
            except PoolConflict as exc:
                runtime.close_driver()
                raise CommandError(str(exc)) from None
            except DriverError as exc:  # an rbd monitor down, a volume group missing: say so, go on
                self.stderr.write(f"agent for host {host}: storage backend {backend.name} not ready: {exc}")
            else:
                if verbose:
                    self.stdout.write(
                        f"agent for host {host}: storage backend {backend.name} is pool {pool.name()}"
                    )

    def handle(
        self, *args, host, libvirt_uri, roles, simulate, host_prefix, concurrency, loglevel, **options
    ):
        from celery import current_app
        from kombu import Queue
        from kombu.common import Broadcast

        from identity.errors import InvalidInput
        from workers.agent import heartbeat, runtime, signing
        from workers.agent import network as _network_tasks  # noqa: F401 - networks, NICs, filters
        from workers.agent import storage as _storage_tasks  # noqa: F401 - the storage role's tasks
        from workers.agent.drivers import DriverError, PoolConflict
        from workers.services import validate_host_name

        named = [r.strip() for r in roles.split(",") if r.strip()]
        unknown = sorted(set(named) - set(queues.HOST_QUEUE_KINDS))
        if not named or unknown:
            raise CommandError(
                f"--roles takes {', '.join(queues.HOST_QUEUE_KINDS)}"
                + (f"; not {', '.join(unknown)}" if unknown else "")
            )
        if simulate < 0:
            raise CommandError("--simulate takes a number of hosts (1 or more).")
        if simulate:
            if host:
                raise CommandError("--simulate names its hosts from --host-prefix: give no --host.")
            libvirt_uri = libvirt_uri or processes.simulated_host_uri()
            if not libvirt_uri.startswith("test://") or libvirt_uri == DEFAULT_URI:
                # test:///default is one state shared by every connection of a process: N hosts would
                # see each other's domains. A host description file is parsed anew per connection.
                raise CommandError(
                    "--simulate needs libvirt's test driver with a host description file "
                    "(test:///absolute/path.xml), not " + libvirt_uri
                )
            names = processes.simulated_host_names(simulate, host_prefix)
        else:
            if not host:
                raise CommandError("give --host NAME (or --simulate N).")
            libvirt_uri = libvirt_uri or DEFAULT_URI
            names = [host]
        try:
            for name in names:
                validate_host_name(name)
        except InvalidInput as exc:
            raise CommandError(f"{exc.message} Not {name!r}.") from None
        os.environ[HOST_ENV] = names[0]
        os.environ[ROLES_ENV] = ",".join(named)
        os.environ[URI_ENV] = libvirt_uri
        if simulate:
            runtime.configure_hosts([runtime.AgentHost(name, libvirt_uri, named) for name in names])
            runtime.install_task_binding()
        # The agent's own storage pool, reconciled with its configuration before it takes any task.
        served = runtime.served_hosts() or [None]
        for one in served:
            drv = one.driver() if one is not None else runtime.driver()
            try:
                pool = drv.ensure_pool()
            except PoolConflict as exc:
                runtime.close_driver()  # now, not in libvirt's __del__ at interpreter exit
                raise CommandError(str(exc)) from None
            except DriverError as exc:  # libvirtd not up yet: the heartbeat retries until it is
                self.stderr.write(
                    f"agent for host {one.name if one else host}: storage pool not ready yet: {exc}"
                )
            else:
                if one is None:
                    self.stdout.write(
                        f"agent for host {host}: storage pool {pool.name()} at {runtime.pool_path()}"
                    )
        if "storage" in named:
            for one in served:
                if one is None:
                    self._storage_backends(host)
                else:
                    with runtime.serving(one):
                        self._storage_backends(one.name, verbose=False)
        # Everything this process publishes is signed with its host's key (workers.hostauth): in a
        # multi-host agent, with the key of the host whose work it is (workers.agent.signing).
        signing.install()
        missing = [name for name in names if not signing.has_key(name)]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            enroll = (
                f"manage.py enroll_host --simulate {simulate} --host-prefix {host_prefix}"
                if simulate
                else f"manage.py enroll_host {host}"
            )
            self.stderr.write(
                f"agent: no usable host key for {shown} (at {signing.key_path(missing[0])}, ...): the "
                f"conductor will refuse their messages until an admin runs `{enroll}`"
            )
        # Registers the host(s) on start (capacity from libvirt), then heartbeats until shutdown.
        heartbeat.install()
        task_queues = [
            Queue(name, routing_key=name) for one in names for name in queues.host_queues(one, named)
        ]
        if queues.broker_has_fanout(settings.CELERY_BROKER_URL):
            task_queues.append(Broadcast(queues.BROADCAST))
        current_app.conf.task_queues = task_queues
        if simulate:
            self.stdout.write(
                f"agent for {simulate} simulated hosts {names[0]} ... {names[-1]} ({libvirt_uri}): "
                f"{len(task_queues)} queues"
            )
        else:
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
                f"--hostname=agent@{host or f'{host_prefix}1-to-{simulate}'}",
                f"--loglevel={loglevel}",
                "--without-gossip",
                "--without-mingle",
                "-Q",
                ",".join(q.name for q in task_queues),
            ]
        )
