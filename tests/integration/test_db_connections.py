"""A conductor keeps its database connections across tasks (PostgreSQL): Celery's Django fixup closed
them around every task, and a PostgreSQL connect costs ~50x a query (issue 19). PostgreSQL counts every
session it accepted (``pg_stat_database.sessions``, PostgreSQL 14+): twenty operations through a real
conductor (forty conductor tasks) must open no more sessions than the conductor has threads."""

from __future__ import annotations

import pytest
from django.db import connection

from workers.models import Operation

from .test_async_plane import ping, wait_finished

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

OPERATIONS = 20
CONDUCTOR_THREADS = 4  # conftest.Plane.launch_conductor


def sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's session statistics")
def test_conductor_tasks_reuse_their_database_connections(plane):
    wait_finished(ping("host-a"))  # every conductor thread that will run these has connected once
    wait_finished(ping("host-b"))
    before = sessions()
    for n in range(OPERATIONS):
        op = ping("host-a" if n % 2 else "host-b")
        wait_finished(op)
        assert op.state == Operation.SUCCEEDED, op.message
    opened = sessions() - before
    # The test's own connection is kept (its sessions do not move); the conductor's threads may each
    # open one they had not yet; the agents open none.
    assert opened <= CONDUCTOR_THREADS, f"{opened} database sessions for {2 * OPERATIONS} conductor tasks"
