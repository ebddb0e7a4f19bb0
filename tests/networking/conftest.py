"""Fixtures for the networking tests: an up network host (``workers.Host`` with the network role) and
helpers that settle a resource's transitions with answers shaped as the agent sends them
(``workers.messages.NetworkResult``)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from networking import services
from networking.models import FloatingIP, Network, Port
from workers.messages import NetworkResult
from workers.models import Host


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_network_host(name: str = "net-1", roles=("network",)) -> Host:
    host, _ = Host.objects.update_or_create(
        name=name, defaults={"roles": list(roles), "last_heartbeat": timezone.now(), "enabled": True}
    )
    return host


@pytest.fixture
def nethost(db) -> Host:
    return make_network_host()


OK = NetworkResult(ok=True, message="applied", simulated=True, applied=("network zenith-net",)).as_dict()


def settle(machine, obj, step: str, answer: dict = OK):
    """The conductor's transition_done for the row's current operation, as the agent answered."""
    obj = type(obj).objects.get(pk=obj.pk)
    machine.settle(str(obj.operation_id), str(obj.pk), step, answer)
    return type(obj).objects.get(pk=obj.pk)


def active_network(ctx, name="net", cidr="10.10.0.0/24", **subnet) -> Network:
    network, _ = services.create_network(ctx, name=name)
    network = settle(services.NETWORK_LIFECYCLE, network, "create")
    services.create_subnet(ctx, network=network, cidr=cidr, sync=False, **subnet)
    return network


def active_port(ctx, network, **kwargs) -> Port:
    port, _ = services.create_port(ctx, network=network, **kwargs)
    return settle(services.PORT_LIFECYCLE, port, "create")


def external_network(admin_ctx, cidr="203.0.113.0/28") -> Network:
    network, _ = services.create_network(admin_ctx, name="public", external=True)
    network = settle(services.NETWORK_LIFECYCLE, network, "create")
    services.create_subnet(admin_ctx, network=network, cidr=cidr, sync=False)
    return network


def settle_fip(fip, step, answer=OK) -> FloatingIP:
    return settle(services.FLOATING_IP_LIFECYCLE, fip, step, answer)
