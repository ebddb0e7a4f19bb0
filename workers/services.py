"""Every state change of the ledger: start, progress, succeed, fail, sweep, and operator checks."""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from identity import policy
from identity.context import Context
from identity.errors import InvalidInput

from . import dispatch, queues, tasknames
from .models import Host, HostCredential, Operation
from .signals import operation_failed

log = logging.getLogger(__name__)


def start(operation_id) -> Operation | None:
    """Mark an operation running; None when it already finished (a duplicate or late delivery)."""
    now = timezone.now()
    Operation.objects.filter(pk=operation_id, state=Operation.PENDING).update(
        state=Operation.RUNNING, started_at=now, updated=now
    )
    op = Operation.objects.filter(pk=operation_id).first()
    if op is None or op.finished:
        return None
    return op


def report_progress(operation_id, percent: int, message: str = "", *, host: str | None = None) -> None:
    """Record how far a running operation got (monotonic: progress never goes backwards). With
    ``host`` (a host's own report), only an operation sent to that host moves."""
    percent = max(0, min(100, int(percent)))
    update = {"progress": percent, "updated": timezone.now()}  # ``updated``: its last sign of life
    if message:
        update["message"] = message
    rows = Operation.objects.filter(pk=operation_id, state=Operation.RUNNING, progress__lte=percent)
    if host is not None:
        rows = rows.filter(host=host)
    rows.update(**update)


def sent_to_host(operation_id, host: str) -> None:
    """The operation's work goes to ``host`` now: from here on only that host's signed answer (and
    progress) counts for it (``workers.hostkeys``)."""
    Operation.objects.filter(pk=operation_id).update(host=host)


def succeed(operation_id, result=None, message: str = "") -> bool:
    """Finish an operation successfully; False if it had already finished (e.g. failed by the sweeper)."""
    return bool(
        Operation.objects.filter(pk=operation_id, state__in=Operation.UNFINISHED).update(
            state=Operation.SUCCEEDED,
            progress=100,
            result=result,
            message=message,
            finished_at=timezone.now(),
        )
    )


def fail(operation_id, message: str, result=None) -> bool:
    """Finish an operation as failed with a reason a user can read; False if already finished."""
    return bool(
        Operation.objects.filter(pk=operation_id, state__in=Operation.UNFINISHED).update(
            state=Operation.FAILED, result=result, message=message[:4000], finished_at=timezone.now()
        )
    )


# Operation kinds whose conductor task resumes from the state it finds (compute/tasks.py: a build
# re-sends the spawn of an instance already placed, an action is sent to its host again, and the host
# tasks are idempotent; a volume's or snapshot's transition is sent to its host again, whose storage
# and attach tasks are idempotent too): a running one of these whose message was lost can simply be
# sent again.
REDRIVABLE_KINDS = ("instance.", "volume.", "snapshot.")


@dataclass
class SweepReport:
    resent: int = 0
    failed: int = 0
    redriven: int = 0

    def as_dict(self) -> dict:
        return {"resent": self.resent, "failed": self.failed, "redriven": self.redriven}


def sweep(now: datetime | None = None) -> SweepReport:
    """Re-send operations never picked up; fail those past their deadline (nothing stays stuck)."""
    now = now or timezone.now()
    report = SweepReport()
    overdue = Operation.objects.filter(state__in=Operation.UNFINISHED, deadline__lte=now).order_by("pk")
    for op in overdue.only("pk", "state", "send_count", "kind"):
        with transaction.atomic():
            locked = (
                Operation.objects.select_for_update().filter(pk=op.pk, state__in=Operation.UNFINISHED).first()
            )
            if locked is None:
                continue
            if locked.state == Operation.PENDING:
                reason = (
                    f"Deadline exceeded: no worker picked up this {locked.kind} operation "
                    f"(sent {locked.send_count} time(s) to queue {locked.queue}). Is its worker running?"
                )
            else:
                last_step = f" (last step: {locked.message})" if locked.message else ""
                reason = f"Deadline exceeded: the {locked.kind} operation did not finish in time{last_step}."
            fail(locked.pk, reason)
            locked.refresh_from_db()
            operation_failed.send(sender=Operation, operation=locked)
            report.failed += 1
    resend_before = now - settings.ZENITH_OPERATION_RESEND_AFTER
    stale = Operation.objects.filter(
        Q(sent_at__isnull=True) | Q(sent_at__lte=resend_before),
        state=Operation.PENDING,
        deadline__gt=now,
        send_count__lt=settings.ZENITH_OPERATION_MAX_SENDS,
        created__lte=resend_before,
    ).values_list("pk", flat=True)
    for pk in list(stale):
        if dispatch.send(pk):
            report.resent += 1
    report.redriven = redrive(now)
    if report.resent or report.failed or report.redriven:
        log.info("operation sweep: %s", report.as_dict())
    return report


