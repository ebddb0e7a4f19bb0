"""Boot from volume, the services' side: a launch from a new volume made from an image (quota
counted, the build waiting for it, scheduled only onto hosts its pool reaches, spawned with its
connection, in-use when ACTIVE, deleted with the instance when so marked; a failed volume makes the
instance ERROR naming it) and from an existing bootable volume."""

from __future__ import annotations

import pytest

from compute import scheduler, services
from compute.models import Instance
from compute.services import conductor
from identity import quotas
from identity.errors import Conflict, InvalidInput, QuotaExceeded
from storage.models import Attachment, Volume, VolumeType
from tests.storage.conftest import CONNECTION, created_answer, make_storage_host, settle

from .conftest import make_flavor, make_host, node
from .instance_helpers import in_state, launch, make_image

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(cloud):
    VolumeType.objects.get_or_create(name="default", defaults={"backend": "local", "is_default": True})
    image = make_image(min_disk=1)
    flavor = make_flavor("m1.tiny", vcpus=1, ram_mb=512, disk_gb=1)
    make_host("near", memory_mb=8192)
    make_host("far", memory_mb=65536)  # spread would pick it: the pool does not reach it
    make_storage_host("near", reaches=["near"])
    return image, flavor


def root_of(instance) -> Attachment:
    return Attachment.objects.select_related("volume").get(instance_id=instance.pk, device="/dev/vda")


def bfv(cloud, image, flavor, **spec) -> Instance:
    return launch(cloud, flavor=flavor, image=image, boot_from_volume={"size": 1, **spec})


class TestNewVolume:
    def test_the_build_waits_for_the_volume_then_lands_where_the_pool_reaches(self, cloud, world):
        image, flavor = world
        instance = bfv(cloud, image, flavor, delete_on_termination=True)
        root = root_of(instance)
        assert (root.volume.status, root.volume.source, root.volume.bootable) == ("creating", "image", True)
        assert root.host_id is None and root.delete_on_termination
        assert quotas.usage(cloud.project)["volumes"] == 1
        assert instance.disk_gb == 0  # the root disk is the volume, not the host's
        assert conductor.schedule_instance(instance.operation_id, instance.pk) == conductor.VOLUME_WAIT

        settle(root.volume, "create", created_answer(root.volume))
        work = conductor.schedule_instance(instance.operation_id, instance.pk)
        assert work["host"] == "near"
        assert work["root_volume"] == CONNECTION.as_dict()
        assert work["image"]["size"] == 0  # nothing of the image is fetched by the host
        assert Volume.objects.get(pk=root.volume_id).display_status == "reserved"
        assert node("far").vcpus_used == 0

        result = {"ok": True, "host": "near", "power_state": "running"}
        assert conductor.spawn_finished(instance.operation_id, instance.pk, result) == "active"
        volume = Volume.objects.get(pk=root.volume_id)
        assert volume.display_status == "in-use"
        attachment = root_of(instance)
        assert attachment.host.name == "near" and attachment.attached_at is not None

        conductor.finish_delete(None, instance.pk, {"ok": True})
        volume.refresh_from_db()
        assert volume.display_status == "deleting"  # delete_on_termination
        assert not Attachment.objects.live().filter(volume=volume).exists()

    def test_a_failed_volume_makes_the_instance_error_naming_it(self, cloud, world):
        image, flavor = world
        instance = bfv(cloud, image, flavor, delete_on_termination=True)
        root = root_of(instance)
        settle(root.volume, "create", {"ok": False, "error": "pool zenith-volumes is full"})
        assert conductor.schedule_instance(instance.operation_id, instance.pk) is None
        instance.refresh_from_db()
        assert instance.status == "ERROR"
        assert instance.fault["code"] == "volume_failed"
        assert "pool zenith-volumes is full" in instance.fault["message"]
        assert root.volume.name in instance.fault["message"]
        volume = Volume.objects.get(pk=root.volume_id)
        assert volume.display_status == "deleting"  # it was made for the instance: it goes
        assert node("near").vcpus_used == 0

    def test_no_host_the_pool_reaches_is_no_valid_host_with_the_reason(self, cloud, world):
        image, flavor = world
        make_storage_host("lonely", reaches=["lonely"])  # a storage-only host: no compute node
        instance = bfv(cloud, image, flavor)
        root = root_of(instance)
        Volume.objects.filter(pk=root.volume_id).update(
            pool=root.volume.pool.__class__.objects.get(host__name="lonely")
        )
        settle(root.volume, "create", created_answer(root.volume))
        assert conductor.schedule_instance(instance.operation_id, instance.pk) is None
        instance.refresh_from_db()
        assert instance.fault["code"] == "no_valid_host"
        assert "cannot reach the root volume's storage pool" in instance.fault["message"]
        assert Volume.objects.get(pk=root.volume_id).display_status == "reserved"
        # Deleting the instance leaves the volume (not delete_on_termination) available.
        conductor.finish_delete(None, instance.pk, {"ok": True})
        assert Volume.objects.get(pk=root.volume_id).display_status == "available"

    def test_the_volume_quota_refuses_the_launch_and_leaves_nothing(self, cloud, world):
        image, flavor = world
        quotas.set_limits(cloud.project, {"volumes": 0})
        with pytest.raises(QuotaExceeded):
            bfv(cloud, image, flavor)
        assert not Instance.objects.exists() and not Volume.objects.exists()


