"""Per-host message authentication: HMAC-SHA256 over a canonical form of one broker message.

Pure Python (no Django), imported by both sides: the agent signs every message it publishes to the
conductor (``workers.agent.signing``), the conductor verifies it (``workers.hostkeys``) against the
key it issued to that host at enrollment (``manage.py enroll_host``). Whoever holds only the broker
URL can still publish, but no longer as a host: a message must carry ``auth``, a MAC made with the
key of the host it speaks for.

What is signed: the task's name, its positional and keyword arguments (without ``auth`` itself),
the signing host's name, a timestamp and a random nonce, as canonical JSON (sorted keys, no
whitespace). The task name stops a signed heartbeat from being replayed as a power event; the
arguments bind an answer to its operation, resource and step (a link callback's keyword arguments
are part of the message the agent publishes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

VERSION = 1
AUTH_KWARG = "auth"  # the keyword argument that carries the signature of a message
KEY_BYTES = 32
AUTH_KEYS = frozenset({"v", "host", "ts", "nonce", "sig"})


class HostAuthError(Exception):
    """A message whose signature is missing, malformed, wrong, stale or replayed."""


def new_key() -> str:
    """A fresh host key, as the text stored in the database and in the host's key file."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode().rstrip("=")


def decode_key(text: str) -> bytes:
    text = text.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise HostAuthError("a host key is base64 text") from None
    if len(raw) < 16:
        raise HostAuthError("a host key has at least 16 bytes")
    return raw


def canonical(obj: Any) -> bytes:
    """The bytes that are signed: JSON with sorted keys and no whitespace (tuples read as lists, as
    they come back from the broker)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _mac(key: bytes, host: str, task: str, args: Sequence, kwargs: Mapping, ts: float, nonce: str) -> str:
    body = {
        "v": VERSION,
        "host": host,
        "task": task,
        "args": list(args),
        "kwargs": {k: v for k, v in kwargs.items() if k != AUTH_KWARG},
        "ts": ts,
        "nonce": nonce,
    }
    return hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


def sign(
    key: bytes,
    host: str,
    task: str,
    args: Sequence = (),
    kwargs: Mapping | None = None,
    *,
    now: float | None = None,
    nonce: str | None = None,
) -> dict:
    """The ``auth`` of one message that ``host`` publishes: ``{v, host, ts, nonce, sig}``."""
    ts = round(time.time() if now is None else now, 3)
    nonce = nonce or secrets.token_hex(16)
    return {
        "v": VERSION,
        "host": host,
        "ts": ts,
        "nonce": nonce,
        "sig": _mac(key, host, task, args, kwargs or {}, ts, nonce),
    }


def claimed_host(auth: Any) -> str:
    """The host a message's ``auth`` claims to come from (not yet verified)."""
    if not isinstance(auth, dict) or set(auth) != AUTH_KEYS:
        raise HostAuthError("the message is not signed by a host" if not auth else "malformed signature")
    if auth["v"] != VERSION or not isinstance(auth["host"], str) or not auth["host"]:
        raise HostAuthError("malformed signature")
    if not isinstance(auth["ts"], (int, float)) or not isinstance(auth["nonce"], str):
        raise HostAuthError("malformed signature")
    if not isinstance(auth["sig"], str) or not 8 <= len(auth["nonce"]) <= 64:
        raise HostAuthError("malformed signature")
    return auth["host"]


class ReplayGuard:
    """Nonces seen within the freshness window, in bounded memory (thread-safe).

    An entry is kept until its message would be too old to be accepted anyway; beyond ``max_entries``
    the oldest are dropped (a replay of one of those still has to fall within the window).
    """

    def __init__(self, max_entries: int = 100_000):
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def check_and_add(self, host: str, nonce: str, expires: float, now: float) -> bool:
        """False when (host, nonce) was seen already; else remember it until ``expires``."""
        with self._lock:
            while self._seen:
                oldest_key, oldest_expiry = next(iter(self._seen.items()))
                if oldest_expiry > now and len(self._seen) < self.max_entries:
                    break
                del self._seen[oldest_key]
            key = (host, nonce)
            if key in self._seen:
                return False
            self._seen[key] = expires
            return True

    def __len__(self) -> int:
        return len(self._seen)


def verify(
    keys: Iterable[bytes],
    auth: Any,
    task: str,
    args: Sequence = (),
    kwargs: Mapping | None = None,
    *,
    max_age: float | None = None,
    max_future: float = 60.0,
    replay: ReplayGuard | None = None,
    now: float | None = None,
) -> str:
    """Check ``auth`` for this message against the claimed host's ``keys`` (the current one and, just
    after a rotation, the previous one). Returns the host; raises HostAuthError.

    ``max_age``: refuse a message signed longer ago than that (or more than ``max_future`` seconds
    ahead); with ``replay``, a nonce seen already is refused too. None: no freshness check (answers,
    which are bound to their operation and settle it once, must survive a conductor outage).
    """
    host = claimed_host(auth)
    expected_any = False
    for key in keys:
        expected = _mac(key, host, task, args, kwargs or {}, auth["ts"], auth["nonce"])
        if hmac.compare_digest(expected.encode(), auth["sig"].encode()):
            expected_any = True
            break
    if not expected_any:
        raise HostAuthError(f"bad signature for host {host}")
    if max_age is None:
        return host
    now = time.time() if now is None else now
    if now - auth["ts"] > max_age:
        raise HostAuthError(f"message from {host} is {now - auth['ts']:.0f} s old (limit {max_age:g} s)")
    if auth["ts"] - now > max_future:
        raise HostAuthError(f"message from {host} is signed {auth['ts'] - now:.0f} s in the future")
    if replay is not None and not replay.check_and_add(host, auth["nonce"], auth["ts"] + max_age, now):
        raise HostAuthError(f"replayed message from {host}")
    return host


# --- key files ----------------------------------------------------------------------------------

KEY_FILE_ENV = "ZENITH_HOST_KEY_FILE"  # may hold "{host}" (an agent process serving several hosts)


def default_key_path(var_dir: str | Path, host: str) -> Path:
    """Where a host keeps its key when ``ZENITH_HOST_KEY_FILE`` is unset: under the agent's var dir."""
    return Path(var_dir) / "agent" / host / "host.key"


def key_path(var_dir: str | Path, host: str, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    configured = env.get(KEY_FILE_ENV)
    if configured:
        return Path(configured.replace("{host}", host))
    return default_key_path(var_dir, host)


def write_key_file(path: str | Path, key_text: str) -> Path:
    """Write a host key readable by its owner only (0600), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (key_text.strip() + "\n").encode())
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def read_key_file(path: str | Path) -> str:
    """A host key file's text; refused when others than its owner may read it (as ssh does)."""
    path = Path(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise HostAuthError(f"{path} is readable by others (mode {mode & 0o777:o}); chmod 600 it")
    text = path.read_text().strip()
    decode_key(text)
    return text