def redrive(now: datetime | None = None) -> int:
    """Send again the task of running operations that showed no sign of life for
    ``ZENITH_OPERATION_REDRIVE_AFTER``: their step's message was lost (a broker that restarted empty,
    a publish that failed mid-step). That is also when the broker redelivers a message a dead worker
    held (the visibility timeout), so no step that is merely slow is sent twice sooner than that."""
    now = now or timezone.now()
    before = now - settings.ZENITH_OPERATION_REDRIVE_AFTER
    kinds = Q()
    for prefix in REDRIVABLE_KINDS:
        kinds |= Q(kind__startswith=prefix)
    stuck = Operation.objects.filter(
        kinds,
        Q(sent_at__isnull=True) | Q(sent_at__lte=before),
        state=Operation.RUNNING,
        deadline__gt=now,
        updated__lte=before,
        send_count__lt=settings.ZENITH_OPERATION_MAX_SENDS,
    ).values_list("pk", flat=True)
    return sum(1 for pk in list(stuck) if dispatch.send(pk, state=Operation.RUNNING))


# --- hosts: heartbeats, with a section per role ------------------------------------------------------


@dataclass(frozen=True)
class HeartbeatReceiver:
    """What a role's app does with its section of every heartbeat: ``clean`` validates it (raising
    InvalidInput) before anything is written, ``record(host_name, cleaned, now, registered)``
    records it. ``record_many({host_name: cleaned}, now, registered_names)``, when given, records
    the sections of a batch of heartbeats (``record_heartbeats``) in a few statements; without it
    each host's is recorded with ``record``."""

    clean: Callable[[Any], Any]
    record: Callable[[str, Any, datetime, bool], None]
    record_many: Callable[[dict[str, Any], datetime, set[str]], None] | None = None


HEARTBEAT_RECEIVERS: dict[str, HeartbeatReceiver] = {}


def register_heartbeat_receiver(role: str, receiver: HeartbeatReceiver) -> None:
    """A role's app (compute now; storage, network next) records its section of every heartbeat."""
    if role not in queues.HOST_QUEUE_KINDS:
        raise ValueError(f"unknown host role {role!r}")
    HEARTBEAT_RECEIVERS[role] = receiver


def _clean_roles(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(r, str) for r in value):
        raise InvalidInput("A heartbeat names the host's roles as a non-empty list.")
    unknown = sorted(set(value) - set(queues.HOST_QUEUE_KINDS))
    if unknown:
        raise InvalidInput(f"Unknown host roles: {', '.join(unknown)}.")
    return [r for r in queues.HOST_QUEUE_KINDS if r in value]


def _clean_heartbeat(host_name: Any, info: Any) -> tuple[str, dict, dict]:
    """A heartbeat validated: (host name, the Host's values, each role's cleaned section)."""
    name = validate_host_name(host_name)
    if not isinstance(info, dict):
        raise InvalidInput("A heartbeat carries the host's info as an object.")
    roles = _clean_roles(info.get("roles", ["compute"]))
    sections = {}
    for role in roles:
        if role in HEARTBEAT_RECEIVERS:
            if not isinstance(info.get(role), dict):
                raise InvalidInput(f"A {role} host's heartbeat carries a {role} section (an object).")
            sections[role] = HEARTBEAT_RECEIVERS[role].clean(info[role])
    return name, {"uri": str(info.get("uri") or "")[:255], "roles": roles}, sections


def record_heartbeat(host_name: str, info: Any, now: datetime | None = None) -> bool:
    """An agent says it is alive: register its Host on the first heartbeat, refresh liveness, URI and
    roles after (one UPDATE in the common case, nothing read back: every host sends one every few
    seconds), then hand each role's section (``info["compute"]``, ...) to that role's receiver.
    True when this heartbeat registered the host.

    Called by the conductor task ``workers.tasks.host_heartbeat`` once the heartbeat's signature
    proved it comes from that enrolled host (``workers.hostkeys``). Keeps what admins set: enabled,
    reason, zone.
    """
    name, values, sections = _clean_heartbeat(host_name, info)
    now = now or timezone.now()
    values["last_heartbeat"] = now
    registered = False
    if not Host.objects.filter(name=name).update(updated=now, **values):
        try:
            with transaction.atomic():
                Host.objects.create(name=name, **values)
            registered = True
        except IntegrityError:  # another heartbeat of the same host created it meanwhile
            Host.objects.filter(name=name).update(updated=now, **values)
    for role, section in sections.items():
        HEARTBEAT_RECEIVERS[role].record(name, section, now, registered)
    return registered


