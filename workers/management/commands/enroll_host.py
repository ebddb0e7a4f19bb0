"""``manage.py enroll_host NAME [NAME ...]``: issue a host its key, so the conductor accepts its agent.

Every message an agent sends the conductor is signed with its host's key (``workers.hostauth``); a
host that was not enrolled registers nothing. The key is stored in the database (the conductor needs
it to check signatures) and written to the host's key file, 0600: ``--key-file``, else
``ZENITH_HOST_KEY_FILE`` (``{host}`` in it is the host's name), else
``$ZENITH_VAR_DIR/agent/<host>/host.key``, which is where an agent on this machine looks. For an agent
on another machine, ``--print`` prints the key instead: copy it there into a 0600 file named by that
agent's ``ZENITH_HOST_KEY_FILE``.

Idempotent: a host enrolled already keeps its key (its file is rewritten with it). ``--rotate``
issues a new key (the previous one stays valid for ``ZENITH_HOST_KEY_GRACE``); ``--revoke`` deletes
the credential: its messages are refused from then on. ``--list`` shows who is enrolled.

``--simulate N [--host-prefix sim-]`` enrolls the hosts of ``manage.py agent --simulate N`` (``sim-1``
... ``sim-N``) at once, in a few statements whatever N (``services.enroll_hosts``).
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from identity.errors import ZenithError
from workers import hostauth, processes, services
from workers.models import HostCredential


class Command(BaseCommand):
    help = "Enroll hosts (issue their keys), rotate or revoke a key, or list enrolled hosts."

    def add_arguments(self, parser):
        parser.add_argument("hosts", nargs="*", metavar="NAME")
        parser.add_argument("--roles", help="roles the host may claim, comma-separated (default: any)")
        parser.add_argument("--key-file", help="where to write the key ({host} is replaced by the name)")
        parser.add_argument(
            "--print", action="store_true", dest="print_key", help="print the key, write no file"
        )
        parser.add_argument("--rotate", action="store_true", help="issue a new key")
        parser.add_argument("--revoke", action="store_true", help="delete the host's credential")
        parser.add_argument("--list", action="store_true", dest="list_hosts", help="list enrolled hosts")
        parser.add_argument(
            "--simulate", type=int, default=0, metavar="N", help="also the N hosts of `agent --simulate N`"
        )
        parser.add_argument("--host-prefix", default="sim-", help="with --simulate: <prefix>1 ... <prefix>N")

    def handle(
        self,
        *args,
        hosts,
        roles,
        key_file,
        print_key,
        rotate,
        revoke,
        list_hosts,
        simulate=0,
        host_prefix="sim-",
        **options,
    ):
        if list_hosts:
            for cred in HostCredential.objects.all():
                allowed = ",".join(cred.roles) or "any role"
                rotated = f", rotated {cred.rotated_at:%Y-%m-%d %H:%M}" if cred.rotated_at else ""
                self.stdout.write(
                    f"{cred.host_name}: {allowed}, enrolled {cred.created:%Y-%m-%d %H:%M}{rotated}"
                )
            return
        if simulate < 0:
            raise CommandError("--simulate takes a number of hosts (1 or more).")
        hosts = list(hosts) + processes.simulated_host_names(simulate, host_prefix)
        if not hosts:
            raise CommandError("Name the hosts to enroll (or use --simulate N, or --list).")
        if revoke and (rotate or roles or print_key):
            raise CommandError("--revoke takes no other option.")
        try:
            if len(hosts) > 1 and not (revoke or rotate or print_key):
                self._enroll_many(hosts, roles, key_file, verbose=not simulate)
                return
            for name in hosts:
                if revoke:
                    found = services.revoke_host(name)
                    self.stdout.write(f"{name}: credential revoked" if found else f"{name}: was not enrolled")
                    continue
                self._enroll(name, roles, key_file, print_key, rotate)
        except ZenithError as exc:
            raise CommandError(exc.message) from None

    def _enroll_many(self, names, roles, key_file, verbose):
        role_list = None if roles is None else [r.strip() for r in roles.split(",") if r.strip()]

        def path(name):
            return key_file.replace("{host}", name) if key_file else hostauth.key_path(settings.VAR_DIR, name)

        done = services.enroll_hosts(names, roles=role_list, key_file_for=path)
        if verbose:
            for one in done:
                what = "enrolled" if one.created else "already enrolled"
                self.stdout.write(f"{one.host}: {what}; key in {one.key_file}")
        else:
            created = sum(1 for one in done if one.created)
            self.stdout.write(
                f"{len(done)} hosts {done[0].host} ... {done[-1].host}: {created} enrolled, "
                f"{len(done) - created} already enrolled; keys in {done[0].key_file} ..."
            )

    def _enroll(self, name, roles, key_file, print_key, rotate):
        role_list = None if roles is None else [r.strip() for r in roles.split(",") if r.strip()]
        path = None
        if not print_key:
            path = key_file.replace("{host}", name) if key_file else hostauth.key_path(settings.VAR_DIR, name)
        done = services.enroll_host(name, roles=role_list, key_file=path, rotate=rotate)
        what = "enrolled" if done.created else ("key rotated" if rotate else "already enrolled")
        if print_key:
            self.stderr.write(f"{name}: {what}; its key follows (keep it secret)")
            self.stdout.write(done.key)
        else:
            self.stdout.write(f"{name}: {what}; key in {done.key_file}")
