"""A real libvirt/QEMU host for the driver: set up once per session, or the tests are skipped.

``workers/agent/realhost.sh setup`` installs and starts libvirtd (root or passwordless sudo on Debian) and
``tests/guest/build.sh`` builds the test guest into var/guest/. When either cannot run here, every
test of this directory is reported as skipped with the reason; ``ZENITH_REQUIRE_REALHOST=1``
turns that into an error (a CI machine that must run them).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from workers.agent.drivers import DiskSpec, DomainSpec, DriverError

ROOT = Path(__file__).resolve().parents[2]
URI = "qemu:///system"
MARKER = "ZENITH GUEST READY"
POWEROFF = "ZENITH GUEST POWEROFF"
BOOT_DEADLINE = 90.0  # seconds to the marker; measured 3-5 s under software emulation


def var_dir() -> Path:
    return (ROOT / os.environ.get("ZENITH_VAR_DIR", "var")).resolve()


def _run(*cmd: str, timeout: float) -> str | None:
    """None when the command succeeded, else why it did not."""
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(cmd)}: {exc}"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return f"{' '.join(cmd)} failed: {lines[-1] if lines else f'exit {done.returncode}'}"
    return None


@dataclass(frozen=True)
class Guest:
    """The built test guest: a kernel, an initramfs and a root-disk image to clone."""

    kernel: str
    ramdisk: str
    root_disk: str
    cmdline: str


@pytest.fixture(scope="session")
def realhost() -> Guest:
    """A running libvirtd on qemu:///system and the built guest, or a skip saying why not."""
    reason = _run(str(ROOT / "workers/agent/realhost.sh"), "setup", timeout=600) or _run(
        str(ROOT / "tests/guest/build.sh"), timeout=600
    )
    if reason:
        if os.environ.get("ZENITH_REQUIRE_REALHOST") == "1":
            pytest.fail(f"real host required but unavailable: {reason}")
        pytest.skip(f"no real libvirt/QEMU host here: {reason}")
    guest_dir = Path(os.environ.get("ZENITH_GUEST_DIR") or ROOT / "var" / "guest")
    return Guest(
        kernel=str(guest_dir / "vmlinuz"),
        ramdisk=str(guest_dir / "initrd.img"),
        root_disk=str(guest_dir / "root.qcow2"),
        cmdline=(guest_dir / "cmdline").read_text().strip(),
    )


@pytest.fixture(scope="session")
def driver(realhost):
    from workers.agent.drivers.libvirt import LibvirtDriver

    # The pool's name is derived from its directory: it cannot be another checkout's (issue 9).
    drv = LibvirtDriver(URI, domain_type="auto", pool_path=str(var_dir() / "realhost" / "pool"))
    drv.ensure_pool()
    yield drv
    drv.close()


class Guests:
    """Spawns test guests and removes every one of them (domain and disk) at the end of the test."""

    def __init__(self, driver, guest: Guest):
        self.driver = driver
        self.guest = guest
        self.names: list[str] = []
        self.volumes: list[str] = []  # extra volumes of the pool a test made (disks to attach)
        self.console_dir = var_dir() / "realhost" / "console"

    def spec(self, extra_cmdline: str = "", memory_mb: int = 192) -> DomainSpec:
        instance = str(uuid.uuid4())
        name = f"zenith-{instance}"
        self.names.append(name)
        disk = self.driver.create_disk_from_image(f"{name}-disk", self.guest.root_disk, 1)
        return DomainSpec(
            name=name,
            uuid=instance,
            vcpus=1,
            memory_mb=memory_mb,
            disks=[DiskSpec(path=disk)],
            console_log=str(self.console_dir / f"{instance}.log"),
            instance_id=f"inst-{instance[:8]}",
            kernel=self.guest.kernel,
            ramdisk=self.guest.ramdisk,
            cmdline=f"{self.guest.cmdline} {extra_cmdline}".strip(),
        )

    def cleanup(self) -> None:
        for name in self.names:
            with contextlib.suppress(DriverError):
                self.driver.destroy_and_undefine(name)
            with contextlib.suppress(DriverError):
                self.driver.delete_volume(f"{name}-disk")
        for volume in self.volumes:
            with contextlib.suppress(DriverError):
                self.driver.delete_volume(volume)


@pytest.fixture
def guests(driver, realhost):
    g = Guests(driver, realhost)
    yield g
    g.cleanup()


def wait_for(predicate, deadline: float, what: str, interval: float = 0.1):
    """Poll ``predicate`` until it returns something truthy; fail after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"timed out after {deadline:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_for_console(
    driver, spec: DomainSpec, text: str, count: int, deadline: float = BOOT_DEADLINE
) -> float:
    """Wait until ``text`` appears ``count`` times in the guest's serial log; the seconds it took."""
    start = time.monotonic()

    def seen():
        return driver.console_log(spec.console_log, 2000).count(text) >= count

    wait_for(seen, deadline, f"{text!r} x{count} on the console of {spec.name}")
    return time.monotonic() - start


def record_timing(label: str, seconds: float) -> None:
    """Append a measured duration to $ZENITH_VAR_DIR/realhost/timings.txt (reported, not asserted)."""
    path = var_dir() / "realhost" / "timings.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(f"{time.strftime('%H:%M:%S')} {label} {seconds:.2f}s\n")
