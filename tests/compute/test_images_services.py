"""Image services: create, streamed upload (status, size, sha256, killed on failure, bounded memory),
download, update, soft delete, sharing, the launch checks and boot spec, signed URLs, the demo image."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import time
import tracemalloc
import urllib.parse

import pytest
from django.conf import settings as django_settings
from django.core import signing
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.management import call_command

from compute import services
from compute.models import Image, ImageMember, Instance
from identity.errors import Conflict, InvalidInput, NotFound, PolicyDenied, ServiceUnavailable

from .conftest import make_flavor
from .image_helpers import DATA, chunked, sha256, uploaded_image

MiB = 1 << 20


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    """Image bytes go to a fresh MEDIA_ROOT per test."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def stored_files(media) -> list[str]:
    return sorted(p.name for p in media.rglob("*") if p.is_file())


def queued(cloud, user=None, **fields) -> Image:
    ctx = cloud.ctx(user or cloud.member)
    return services.create_image(ctx, name=fields.pop("name", "disk"), disk_format="qcow2", **fields)


# --- create ---------------------------------------------------------------------------------------


def test_member_creates_a_queued_private_image_in_their_project(cloud):
    image = queued(cloud, min_disk=2, min_ram=256, properties={"os_distro": "cirros"})
    assert (image.status, image.visibility, image.project, image.owner) == (
        Image.QUEUED,
        Image.PRIVATE,
        cloud.project,
        cloud.member,
    )
    assert (image.size, image.checksum, image.min_disk, image.min_ram) == (None, "", 2, 256)


def test_reader_cannot_create(cloud):
    with pytest.raises(PolicyDenied):
        queued(cloud, cloud.reader)


def test_only_admins_publish(cloud):
    with pytest.raises(PolicyDenied):
        queued(cloud, visibility="public")
    assert queued(cloud, cloud.admin, visibility="public").visibility == Image.PUBLIC


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"name": "  "}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"disk_format": "vmdk"}, "Disk format"),
        ({"container_format": "ovf"}, "Container format"),
        ({"disk_format": "aki"}, "container format aki"),
        ({"container_format": "ari"}, "ari disk images only"),
        ({"visibility": "community"}, "Visibility"),
        ({"min_disk": -1}, "Minimum disk"),
        ({"min_ram": True}, "Minimum RAM"),
        ({"min_ram": "512"}, "Minimum RAM"),
        ({"protected": "yes"}, "Protected"),
        ({"properties": ["a"]}, "Properties"),
        ({"properties": {"k": 1}}, "string value"),
        ({"properties": {"bad key": "v"}}, "Property names"),
        ({"properties": {"kernel_id": "not-an-id"}}, "kernel_id"),
    ],
)
def test_create_refuses_bad_input(cloud, fields, message):
    values = {"name": "disk", "disk_format": "qcow2", **fields}
    with pytest.raises(InvalidInput, match=message):
        services.create_image(cloud.ctx(cloud.member), **values)
    assert not Image.objects.exists()


def test_kernel_and_ramdisk_must_be_visible_active_aki_ari_images(cloud):
    member = cloud.ctx(cloud.member)
    kernel = uploaded_image(member, "vmlinuz", disk_format="aki", container_format="aki")
    ramdisk = uploaded_image(member, "initrd", disk_format="ari", container_format="ari")
    disk = uploaded_image(member, "root")
    image = queued(cloud, properties={"kernel_id": str(kernel.pk), "ramdisk_id": str(ramdisk.pk)})
    assert image.properties == {"kernel_id": str(kernel.pk), "ramdisk_id": str(ramdisk.pk)}
    with pytest.raises(InvalidInput, match="must name an aki image"):
        queued(cloud, properties={"kernel_id": str(disk.pk)})
    with pytest.raises(InvalidInput, match="must name an ari image"):
        queued(cloud, properties={"ramdisk_id": str(kernel.pk)})
    not_uploaded = services.create_image(member, name="k2", disk_format="aki", container_format="aki")
    with pytest.raises(InvalidInput, match="queued, not active"):
        queued(cloud, properties={"kernel_id": str(not_uploaded.pk)})
    # Another project's private kernel is invisible: named like a missing one.
    with pytest.raises(InvalidInput, match="no image you can see"):
        queued(cloud, cloud.other_member, properties={"kernel_id": str(kernel.pk)})


