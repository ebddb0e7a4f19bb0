"""Concurrent requests against one volume and one quota, each thread with its own connection: 20
attaches of one volume to 20 instances (exactly one wins, the rest 409) and 50 creates against a
volume quota of 10 (at most 10 exist). On PostgreSQL the full counts; on SQLite (one writer at a
time) the same races with fewer threads. The one-live-attachment rule is the database's."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from identity import quotas
from identity.errors import Conflict, QuotaExceeded
from storage import services
from storage.models import Attachment, StoragePool, Volume
from storage.services.volumes import claim_pool
from workers.models import Operation

from .conftest import available

pytestmark = pytest.mark.django_db(transaction=True)


def race(threads: int, work) -> list[str]:
    outcomes: list[str] = []
    barrier = threading.Barrier(threads)

    def run(n):
        try:
            barrier.wait()
            outcomes.append(work(n))
        except Exception as exc:  # anything unexpected fails the test below, with its repr
            outcomes.append(repr(exc))
        finally:
            connection.close()

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return outcomes


def test_concurrent_attaches_of_one_volume_one_wins(cloud, pool):
    threads = 20 if connection.vendor == "postgresql" else 8
    volume = available(cloud)
    ctx = cloud.ctx(cloud.member)

    def attach(n):
        try:
            services.attach_volume(ctx, volume, instance_id=uuid.uuid4(), host_name="store-1")
            return "attached"
        except Conflict:
            return "refused"

    outcomes = race(threads, attach)
    assert outcomes.count("attached") == 1, outcomes
    assert outcomes.count("refused") == threads - 1, outcomes
    assert Attachment.objects.live().filter(volume=volume).count() == 1
    assert Operation.objects.filter(kind="volume.attach").count() == 1
    assert Volume.objects.get(pk=volume.pk).busy == "attaching"


def test_concurrent_creates_never_exceed_the_volume_quota(cloud, pool):
    threads = 50 if connection.vendor == "postgresql" else 16
    limit = 10
    quotas.set_limits(cloud.project, {"volumes": limit, "gigabytes": 10_000})
    ctx = cloud.ctx(cloud.member)

    def create(n):
        try:
            services.create_volume(ctx, name=f"v{n}", size=1)
            return "created"
        except QuotaExceeded:
            return "refused"

    outcomes = race(threads, create)
    assert sorted(set(outcomes)) == ["created", "refused"], outcomes
    assert outcomes.count("created") == limit
    assert Volume.objects.filter(project=cloud.project).count() == limit
    assert StoragePool.objects.get(pk=pool.pk).allocated_gb == limit


def test_concurrent_creates_never_overfill_a_pool(cloud, vtype):
    from .conftest import make_storage_host

    pool = make_storage_host("tight", capacity_gb=5)
    threads = 20 if connection.vendor == "postgresql" else 8
    quotas.set_limits(cloud.project, {"volumes": 1000, "gigabytes": 10_000})
    ctx = cloud.ctx(cloud.member)

    def create(n):
        try:
            services.create_volume(ctx, name=f"v{n}", size=1)
            return "created"
        except Conflict:
            return "refused"

    outcomes = race(threads, create)
    assert outcomes.count("created") == 5, outcomes
    assert StoragePool.objects.get(pk=pool.pk).allocated_gb == 5


def test_the_pool_claim_is_a_plain_conditional_update(cloud, pool):
    """As the scheduler's claim (tests/compute/test_scheduler.py): the fit on the updated row, the
    enabled host as EXISTS, never an ``id IN (SELECT ...)`` that PostgreSQL would not re-check."""
    with CaptureQueriesContext(connection) as queries:
        assert claim_pool(pool.pk, 1)
    (sql,) = [q["sql"].upper() for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert " IN (SELECT" not in sql and "EXISTS" in sql, sql


def test_the_database_refuses_a_second_live_attachment(cloud, pool):
    volume = available(cloud)
    Attachment.objects.create(volume=volume, instance_id=uuid.uuid4(), device="/dev/vdb")
    with pytest.raises(IntegrityError), transaction.atomic():
        Attachment.objects.create(volume=volume, instance_id=uuid.uuid4(), device="/dev/vdb")
    Attachment.objects.update(detached_at="2026-01-01T00:00:00Z")
    Attachment.objects.create(volume=volume, instance_id=uuid.uuid4(), device="/dev/vdb")  # after a detach
