"""``manage.py register_guest_image``: the real-host test guest as images, the way OpenStack boots
a kernel directly: an AKI (kernel) and an ARI (ramdisk) referenced by the root-disk image
``zenith-guest`` through its ``kernel_id``/``ramdisk_id`` properties (idempotent)."""

import hashlib
import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from compute import services
from compute.models import Image
from identity.context import system_context

GUEST = "zenith-guest"
CHUNK = 1024 * 1024


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _chunks(path: Path):
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


class Command(BaseCommand):
    help = (
        "Register the guest built by tests/guest/build.sh (kernel, initramfs, root disk) as the public "
        f"images {GUEST}-kernel (aki), {GUEST}-ramdisk (ari) and {GUEST} (qcow2, boots on QEMU hosts)."
    )

    def add_arguments(self, parser):
        default = os.environ.get("ZENITH_GUEST_DIR") or str(Path(settings.BASE_DIR) / "var" / "guest")
        parser.add_argument("--dir", default=default, help=f"the built guest (default {default})")

    def handle(self, *args, dir, **options):
        guest = Path(dir)
        files = {name: guest / name for name in ("vmlinuz", "initrd.img", "root.qcow2", "cmdline")}
        missing = [str(path) for path in files.values() if not path.exists()]
        if missing:
            raise CommandError(f"the guest is not built ({', '.join(missing)}): run tests/guest/build.sh")
        ctx = system_context()
        kernel = self._ensure(ctx, f"{GUEST}-kernel", files["vmlinuz"], "aki")
        ramdisk = self._ensure(ctx, f"{GUEST}-ramdisk", files["initrd.img"], "ari")
        properties = {
            "kernel_id": str(kernel.pk),
            "ramdisk_id": str(ramdisk.pk),
            "os_command_line": files["cmdline"].read_text().strip(),
            # The scheduler sends it to QEMU hosts only: a simulated host has no guest to boot.
            "hypervisor_type": "QEMU",
            "description": "Tiny Debian-kernel + busybox guest; prints ZENITH GUEST READY on its console.",
        }
        root = self._ensure(ctx, GUEST, files["root.qcow2"], "qcow2", properties)
        self.stdout.write(f"image {root.name} ({root.pk}) boots kernel {kernel.pk} with ramdisk {ramdisk.pk}")

    def _ensure(self, ctx, name: str, path: Path, disk_format: str, properties: dict | None = None) -> Image:
        checksum = _sha256(path)
        current = Image.objects.filter(name=name, project=None, status=Image.ACTIVE).first()
        if current is not None and current.checksum == checksum:
            if properties is not None and current.properties != properties:
                current = services.update_image(ctx, current, properties=properties)
            return current
        if current is not None:  # rebuilt guest: the old image goes, instances keep their row
            services.delete_image(ctx, current)
        image = services.create_image(
            ctx,
            name=name,
            disk_format=disk_format,
            container_format=disk_format if disk_format in ("aki", "ari") else "bare",
            visibility=Image.PUBLIC,
            min_disk=1 if disk_format == "qcow2" else 0,
            properties=properties,
        )
        services.upload_image_data(ctx, image, _chunks(path), expected_size=path.stat().st_size)
        image.refresh_from_db()
        self.stdout.write(f"registered {name}: {disk_format}, {image.size} bytes")
        return image
