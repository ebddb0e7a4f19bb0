"""Concurrent port creates on one subnet and network creates across projects, each thread with its
own connection: 200 port creates (fewer on SQLite, one writer at a time) against 100 free addresses
give exactly 100 ports with distinct addresses and a clean Conflict for the rest; concurrent network
creates never share a VLAN. The guarantees are the database's unique constraints."""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, connection, transaction

from identity import quotas
from identity.context import build_context
from identity.errors import Conflict
from networking import services
from networking.models import IPAllocation, Network, Port
from tests.factories import ProjectFactory, grant

from .conftest import active_network

pytestmark = pytest.mark.django_db(transaction=True)


# The PostgreSQL server (max_connections 100) is shared: at most this many threads hold a connection
# at once, as a web server's connection pool would; all of them are started together.
MAX_CONNECTIONS = 40


def race(threads: int, work) -> list[str]:
    outcomes: list[str] = []
    barrier = threading.Barrier(threads)
    pool = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def run(n):
        try:
            barrier.wait()
            with pool:
                try:
                    outcomes.append(work(n))
                finally:
                    connection.close()
        except Exception as exc:  # anything unexpected fails the test below, with its repr
            outcomes.append(repr(exc))

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return outcomes


def test_concurrent_port_creates_hand_out_each_address_once(cloud, nethost):
    postgres = connection.vendor == "postgresql"
    threads, free = (200, 100) if postgres else (24, 12)
    ctx = cloud.ctx(cloud.member)
    quotas.set_limits(cloud.project, {"ports": 1000})
    last = 10 + free - 1
    network = active_network(ctx, cidr="10.30.0.0/24", allocation_pools=[["10.30.0.10", f"10.30.0.{last}"]])
    services.ensure_default_security_group(ctx)

    def create(n):
        try:
            services.create_port(ctx, network=network, name=f"p{n}")
            return "created"
        except Conflict as exc:
            assert exc.code == "ip_exhausted", exc
            return "exhausted"

    outcomes = race(threads, create)
    assert sorted(set(outcomes)) == ["created", "exhausted"], outcomes
    assert outcomes.count("created") == free
    addresses = list(IPAllocation.objects.filter(subnet__network=network).values_list("address", flat=True))
    assert len(addresses) == len(set(addresses)) == free
    assert Port.objects.filter(network=network).count() == free
    assert set(addresses) == {f"10.30.0.{n}" for n in range(10, last + 1)}


def test_concurrent_network_creates_never_share_a_vlan(cloud, nethost, settings):
    threads = 24 if connection.vendor == "postgresql" else 6
    settings.ZENITH_NETWORK_VLAN_RANGE = f"500-{500 + threads - 1}"
    contexts = []
    for n in range(threads):
        project = ProjectFactory(name=f"p{n}")
        grant(cloud.member, project, "member")
        contexts.append(build_context(cloud.member, project))

    def create(n):
        services.create_network(contexts[n], name="n")
        return "created"

    outcomes = race(threads, create)
    assert outcomes == ["created"] * threads, outcomes
    vlans = list(Network.objects.values_list("vlan", flat=True))
    assert sorted(vlans) == list(range(500, 500 + threads))


def test_concurrent_first_uses_make_one_default_network(cloud, nethost):
    threads = 12 if connection.vendor == "postgresql" else 4
    ctx = cloud.ctx(cloud.member)
    outcomes = race(threads, lambda n: str(services.ensure_default_network(ctx).pk))
    assert len(set(outcomes)) == 1, outcomes
    assert Network.objects.filter(project=cloud.project, is_default=True).count() == 1


def test_the_database_refuses_an_address_twice(cloud, nethost):
    network = active_network(cloud.ctx(cloud.member))
    subnet = network.subnets.get()
    IPAllocation.objects.create(subnet=subnet, address="10.10.0.9")
    with pytest.raises(IntegrityError), transaction.atomic():
        IPAllocation.objects.create(subnet=subnet, address="10.10.0.9")