@dataclass
class HeartbeatsReport:
    recorded: int = 0
    registered: int = 0
    rejected: int = 0

    def as_dict(self) -> dict:
        return {"recorded": self.recorded, "registered": self.registered, "rejected": self.rejected}


def record_heartbeats(batch: Any, now: datetime | None = None) -> HeartbeatsReport:
    """Many hosts' heartbeats at once (a multi-host agent's batch: ``[{"host", "info"}, ...]``), with
    what ``record_heartbeat`` does for each, in a number of statements that does not grow with the
    batch: one SELECT of the hosts known, one UPDATE per distinct (URI, roles), one INSERT of the new
    hosts, then each role's ``record_many`` (or ``record`` per host where a role has none). An invalid
    entry is logged and left out; the others are recorded. A host named twice counts once (the last).
    """
    if not isinstance(batch, list):
        raise InvalidInput("A batch of heartbeats is a list of {host, info} objects.")
    report = HeartbeatsReport()
    cleaned: dict[str, tuple[dict, dict]] = {}
    for entry in batch:
        try:
            if not isinstance(entry, dict):
                raise InvalidInput("A batch's heartbeat is an object with host and info.")
            name, values, sections = _clean_heartbeat(entry.get("host"), entry.get("info"))
        except InvalidInput as exc:
            log.warning("heartbeat rejected (%s): %s", str(entry)[:200], exc.message)
            report.rejected += 1
            continue
        cleaned[name] = (values, sections)
    if not cleaned:
        return report
    now = now or timezone.now()
    known = set(Host.objects.filter(name__in=list(cleaned)).values_list("name", flat=True))
    groups: dict[tuple, list[str]] = defaultdict(list)
    for name in known:
        values = cleaned[name][0]
        groups[(values["uri"], tuple(values["roles"]))].append(name)
    for (uri, roles), names in groups.items():
        Host.objects.filter(name__in=names).update(
            uri=uri, roles=list(roles), last_heartbeat=now, updated=now
        )
    new = [name for name in cleaned if name not in known]
    if new:
        # ignore_conflicts: one registered meanwhile by another heartbeat is refreshed, not created.
        Host.objects.bulk_create(
            [Host(name=name, last_heartbeat=now, **cleaned[name][0]) for name in new], ignore_conflicts=True
        )
    registered = set(new)
    for role, receiver in HEARTBEAT_RECEIVERS.items():
        section_of = {name: sections[role] for name, (_, sections) in cleaned.items() if role in sections}
        if not section_of:
            continue
        if receiver.record_many is not None:
            receiver.record_many(section_of, now, registered)
        else:
            for name, section in section_of.items():
                receiver.record(name, section, now, name in registered)
    report.recorded = len(cleaned)
    report.registered = len(registered)
    return report


# A ping is answered in milliseconds by a live agent; a dead host should not look busy for 10 minutes.
PING_DEADLINE = timedelta(seconds=60)
HOST_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def validate_host_name(name: str) -> str:
    """A host name usable in queue names: letters, digits, '-', '_', '.'; 1-63 characters."""
    if not name or len(name) > 63 or not set(name) <= HOST_NAME_CHARS:
        raise InvalidInput("Host names are 1-63 characters of letters, digits, '-', '_' and '.'.")
    return name


@transaction.atomic
def ping_host(ctx: Context, host: str, role: str = "compute") -> Operation:
    """Ask a host's agent to answer on its ``<role>.<host>`` queue: proves the whole path conductor ->
    host -> back for that role."""
    policy.enforce(ctx, "workers:host:ping")
    host = validate_host_name(host)
    if role not in queues.HOST_QUEUE_KINDS:
        raise InvalidInput(f"A host's role is one of {', '.join(queues.HOST_QUEUE_KINDS)}.")
    return dispatch.enqueue(
        ctx,
        deadline=PING_DEADLINE,
        kind="host.ping",
        task=tasknames.PING_HOST,
        kwargs={"host": host, "role": role},
        queue=queues.CONDUCTOR,
        resource_type="host",
    )


# --- host credentials: enrollment, rotation, revocation (``manage.py enroll_host``) ---------------


@dataclass(frozen=True)
class Enrollment:
    host: str
    key: str
    created: bool  # a new credential (False: the host was enrolled already)
    key_file: str = ""  # where the key was written ("" when only printed)


