"""Many concurrent creates against a quota: exactly the limit succeeds, never one more.

On PostgreSQL this is 50 threads, each with its own connection, against a quota of 10 instances; on
SQLite (one writer at a time) the same race is run with fewer threads.
"""

import threading

import pytest
from django.db import connection

from compute import services
from compute.models import Instance
from identity import quotas
from identity.errors import QuotaExceeded
from workers.models import Operation

from .conftest import make_flavor
from .instance_helpers import make_image


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_never_exceed_the_instance_quota(cloud):
    threads = 50 if connection.vendor == "postgresql" else 20
    limit = 10
    quotas.set_limits(cloud.project, {"instances": limit, "cores": 1000, "ram": 10**6})
    make_flavor("m1.tiny", vcpus=1, ram_mb=512, disk_gb=1)
    make_image()
    ctx = cloud.ctx(cloud.member)
    outcomes, barrier = [], threading.Barrier(threads)

    def create(n):
        try:
            barrier.wait()
            try:
                services.create_instance(ctx, name=f"vm-{n}", flavor="m1.tiny", image="cirros")
                outcomes.append("created")
            except QuotaExceeded:
                outcomes.append("refused")
        except Exception as exc:  # anything else is a failure of the test, reported below
            outcomes.append(repr(exc))
        finally:
            connection.close()  # this thread's own; close_old_connections keeps it (CONN_MAX_AGE)

    workers = [threading.Thread(target=create, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(set(outcomes)) == ["created", "refused"], outcomes
    assert outcomes.count("created") == limit
    assert Instance.objects.filter(project=cloud.project).count() == limit
    assert Operation.objects.filter(kind="instance.create").count() == limit
