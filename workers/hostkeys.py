"""The conductor's side of host authentication: is this message really from that host?

Every host-to-conductor task calls one function here before it reads or writes anything:

- ``authenticate(task, args, kwargs, auth, host=...)``: the signature is the key of an enrolled host
  (``manage.py enroll_host``), and that host is the one the message speaks for. With ``fresh`` (the
  default: heartbeats, power reports, progress), it must also be recent
  (``ZENITH_HOST_MESSAGE_MAX_AGE``) and not seen before by this process (a bounded replay cache).
- ``authenticate_answer``: a host task's answer (``transition_done``, ``host_task_failed``) must be
  signed by the host its operation was sent to (``Operation.host``), for that operation, resource and
  step. Answers have no age limit: they queue while a conductor is down and settle once anyway.

A refused message raises ``HostAuthError``; the tasks log it and drop the message. A batch task (many
hosts' entries in one message) calls ``authenticate`` once per entry, each signed by its own host.
Keys are cached per process for ``ZENITH_HOST_KEY_CACHE_SECONDS`` (a revocation takes that long).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from . import hostauth, tasknames
from .hostauth import HostAuthError
from .models import HostCredential, Operation

log = logging.getLogger(__name__)

__all__ = [
    "Credential",
    "HostAuthError",
    "authenticate",
    "authenticate_answer",
    "authenticate_heartbeat",
    "credentials",
    "verified_heartbeats",
    "forget",
    "refused",
]


@dataclass(frozen=True)
class Credential:
    host: str
    keys: tuple[bytes, ...]  # the current key first; the previous one during its grace period
    roles: tuple[str, ...]  # the roles it may claim; empty: any

    def allows_roles(self, roles: Sequence[str]) -> bool:
        return not self.roles or set(roles) <= set(self.roles)


_cache: dict[str, tuple[float, Credential]] = {}
_cache_lock = threading.Lock()
_replay: hostauth.ReplayGuard | None = None


def replay_guard() -> hostauth.ReplayGuard:
    """This process's nonces of fresh messages (``ZENITH_HOST_REPLAY_CACHE`` entries at most, about
    320 bytes each)."""
    global _replay
    if _replay is None:
        _replay = hostauth.ReplayGuard(settings.ZENITH_HOST_REPLAY_CACHE)
    return _replay


def forget(host: str | None = None) -> None:
    """Drop cached credentials (one host's, or all): enrollment, rotation and revocation call it."""
    with _cache_lock:
        if host is None:
            _cache.clear()
        else:
            _cache.pop(host, None)


def credential(host: str) -> Credential | None:
    """The enrolled credential of ``host`` (cached briefly), or None."""
    return credentials([host]).get(host)


def credentials(hosts: Sequence[str]) -> dict[str, Credential]:
    """The enrolled credentials of ``hosts`` (those enrolled; cached briefly), in one query for all
    those not cached (a batch of heartbeats: one statement whatever its size)."""
    now = time.monotonic()
    found: dict[str, Credential] = {}
    with _cache_lock:
        for host in hosts:
            hit = _cache.get(host)
            if hit is not None and hit[0] > now:
                found[host] = hit[1]
    wanted = sorted({h for h in hosts if isinstance(h, str) and h} - set(found))
    if not wanted:
        return found
    rows = HostCredential.objects.filter(host_name__in=wanted).only(
        "host_name", "key", "previous_key", "rotated_at", "roles"
    )
    grace: timedelta = settings.ZENITH_HOST_KEY_GRACE
    ttl = settings.ZENITH_HOST_KEY_CACHE_SECONDS
    for row in rows:
        keys = [hostauth.decode_key(row.key)]
        if row.previous_key and row.rotated_at and timezone.now() - row.rotated_at < grace:
            keys.append(hostauth.decode_key(row.previous_key))
        found[row.host_name] = Credential(row.host_name, tuple(keys), tuple(row.roles or ()))
    with _cache_lock:
        for host in wanted:
            if host in found:
                if ttl > 0:
                    _cache[host] = (now + ttl, found[host])
            else:
                _cache.pop(host, None)  # unknown hosts are not cached: an enrollment counts at once
    return found


def authenticate(
    task: str,
    args: Sequence = (),
    kwargs: Mapping | None = None,
    auth: Any = None,
    *,
    host: str | None = None,
    fresh: bool = True,
    known: Mapping[str, Credential] | None = None,
) -> Credential:
    """Verify one message (``task`` with ``args``/``kwargs``, as published) signed with ``auth``.

    ``host``: the host the message speaks for (its ``host`` argument); the signer must be that host.
    ``known``: the credentials looked up already (``credentials``, for a batch); a host not in it is
    not enrolled. Returns the signer's credential; raises HostAuthError.
    """
    claimed = hostauth.claimed_host(auth)
    if host is not None and claimed != host:
        raise HostAuthError(f"a message about host {host} signed by host {claimed}")
    cred = credential(claimed) if known is None else known.get(claimed)
    if cred is None:
        raise HostAuthError(f"host {claimed} is not enrolled (manage.py enroll_host {claimed})")
    max_age = settings.ZENITH_HOST_MESSAGE_MAX_AGE.total_seconds() if fresh else None
    hostauth.verify(
        cred.keys,
        auth,
        task,
        args,
        kwargs or {},
        max_age=max_age,
        max_future=min(60.0, max_age or 60.0),
        replay=replay_guard() if fresh else None,
    )
    return cred


def authenticate_answer(task: str, args: Sequence, kwargs: Mapping, auth: Any) -> Operation:
    """A host task's answer for ``kwargs["operation_id"]``: signed by the host that operation was sent
    to, and naming the operation's own resource. Returns the operation; raises HostAuthError."""
    operation_id = kwargs.get("operation_id")
    op = (
        Operation.objects.filter(pk=operation_id).only("host", "resource_type", "resource_id").first()
        if operation_id
        else None
    )
    if op is None:
        raise HostAuthError(f"an answer for an unknown operation {operation_id!r}")
    if not op.host:
        raise HostAuthError(f"an answer for operation {operation_id}, which was sent to no host")
    host = op.host
    claimed = hostauth.claimed_host(auth)
    if claimed != host and op.resource_type and op.resource_id is not None:
        from . import lifecycle  # the resource kinds are registered at app start

        kind = lifecycle.registered().get(op.resource_type)
        if kind is not None and claimed in kind.earlier_hosts(op.resource_id):
            host = claimed  # a host the work was sent to before: its late answer is authentic
    authenticate(task, args, kwargs, auth, host=host, fresh=False)
    resource_type = kwargs.get("resource_type") or ""
    resource_id = kwargs.get("resource_id") or ""
    if (resource_type or resource_id) and (
        resource_type != op.resource_type or str(resource_id) != str(op.resource_id or "")
    ):
        raise HostAuthError(f"an answer for operation {operation_id} naming another resource")
    return op


def authenticate_heartbeat(
    host: str, info: dict, auth: dict | None, known: Mapping[str, Credential] | None = None
) -> Credential:
    """One host's heartbeat entry ``{"host", "info"}`` signed by that host, claiming only the roles
    it was enrolled with. A batch of heartbeats calls this once per entry (``verified_heartbeats``)."""
    cred = authenticate(
        tasknames.HOST_HEARTBEAT, (), {"host": host, "info": info}, auth, host=host, known=known
    )
    roles = info.get("roles", ["compute"]) if isinstance(info, dict) else []
    if isinstance(roles, list) and not cred.allows_roles([str(r) for r in roles]):
        raise HostAuthError(f"host {host} claims roles {roles}; it was enrolled for {list(cred.roles)}")
    return cred


def verified_heartbeats(batch: Any) -> tuple[list[dict], int]:
    """The entries of a batch of heartbeats (``[{"host", "info", "auth"}]``) each signed by its own
    enrolled host (``authenticate_heartbeat``), with every host's key read in one query; an entry
    with a bad or missing signature is logged and left out. Returns (the entries verified, how many
    were refused); what is not a list is left to ``services.record_heartbeats`` to reject."""
    if not isinstance(batch, list):
        return batch, 0
    entries = [e for e in batch if isinstance(e, dict)]
    known = credentials([str(e.get("host") or "") for e in entries])
    verified: list[dict] = []
    refused_count = 0
    for entry in batch:
        if not isinstance(entry, dict):
            verified.append(entry)  # malformed: services.record_heartbeats rejects it, with the reason
            continue
        host, info = entry.get("host"), entry.get("info")
        try:
            if not isinstance(host, str):
                raise HostAuthError("a heartbeat entry names no host")
            authenticate_heartbeat(host, info, entry.get(hostauth.AUTH_KWARG), known)
        except HostAuthError as exc:
            refused(tasknames.HOST_HEARTBEATS, exc, host=str(host)[:63])
            refused_count += 1
            continue
        verified.append({"host": host, "info": info})
    return verified, refused_count


def refused(task: str, exc: HostAuthError, **about) -> None:
    """Log a refused host message (what it claimed to be, and why)."""
    detail = ", ".join(f"{k}={v}" for k, v in about.items() if v)
    log.warning("refused %s%s: %s", task, f" ({detail})" if detail else "", exc)
