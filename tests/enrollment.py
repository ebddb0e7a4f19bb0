"""Test harnesses enroll the hosts whose agents they start, as ``make run`` does (``enroll_host``).

``enroll(host)`` issues the host's key into the test database and writes it where the agent looks
(``$ZENITH_VAR_DIR/agent/<host>/host.key``; the agents share the test process's var dir). Transactional
tests flush every table, credentials included, while a module's agents keep running: the root
conftest re-enrolls the hosts still live before each test (each keeps its key file, so the agents
never notice).
"""

from __future__ import annotations

from django.conf import settings

LIVE: set[str] = set()  # hosts whose agents a harness started and has not stopped yet
BLOCKER = None  # pytest-django's database blocker (set by the root conftest)


def _write(hosts) -> None:
    from workers import hostauth, services

    services.enroll_hosts(list(hosts), key_file_for=lambda host: hostauth.key_path(settings.VAR_DIR, host))


def enroll(*hosts: str) -> None:
    """Enroll ``hosts`` now (from a fixture or a test: the database is unblocked for it)."""
    if BLOCKER is None:
        _write(hosts)
    else:
        with BLOCKER.unblock():
            _write(hosts)
    LIVE.update(hosts)


def reenroll() -> None:
    """Enroll the live hosts again (after a flush); a no-op when none is live."""
    if LIVE:
        enroll(*sorted(LIVE))


def forget(*hosts: str) -> None:
    """The harness stopped these hosts' agents."""
    LIVE.difference_update(hosts)
