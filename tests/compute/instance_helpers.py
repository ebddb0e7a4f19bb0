"""Test setup for instances: an active image row, hosts, and instances put in a given state."""

from __future__ import annotations

import hashlib

from compute import services
from compute.models import Image, Instance
from workers.models import Host

from .conftest import make_flavor, make_host

DEMO_BYTES = b"zenith test image\n" * 64


def make_image(name: str = "cirros", **fields) -> Image:
    """An active public image row, as an upload would have left it (test setup, no bytes stored)."""
    defaults = {
        "status": Image.ACTIVE,
        "visibility": Image.PUBLIC,
        "disk_format": "qcow2",
        "size": len(DEMO_BYTES),
        "checksum": hashlib.sha256(DEMO_BYTES).hexdigest(),
    }
    return Image.objects.create(name=name, **{**defaults, **fields})


def launch(cloud, *, user=None, name="vm", flavor=None, image=None, **kwargs) -> Instance:
    """create_instance through the service, as the member of the test project by default."""
    flavor = flavor or make_flavor(f"f-{name}-{Instance.objects.count()}")
    image = image or Image.objects.filter(status=Image.ACTIVE).first() or make_image()
    instance, _created = services.create_instance(
        cloud.ctx(user or cloud.member), name=name, flavor=str(flavor.pk), image=str(image.pk), **kwargs
    )
    return instance


def in_state(
    instance: Instance, vm_state: str, task_state: str = "", host=None, power_state=None
) -> Instance:
    """Put an instance in a state directly (what earlier actions would have left)."""
    if host is None:
        host = Host.objects.filter(name=f"h-{instance.pk.hex[:8]}").first() or make_host(
            f"h-{instance.pk.hex[:8]}"
        )
    power = power_state or {"active": "running", "paused": "paused", "suspended": "suspended"}.get(
        vm_state, "shutdown"
    )
    Instance.objects.filter(pk=instance.pk).update(
        vm_state=vm_state, task_state=task_state, host=host, power_state=power
    )
    instance.refresh_from_db()
    return instance
