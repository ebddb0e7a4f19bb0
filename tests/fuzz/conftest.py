"""The world the fuzz tests aim at: one real object of every kind the API and the dashboard address
by id, so that generated input meets real rows, not only 404s."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.utils import timezone

from compute import services as compute
from compute.models import Flavor, Image, Instance
from identity import services as identity
from identity.models import RoleAssignment
from storage.models import VolumeType
from tests.compute.conftest import make_host
from workers.models import Operation

IMAGE_BYTES = b"zenith fuzz image\n" * 100


@dataclass
class World:
    ids: dict[str, str]  # kind ("instance", "image", ...) -> the id of a real object of that kind
    other_project: str  # a project the image is shared with (the image's member)
    image_token: str  # a signed image-data token, as a host gets it


@pytest.fixture
def fast_hashing(settings):
    """Set before the users are made: PBKDF2 would cost ~0.3 s per user and login, per test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(fast_hashing, cloud) -> World:
    member = cloud.ctx(cloud.member)
    compute.seed_flavors()
    host = make_host(
        "fuzz-host",
        hypervisor_type="TEST",
        last_heartbeat=timezone.now() - timezone.timedelta(hours=1),  # down: no console wait
    )
    image = compute.create_image(member, name="fuzz-image", disk_format="qcow2", visibility="shared")
    compute.upload_image_data(member, image, [IMAGE_BYTES])
    compute.add_image_member(member, image, cloud.other_project)
    instance, _ = compute.create_instance(member, name="fuzz-vm", flavor="m1.tiny", image="fuzz-image")
    Instance.objects.filter(pk=instance.pk).update(
        vm_state="active", task_state="", power_state="running", host=host
    )
    from storage import services as storage
    from tests.storage.conftest import created_answer, make_storage_host

    VolumeType.objects.get_or_create(name="default", defaults={"backend": "local", "is_default": True})
    pool = make_storage_host("fuzz-store")
    volume, _ = storage.create_volume(member, name="fuzz-volume", size=1)
    storage.VOLUME.settle(str(volume.operation_id), str(volume.pk), "create", created_answer(volume))
    snapshot = storage.create_snapshot(member, volume=str(volume.pk), name="fuzz-snapshot")
    from networking import services as networking
    from tests.networking.conftest import active_network, active_port, external_network, make_network_host

    make_network_host("fuzz-net")
    network = active_network(member, name="fuzz-net", cidr="10.77.0.0/24")
    port = active_port(member, network)
    fip = networking.allocate_floating_ip(member, network=external_network(cloud.ctx(cloud.admin)))
    group = networking.create_security_group(member, name="fuzz-group")
    rule = networking.create_rule(
        member, group=group, direction="ingress", protocol="tcp", port_min=22, port_max=22
    )
    ids = {
        "network": network.pk,
        "subnet": network.subnets.get().pk,
        "port": port.pk,
        "floating_ip": fip.pk,
        "security_group": group.pk,
        "security_group_rule": rule.pk,
        "volume": volume.pk,
        "snapshot": snapshot.pk,
        "volume_type": VolumeType.objects.get(name="default").pk,
        "storage_backend": pool.pk,
        "flavor": Flavor.objects.get(name="m1.tiny").pk,
        "host": host.pk,
        "image": image.pk,
        "instance": instance.pk,
        "keypair": identity.create_keypair(member, name="fuzz-key").keypair.pk,
        "project": cloud.project.pk,
        "role_assignment": RoleAssignment.objects.filter(project=cloud.project).first().pk,
        "role": RoleAssignment.objects.first().role_id,
        "user": cloud.member.pk,
        "operation": Operation.objects.filter(project=cloud.project).first().pk,
    }
    return World(
        ids={kind: str(pk) for kind, pk in ids.items()},
        other_project=str(cloud.other_project.pk),
        image_token=compute.image_fetch_url(Image.objects.get(pk=image.pk)).rsplit("/", 1)[-1],
    )
