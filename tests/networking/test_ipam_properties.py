"""IPAM properties (Hypothesis): any sequence of allocations and releases on a small subnet never
hands out an address twice, never loses one (free + held = the pool), and stays inside the pools;
an exhausted pool is always a Conflict, never a duplicate."""

from __future__ import annotations

import ipaddress

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity.errors import Conflict
from networking.models import IPAllocation
from networking.services import ipam

from .conftest import active_network

pytestmark = pytest.mark.django_db

POOL = [["10.40.0.10", "10.40.0.25"], ["10.40.0.40", "10.40.0.43"]]
POOL_SIZE = 16 + 4

steps = st.lists(
    st.one_of(
        st.tuples(st.just("allocate"), st.none()),
        st.tuples(st.just("request"), st.integers(min_value=1, max_value=60)),
        st.tuples(st.just("release"), st.integers(min_value=0, max_value=100)),
    ),
    max_size=60,
)


@pytest.fixture
def subnet(cloud, nethost):
    network = active_network(cloud.ctx(cloud.member), cidr="10.40.0.0/26", allocation_pools=POOL)
    return network.subnets.get()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=steps)
def test_random_allocate_release_never_duplicates_or_loses(subnet, sequence):
    pools = [(ipaddress.ip_address(a), ipaddress.ip_address(b)) for a, b in POOL]
    with transaction.atomic():
        held: list[IPAllocation] = []
        for action, arg in sequence:
            if action == "allocate":
                if len(held) == POOL_SIZE:
                    with pytest.raises(Conflict, match="exhausted"):
                        ipam.allocate(subnet)
                else:
                    held.append(ipam.allocate(subnet))
            elif action == "request":
                address = f"10.40.0.{arg}"
                taken = any(a.address == address for a in held)
                try:
                    held.append(ipam.allocate(subnet, requested=address))
                    assert not taken
                except Conflict:
                    assert taken
                except Exception as exc:  # outside the subnet's usable addresses or the gateway
                    assert "usable" in str(exc) or "gateway" in str(exc)
            elif held:
                victim = held.pop(arg % len(held))
                assert ipam.release([victim]) == 1
            stored = list(IPAllocation.objects.filter(subnet=subnet).values_list("address", flat=True))
            assert len(stored) == len(set(stored)), "an address was handed out twice"
            assert sorted(stored) == sorted(a.address for a in held), "an address was lost"
            pooled = [a for a in held if any(lo <= ipaddress.ip_address(a.address) <= hi for lo, hi in pools)]
            assert ipam.free_count(subnet) == POOL_SIZE - len(pooled)
        transaction.set_rollback(True)