def enroll_host(
    name: str, *, roles: list[str] | None = None, key_file=None, rotate: bool = False, adopt: bool = True
) -> Enrollment:
    """Enroll a host (or re-enroll it): issue its key, store it, and write it to ``key_file`` (0600).

    Idempotent: a host enrolled already keeps its key (the file is rewritten with it) unless
    ``rotate``; a host not enrolled whose ``key_file`` holds a valid key adopts it (``adopt``: the
    agent already running with that file needs no restart), else gets a new one. ``roles``: the roles
    it may claim (None leaves them as they are; [] is any). Operator-only: called by the command.
    """
    from . import hostauth, hostkeys

    name = validate_host_name(name)
    if roles is not None:
        roles = _clean_roles(roles) if roles else []
    with transaction.atomic():
        cred = HostCredential.objects.select_for_update().filter(host_name=name).first()
        created = cred is None
        if cred is None:
            key = ""
            if adopt and key_file is not None:
                try:
                    key = hostauth.read_key_file(key_file)
                except (OSError, hostauth.HostAuthError):
                    key = ""
            cred = HostCredential.objects.create(
                host_name=name, key=key or hostauth.new_key(), roles=roles or []
            )
        else:
            fields = ["updated"]
            if rotate:
                cred.previous_key, cred.key, cred.rotated_at = cred.key, hostauth.new_key(), timezone.now()
                fields += ["previous_key", "key", "rotated_at"]
            if roles is not None:
                cred.roles = roles
                fields.append("roles")
            cred.save(update_fields=fields)
    hostkeys.forget(name)
    written = ""
    if key_file is not None:
        current = ""
        with contextlib.suppress(OSError, hostauth.HostAuthError):
            current = hostauth.read_key_file(key_file)
        if current != cred.key:
            hostauth.write_key_file(key_file, cred.key)
        written = str(key_file)
    log.info("host %s %s", name, "enrolled" if created else ("key rotated" if rotate else "re-enrolled"))
    return Enrollment(name, cred.key, created, written)


def enroll_hosts(
    names: list[str], *, roles: list[str] | None = None, key_file_for: Callable[[str], Any] | None = None
) -> list[Enrollment]:
    """Enroll many hosts at once (a multi-host agent's: ``enroll_host --simulate N``), as
    ``enroll_host`` would each (no rotation), in a fixed number of statements: one SELECT of those
    enrolled, one UPDATE of their roles (when given), one INSERT of the new ones. ``key_file_for(name)``:
    where each host's key is written (None: nowhere); a new host adopts a valid key found there."""
    from . import hostauth, hostkeys

    names = list(dict.fromkeys(validate_host_name(n) for n in names))
    if roles is not None:
        roles = _clean_roles(roles) if roles else []
    path_of = {n: (key_file_for(n) if key_file_for is not None else None) for n in names}

    def found_key(name: str) -> str:
        with contextlib.suppress(OSError, hostauth.HostAuthError):
            if path_of[name] is not None:
                return hostauth.read_key_file(path_of[name])
        return ""

    with transaction.atomic():
        known = {
            c.host_name: c.key
            for c in HostCredential.objects.select_for_update()
            .filter(host_name__in=names)
            .only("host_name", "key")
        }
        if roles is not None and known:
            HostCredential.objects.filter(host_name__in=list(known)).update(
                roles=roles, updated=timezone.now()
            )
        new = {n: found_key(n) or hostauth.new_key() for n in names if n not in known}
        HostCredential.objects.bulk_create(
            [HostCredential(host_name=n, key=key, roles=roles or []) for n, key in new.items()]
        )
    done = []
    for name in names:
        hostkeys.forget(name)
        key = known.get(name) or new[name]
        written = ""
        if path_of[name] is not None:
            if found_key(name) != key:
                hostauth.write_key_file(path_of[name], key)
            written = str(path_of[name])
        done.append(Enrollment(name, key, name in new, written))
    log.info("%d hosts enrolled, %d re-enrolled", len(new), len(names) - len(new))
    return done


def revoke_host(name: str) -> bool:
    """Revoke a host's credential: its messages are refused from now on (within the conductor's key
    cache, ``ZENITH_HOST_KEY_CACHE_SECONDS``), so it goes down and gets no new work. True if there was
    one."""
    from . import hostkeys

    name = validate_host_name(name)
    deleted, _ = HostCredential.objects.filter(host_name=name).delete()
    hostkeys.forget(name)
    if deleted:
        log.warning("host %s: credential revoked", name)
    return bool(deleted)
