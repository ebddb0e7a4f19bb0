"""Fixtures for the compute tests: a public and a private flavor (the private one shared with nobody)."""

from dataclasses import dataclass

import pytest

from compute.models import Flavor
from workers.models import Host


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2's deliberate slowness costs ~0.3 s per user; these tests check rules, not hashing cost."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class Flavors:
    public: Flavor
    private: Flavor


def make_flavor(name: str, **fields) -> Flavor:
    """A flavor row as an admin would have created it (no policy involved: this is test setup)."""
    defaults = {"vcpus": 1, "ram_mb": 512, "disk_gb": 1}
    return Flavor.objects.create(name=name, **{**defaults, **fields})


@pytest.fixture
def flavors(cloud) -> Flavors:
    return Flavors(
        public=make_flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20),
        private=make_flavor("secret.big", vcpus=16, ram_mb=65536, disk_gb=500, is_public=False),
    )


# What ``LibvirtDriver("test:///default").host_info()`` sends, as a dict (``asdict(HostInfo)``).
TEST_HOST_INFO = {
    "hostname": "localhost",
    "vcpus": 16,
    "memory_mb": 8192,
    "disk_gb": 0,
    "hypervisor_type": "TEST",
    "hypervisor_version": 2,
    "uri": "test:///default",
    "arch": "i686",
    "cpu_mhz": 1400,
}


HOST_FIELDS = {"uri", "roles", "availability_zone", "enabled", "disabled_reason", "last_heartbeat"}


def make_host(name: str, **fields) -> Host:
    """A host and its compute node as its agent's first heartbeat would have created them (test
    setup); ``fields`` of either."""
    from django.utils import timezone

    from compute.models import ComputeNode

    fields = {"vcpus": 16, "memory_mb": 65536, "disk_gb": 100, "last_heartbeat": timezone.now(), **fields}
    host = Host.objects.create(name=name, **{k: v for k, v in fields.items() if k in HOST_FIELDS})
    ComputeNode.objects.create(host=host, **{k: v for k, v in fields.items() if k not in HOST_FIELDS})
    return host


def node(name: str):
    """The compute node of host ``name``, as the database has it now."""
    from compute.models import ComputeNode

    return ComputeNode.objects.select_related("host").get(host__name=name)