class TestExistingVolume:
    def _bootable(self, cloud, image) -> Volume:
        from storage import services as storage

        volume, _ = storage.create_volume(cloud.ctx(cloud.member), name="boot", image=str(image.pk))
        return settle(volume, "create", created_answer(volume))

    def test_boot_from_an_available_volume_reserves_it(self, cloud, world):
        image, flavor = world
        volume = self._bootable(cloud, image)
        instance, _ = services.create_instance(
            cloud.ctx(cloud.member), name="vm", flavor=str(flavor.pk), boot_volume=str(volume.pk)
        )
        assert instance.image_id == image.pk  # the volume's source image
        volume.refresh_from_db()
        assert volume.display_status == "reserved"
        work = conductor.schedule_instance(instance.operation_id, instance.pk)
        assert work["host"] == "near" and work["root_volume"]["path"] == CONNECTION.path
        with pytest.raises(Conflict, match="is reserved"):
            services.create_instance(
                cloud.ctx(cloud.member), name="vm2", flavor=str(flavor.pk), boot_volume=str(volume.pk)
            )

    def test_refusals(self, cloud, world):
        image, flavor = world
        ctx = cloud.ctx(cloud.member)
        blank, _ = services_storage().create_volume(ctx, name="blank", size=1)
        settle(blank, "create", created_answer(blank))
        volume = self._bootable(cloud, image)
        cases = [
            ({"boot_volume": str(blank.pk)}, InvalidInput, "not bootable"),
            ({"boot_volume": str(volume.pk), "image": str(image.pk)}, InvalidInput, "not both"),
            ({"boot_volume": str(volume.pk), "boot_from_volume": {"size": 2}}, InvalidInput, "size"),
            ({"image": str(image.pk), "boot_from_volume": {"bogus": 1}}, InvalidInput, "bogus"),
            ({"image": str(image.pk), "boot_from_volume": {"size": 0}}, InvalidInput, "GiB"),
            ({}, InvalidInput, "image"),
        ]
        for kwargs, error, match in cases:
            with pytest.raises(error, match=match):
                services.create_instance(ctx, name="vm", flavor=str(flavor.pk), **kwargs)
        in_state(launch(cloud, flavor=flavor, image=image, name="other"), "active")
        assert not Attachment.objects.exists()


def services_storage():
    from storage import services as storage

    return storage


def test_the_scheduler_filters_by_reach_in_its_one_query(django_assert_num_queries, world):
    request = scheduler.Request(vcpus=1, memory_mb=512, disk_gb=0, reaches=("near",))
    with django_assert_num_queries(1):
        hosts = scheduler.candidates(request)
    assert [h.name for h in hosts] == ["near"]
    verdicts = {v.host: v for v in scheduler.explain(request)}
    assert verdicts["near"].passed and not verdicts["far"].passed
