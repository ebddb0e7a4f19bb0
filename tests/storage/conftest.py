"""Fixtures for the storage tests: a storage host with a ``default`` pool, the default volume type,
and helpers that settle a volume's transitions with answers shaped as the agent sends them."""

from __future__ import annotations

import pytest
from django.utils import timezone

from identity.context import system_context
from storage import services
from storage.models import GIB, StoragePool, Volume, VolumeType
from workers.messages import AttachmentResult, VolumeConnection, VolumeResult
from workers.models import Host


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_storage_host(
    name: str, *, capacity_gb: int = 100, reaches=None, roles=("compute", "storage")
) -> StoragePool:
    """A host whose heartbeat reported one ``local`` dir pool (through the real receiver)."""
    host, _ = Host.objects.update_or_create(
        name=name, defaults={"roles": list(roles), "last_heartbeat": timezone.now()}
    )
    report = services.clean_storage_report(
        {
            "backends": [
                {
                    "name": "local",
                    "type": "dir",
                    "pool": "zenith-volumes",
                    "capacity_bytes": capacity_gb * GIB,
                    "available_bytes": capacity_gb * GIB,
                    "reaches": list(reaches if reaches is not None else [name]),
                    "simulated": True,
                }
            ]
        }
    )
    services.record_storage_report(name, report, timezone.now())
    return StoragePool.objects.select_related("host").get(host=host, name="local")


@pytest.fixture
def vtype(db) -> VolumeType:
    return VolumeType.objects.get_or_create(
        name="default", defaults={"backend": "local", "is_default": True}
    )[0]


@pytest.fixture
def pool(db, vtype) -> StoragePool:
    return make_storage_host("store-1")


CONNECTION = VolumeConnection(type="file", path="/var/lib/zenith/volumes/v.qcow2", format="qcow2")


def created_answer(volume: Volume) -> dict:
    return VolumeResult(
        ok=True, message="created", size_bytes=volume.size * GIB, connection=CONNECTION, existed=False
    ).as_dict()


def settle(volume, step: str, answer: dict) -> Volume:
    """The conductor's transition_done for the volume's current operation, as the agent answered."""
    volume = Volume.objects.get(pk=volume.pk)
    services.VOLUME.settle(str(volume.operation_id), str(volume.pk), step, answer)
    return Volume.objects.get(pk=volume.pk)


def available(cloud, name="data", size=1, **kwargs) -> Volume:
    volume, _ = services.create_volume(cloud.ctx(cloud.member), name=name, size=size, **kwargs)
    return settle(volume, "create", created_answer(volume))


def attached(cloud, volume, instance_id, host="store-1") -> Volume:
    services.attach_volume(cloud.ctx(cloud.member), volume, instance_id=instance_id, host_name=host)
    return settle(volume, "attach", AttachmentResult(ok=True, target_dev="vdb", live=False).as_dict())


def system():
    return system_context()