# --- upload ---------------------------------------------------------------------------------------


def test_upload_streams_to_storage_and_records_size_and_sha256(cloud, media):
    image = queued(cloud)
    seen = []

    def chunks():
        for chunk in chunked(DATA, 4096):
            seen.append(Image.objects.get(pk=image.pk).status)
            yield chunk

    result = services.upload_image_data(cloud.ctx(cloud.member), image, chunks(), expected_size=len(DATA))
    assert set(seen) == {Image.SAVING}  # saving while the bytes arrive
    image.refresh_from_db()
    assert (image.status, image.size, image.checksum) == (Image.ACTIVE, len(DATA), sha256(DATA))
    assert result.status == Image.ACTIVE
    with default_storage.open(image.file.name, "rb") as fh:
        assert fh.read() == DATA
    assert stored_files(media) == [str(image.pk)]


@pytest.mark.parametrize("first", [Image.ACTIVE, Image.KILLED])
def test_data_is_uploaded_once(cloud, first):
    image = queued(cloud)
    if first == Image.ACTIVE:
        services.upload_image_data(cloud.ctx(cloud.member), image, [b"data"])
    else:
        with pytest.raises(InvalidInput):
            services.upload_image_data(cloud.ctx(cloud.member), image, [b"data"], expected_size=99)
    with pytest.raises(Conflict, match=f"is {first}"):
        services.upload_image_data(cloud.ctx(cloud.member), image, [b"other"])
    assert Image.objects.get(pk=image.pk).status == first


def _disconnect():
    yield b"a" * 70000
    raise OSError("client went away")


def _storage_fails(*args, **kwargs):
    raise AssertionError("replaced in the test")


@pytest.mark.parametrize(
    "chunks, expected_size, error, code",
    [
        (lambda: iter([b"a" * 1000]), 2000, InvalidInput, "size_mismatch"),
        (lambda: iter([b"a" * 3000]), 2000, InvalidInput, "size_mismatch"),
        (lambda: iter([]), None, InvalidInput, "size_mismatch"),
        (_disconnect, None, InvalidInput, "upload_interrupted"),
        (lambda: iter(["text, not bytes"]), None, InvalidInput, "upload_interrupted"),
    ],
    ids=["short", "long", "empty", "disconnect", "not-bytes"],
)
def test_failed_upload_kills_the_image_and_keeps_no_bytes(cloud, media, chunks, expected_size, error, code):
    image = queued(cloud)
    with pytest.raises(error) as info:
        services.upload_image_data(cloud.ctx(cloud.member), image, chunks(), expected_size=expected_size)
    assert info.value.code == code
    assert "killed" in info.value.message
    image.refresh_from_db()
    assert (image.status, image.size, image.checksum, image.file.name) == (Image.KILLED, None, "", "")
    assert stored_files(media) == []


def test_storage_error_kills_the_image_and_removes_the_partial_file(cloud, media, monkeypatch):
    original = FileSystemStorage._save

    def save_then_fail(self, name, content):
        def half():
            for n, chunk in enumerate(content.chunks()):
                if n == 2:
                    raise OSError(28, "No space left on device")
                yield chunk

        class Half:
            def chunks(self):
                return half()

        return original(self, name, Half())

    monkeypatch.setattr(FileSystemStorage, "_save", save_then_fail)
    image = queued(cloud)
    with pytest.raises(ServiceUnavailable) as info:
        services.upload_image_data(cloud.ctx(cloud.member), image, chunked(DATA, 1000))
    assert info.value.code == "storage_error"
    assert Image.objects.get(pk=image.pk).status == Image.KILLED
    assert stored_files(media) == []


def test_upload_of_64_mib_is_never_held_in_memory(cloud, media):
    image = queued(cloud)
    block = bytes(range(256)) * 4096  # 1 MiB, reused: the test itself holds one block

    def chunks():
        for _ in range(64):
            yield block

    tracemalloc.start()
    try:
        services.upload_image_data(cloud.ctx(cloud.member), image, chunks(), expected_size=64 * MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    image.refresh_from_db()
    assert (image.status, image.size) == (Image.ACTIVE, 64 * MiB)
    assert peak < 16 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_upload_is_for_the_owning_project(cloud):
    admin = cloud.ctx(cloud.admin)
    public = services.create_image(admin, name="pub", disk_format="raw", visibility="public")
    with pytest.raises(PolicyDenied, match="another project"):
        services.upload_image_data(cloud.ctx(cloud.member), public, [b"x"])
    with pytest.raises(PolicyDenied):
        services.upload_image_data(cloud.ctx(cloud.reader), queued(cloud), [b"x"])
    assert Image.objects.filter(status=Image.QUEUED).count() == 2


def test_image_deleted_during_upload_keeps_no_bytes(cloud, media):
    image = queued(cloud)

    def chunks():
        yield b"first"
        services.delete_image(cloud.ctx(cloud.member), Image.objects.get(pk=image.pk))
        yield b"second"

    with pytest.raises(Conflict, match="deleted during the upload"):
        services.upload_image_data(cloud.ctx(cloud.member), image, chunks())
    assert Image.objects.get(pk=image.pk).status == Image.DELETED
    assert stored_files(media) == []


# --- download -------------------------------------------------------------------------------------


def test_download_gives_the_bytes_of_active_images_only(cloud):
    image = uploaded_image(cloud.ctx(cloud.member))
    with services.open_image_data(cloud.ctx(cloud.reader), image) as fh:
        assert fh.read() == DATA
    with pytest.raises(Conflict, match="queued"):
        services.open_image_data(cloud.ctx(cloud.member), queued(cloud, name="empty"))


# --- update ---------------------------------------------------------------------------------------


def test_update_changes_metadata_of_own_images(cloud):
    image = uploaded_image(cloud.ctx(cloud.member), properties={"a": "1"})
    updated = services.update_image(
        cloud.ctx(cloud.member),
        image,
        name="renamed",
        visibility="shared",
        min_disk=5,
        min_ram=1024,
        protected=True,
        properties={"b": "2"},
    )
    image.refresh_from_db()
    assert (image.name, image.visibility, image.min_disk, image.min_ram, image.protected) == (
        "renamed",
        "shared",
        5,
        1024,
        True,
    )
    assert image.properties == {"b": "2"} == updated.properties
    assert (image.status, image.checksum) == (Image.ACTIVE, sha256(DATA))


def test_update_rules(cloud):
    member = cloud.ctx(cloud.member)
    image = uploaded_image(member)
    with pytest.raises(InvalidInput, match="disk_format"):
        services.update_image(member, image, disk_format="raw")
    with pytest.raises(PolicyDenied):
        services.update_image(member, image, visibility="public")
    with pytest.raises(PolicyDenied):
        services.update_image(cloud.ctx(cloud.reader), image, name="x")
    with pytest.raises(InvalidInput, match="Minimum disk"):
        services.update_image(member, image, min_disk=-3)
    with pytest.raises(InvalidInput, match="own kernel"):
        kernel = uploaded_image(member, "k", disk_format="aki", container_format="aki")
        services.update_image(member, kernel, properties={"kernel_id": str(kernel.pk)})
    assert services.update_image(cloud.ctx(cloud.admin), image, visibility="public").visibility == "public"
    # A public image is everyone's to use, not to change.
    with pytest.raises(PolicyDenied, match="another project"):
        services.update_image(cloud.ctx(cloud.other_member), image, name="mine now")


def test_cloud_owned_images_stay_public(cloud):
    services.seed_images()
    demo = Image.objects.get(name=services.DEMO_IMAGE_NAME)
    with pytest.raises(InvalidInput, match="only be public"):
        services.update_image(cloud.ctx(cloud.admin), demo, visibility="private")


# --- delete ---------------------------------------------------------------------------------------


def test_delete_is_soft_and_removes_the_bytes(cloud, media, django_capture_on_commit_callbacks):
    member = cloud.ctx(cloud.member)
    image = uploaded_image(member)
    flavor = make_flavor("f1")
    instance = Instance.objects.create(
        name="vm", project=cloud.project, flavor=flavor, image=image, vcpus=1, memory_mb=512, disk_gb=1
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_image(member, image)
    image.refresh_from_db()
    assert (image.status, image.file.name) == (Image.DELETED, "")
    assert stored_files(media) == []
    assert not Image.objects.visible_to(member).exists()
    assert not Image.objects.visible_to(cloud.ctx(cloud.admin)).exists()
    assert Instance.objects.get(pk=instance.pk).image_id == image.pk  # the row stays for its instances


def test_protected_images_are_not_deleted(cloud):
    image = uploaded_image(cloud.ctx(cloud.member), protected=True)
    with pytest.raises(Conflict, match=r"Image disk is protected"):
        services.delete_image(cloud.ctx(cloud.member), image)
    assert Image.objects.get(pk=image.pk).status == Image.ACTIVE


def test_only_the_owning_project_deletes(cloud):
    admin = cloud.ctx(cloud.admin)
    image = uploaded_image(admin, visibility="public")
    with pytest.raises(PolicyDenied):
        services.delete_image(cloud.ctx(cloud.member), image)
    mine = uploaded_image(cloud.ctx(cloud.member), "mine")
    with pytest.raises(PolicyDenied):
        services.delete_image(cloud.ctx(cloud.reader), mine)
    services.delete_image(admin, mine)
    with pytest.raises(NotFound):
        services.delete_image(admin, mine)


# --- sharing --------------------------------------------------------------------------------------


def test_sharing_with_named_projects(cloud):
    member, other = cloud.ctx(cloud.member), cloud.ctx(cloud.other_member)
    image = uploaded_image(member, visibility="shared")
    assert not Image.objects.visible_to(other).filter(pk=image.pk).exists()
    grant = services.add_image_member(member, image, cloud.other_project)
    assert isinstance(grant, ImageMember) and grant.status == ImageMember.PENDING
    assert not Image.objects.visible_to(other).filter(pk=image.pk).exists()  # until beta accepts
    services.set_image_member_status(other, image, cloud.other_project, ImageMember.ACCEPTED)
    assert Image.objects.visible_to(other).filter(pk=image.pk).exists()
    assert [m.project for m in services.list_image_members(member, image)] == [cloud.other_project]
    with pytest.raises(Conflict, match="already shared"):
        services.add_image_member(member, image, cloud.other_project)
    # The grantee may use it, not share it further nor see who else has it.
    with pytest.raises(PolicyDenied):
        services.add_image_member(other, image, cloud.admin_project)
    with pytest.raises(PolicyDenied):
        services.list_image_members(other, image)
    services.remove_image_member(member, image, cloud.other_project)
    assert not Image.objects.visible_to(other).filter(pk=image.pk).exists()
    with pytest.raises(NotFound):
        services.remove_image_member(member, image, cloud.other_project)


def test_sharing_rules(cloud):
    member = cloud.ctx(cloud.member)
    private = uploaded_image(member)
    with pytest.raises(Conflict, match="make it shared"):
        services.add_image_member(member, private, cloud.other_project)
    shared = uploaded_image(member, "s", visibility="shared")
    with pytest.raises(InvalidInput, match="owns image"):
        services.add_image_member(member, shared, cloud.project)
    with pytest.raises(PolicyDenied):
        services.add_image_member(cloud.ctx(cloud.reader), shared, cloud.other_project)
    services.add_image_member(cloud.ctx(cloud.admin), shared, cloud.other_project)


# --- launch support -------------------------------------------------------------------------------


def test_check_image_bootable(cloud):
    member = cloud.ctx(cloud.member)
    flavor = make_flavor("small", ram_mb=1024, disk_gb=10)
    image = uploaded_image(member, min_disk=10, min_ram=1024)
    services.check_image_bootable(image, flavor)
    services.check_image_bootable(image, make_flavor("volume-backed", ram_mb=1024, disk_gb=0))
    with pytest.raises(InvalidInput, match="at least 11 GB"):
        services.check_image_bootable(services.update_image(member, image, min_disk=11), flavor)
    with pytest.raises(InvalidInput, match="at least 2048 MB of RAM"):
        services.check_image_bootable(services.update_image(member, image, min_disk=1, min_ram=2048), flavor)
    with pytest.raises(InvalidInput, match="queued, not active"):
        services.check_image_bootable(queued(cloud, name="new"), flavor)
    kernel = uploaded_image(member, "k", disk_format="aki", container_format="aki")
    with pytest.raises(InvalidInput, match="kernel or ramdisk"):
        services.check_image_bootable(kernel, flavor)
    direct = uploaded_image(member, "direct", properties={"kernel_id": str(kernel.pk)})
    services.check_image_bootable(direct, flavor)
    services.delete_image(member, kernel)
    with pytest.raises(InvalidInput, match="kernel_id .* is deleted"):
        services.check_image_bootable(direct, flavor)


def test_image_boot_spec_names_the_image_kernel_and_ramdisk(cloud, settings):
    settings.ZENITH_PORTAL_URL = "http://portal.example:8080"
    member = cloud.ctx(cloud.member)
    kernel = uploaded_image(member, "k", data=b"kernel", disk_format="aki", container_format="aki")
    ramdisk = uploaded_image(member, "r", data=b"ramdisk", disk_format="ari", container_format="ari")
    image = uploaded_image(member, properties={"kernel_id": str(kernel.pk), "ramdisk_id": str(ramdisk.pk)})
    spec = json.loads(json.dumps(services.image_boot_spec(image)))
    assert set(spec) == {"id", "name", "url", "checksum", "size", "disk_format", "kernel", "ramdisk"}
    assert (spec["id"], spec["checksum"], spec["size"], spec["disk_format"]) == (
        str(image.pk),
        sha256(DATA),
        len(DATA),
        "qcow2",
    )
    assert spec["kernel"]["checksum"] == sha256(b"kernel") and spec["kernel"]["disk_format"] == "aki"
    assert spec["ramdisk"]["size"] == len(b"ramdisk") and spec["ramdisk"]["id"] == str(ramdisk.pk)
    assert spec["url"].startswith("http://portal.example:8080/api/v1/compute/image-data/")
    assert services.image_boot_spec(kernel)["kernel"] is None


def test_fetch_urls_are_signed_and_expire(cloud, settings, monkeypatch):
    image = uploaded_image(cloud.ctx(cloud.member))
    token = urllib.parse.urlsplit(services.image_fetch_url(image)).path.rsplit("/", 1)[1]
    assert services.read_image_token(token) == (str(image.pk), image.checksum)
    with pytest.raises(PolicyDenied) as info:
        services.read_image_token(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    assert info.value.code == "bad_signature"
    forged = signing.dumps({"i": str(image.pk), "c": image.checksum}, salt="another-purpose")
    with pytest.raises(PolicyDenied):
        services.read_image_token(forged)

    class HourAgo:
        @staticmethod
        def time():
            return time.time() - django_settings.ZENITH_IMAGE_URL_TTL - 5

    monkeypatch.setattr(signing, "time", HourAgo)
    old = urllib.parse.urlsplit(services.image_fetch_url(image)).path.rsplit("/", 1)[1]
    monkeypatch.undo()
    with pytest.raises(PolicyDenied) as info:
        services.read_image_token(old)
    assert info.value.code == "url_expired"


# --- the demo image -------------------------------------------------------------------------------


def test_seed_images_makes_a_valid_public_qcow2_once(cloud, media):
    created = services.seed_images()
    assert [image.name for image in created] == ["zenith-demo"]
    demo = Image.objects.get(name="zenith-demo")
    assert (demo.status, demo.visibility, demo.project, demo.disk_format) == (
        Image.ACTIVE,
        Image.PUBLIC,
        None,
        "qcow2",
    )
    with default_storage.open(demo.file.name, "rb") as fh:
        data = fh.read()
    assert (demo.size, demo.checksum) == (len(data), sha256(data))
    magic, version, _, _, cluster_bits, size = struct.unpack(">4sIQIIQ", data[:32])
    assert (magic, version, cluster_bits, size) == (b"QFI\xfb", 2, 16, 1 << 30)
    assert Image.objects.visible_to(cloud.ctx(cloud.other_member)).filter(pk=demo.pk).exists()
    assert services.seed_images() == []
    call_command("seed_images")
    assert Image.objects.filter(name="zenith-demo").count() == 1
    if shutil.which("qemu-img"):
        path = media / demo.file.name
        info = json.loads(subprocess.check_output(["qemu-img", "info", "--output=json", str(path)]))
        assert (info["format"], info["virtual-size"]) == ("qcow2", 1 << 30)
        subprocess.run(["qemu-img", "check", str(path)], check=True, capture_output=True)


def test_seed_images_restores_missing_bytes(cloud, media):
    services.seed_images()
    demo = Image.objects.get(name="zenith-demo")
    default_storage.delete(demo.file.name)
    assert [image.pk for image in services.seed_images()] == [demo.pk]
    assert default_storage.exists(Image.objects.get(pk=demo.pk).file.name)
