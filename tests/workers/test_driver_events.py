"""Lifecycle events and soft reboot of the agent's libvirt driver on libvirt's test driver.

The test driver emits lifecycle events when a domain is started, paused, resumed, saved and
destroyed; they reach the listener through the event loop thread the driver runs.
"""

from __future__ import annotations

import queue
import threading
import uuid

import pytest

from workers.agent.drivers import DiskSpec, DomainSpec, DriverError
from workers.agent.drivers.libvirt import LibvirtDriver, lifecycle_power_state
from workers.agent.drivers.libvirt import xml as dx

TEST_URI = "test:///default"
WAIT = 5.0


@pytest.fixture
def driver():
    d = LibvirtDriver(TEST_URI, pool_name="zenith", pool_path="/zenith-test/images")
    yield d
    d.close()


class Recorder:
    """A listener that keeps the events of one domain, in order."""

    def __init__(self, domain_uuid: str):
        self.domain_uuid = domain_uuid
        self.events: queue.Queue = queue.Queue()
        self.threads: set[str] = set()

    def __call__(self, domain_uuid, instance_id, power_state, event):
        self.threads.add(threading.current_thread().name)
        if domain_uuid == self.domain_uuid:
            self.events.put((instance_id, power_state, event))

    def next(self) -> tuple:
        return self.events.get(timeout=WAIT)

    def until(self, event: str) -> tuple:
        """The first event named ``event``, skipping others."""
        while True:
            got = self.next()
            if got[2] == event:
                return got


def spec_for(tmp_path) -> DomainSpec:
    instance = str(uuid.uuid4())
    return DomainSpec(
        name=f"zenith-{instance}",
        uuid=instance,
        vcpus=1,
        memory_mb=256,
        disks=[DiskSpec(path=f"/zenith-test/images/{instance}.qcow2")],
        console_log=str(tmp_path / f"{instance}.log"),
        instance_id=f"inst-{instance[:8]}",
    )


def test_lifecycle_events_carry_instance_and_power_state(driver, tmp_path):
    spec = spec_for(tmp_path)
    rec = Recorder(spec.uuid)
    listener = driver.listen_events(rec)
    try:
        driver.spawn(spec)
        assert rec.until("started") == (spec.instance_id, "running", "started")
        driver.pause(spec.name)
        assert rec.next() == (spec.instance_id, "paused", "suspended")
        driver.unpause(spec.name)
        assert rec.next() == (spec.instance_id, "running", "resumed")
        driver.suspend(spec.name)
        assert rec.until("stopped") == (spec.instance_id, "suspended", "stopped")
        driver.resume(spec.name)
        assert rec.until("started") == (spec.instance_id, "running", "started")
        driver.stop(spec.name, force=True)
        assert rec.until("stopped") == (spec.instance_id, "shutdown", "stopped")
        driver.destroy_and_undefine(spec.name)
        assert rec.until("undefined") == (spec.instance_id, "nostate", "undefined")
    finally:
        driver.unlisten_events(listener)
        driver.destroy_and_undefine(spec.name)
    assert rec.threads == {"libvirt-events"}


def test_foreign_domain_events_have_no_instance_id(driver, tmp_path):
    spec = spec_for(tmp_path)
    # Defined behind the driver's back, without Zenith's metadata.
    xml = dx.domain_xml(spec, "test").replace(f"<zenith:id>{spec.instance_id}</zenith:id>", "")
    rec = Recorder(spec.uuid)
    listener = driver.listen_events(rec)
    try:
        driver.conn.defineXML(xml).create()
        assert rec.until("started") == (None, "running", "started")
    finally:
        driver.unlisten_events(listener)
        driver.destroy_and_undefine(spec.name)


def test_unlisten_stops_delivery_and_a_failing_listener_hurts_no_other(driver, tmp_path):
    spec = spec_for(tmp_path)
    rec, gone = Recorder(spec.uuid), Recorder(spec.uuid)

    def broken(*_args):
        raise RuntimeError("listener bug")

    ids = [driver.listen_events(broken), driver.listen_events(gone), driver.listen_events(rec)]
    driver.unlisten_events(ids[1])
    try:
        driver.spawn(spec)
        assert rec.until("started")[1] == "running"
        assert gone.events.empty()
    finally:
        for listener in ids:
            driver.unlisten_events(listener)
        driver.destroy_and_undefine(spec.name)


def test_listeners_survive_a_reconnection(driver, tmp_path):
    spec = spec_for(tmp_path)
    rec = Recorder(spec.uuid)
    listener = driver.listen_events(rec)
    keep_alive = LibvirtDriver(TEST_URI)  # the test driver forgets its state when no connection is open
    keep_alive.conn  # noqa: B018 - opens it
    try:
        driver.close()
        driver.spawn(spec)  # reopens the connection
        assert rec.until("started")[1] == "running"
    finally:
        driver.unlisten_events(listener)
        driver.destroy_and_undefine(spec.name)
        keep_alive.close()


def test_soft_reboot_with_fallback_on_the_test_driver_is_the_acpi_request(driver, tmp_path):
    spec = spec_for(tmp_path)
    driver.spawn(spec)
    try:
        result = driver.reboot_with_fallback(spec.name, timeout=30)
        assert result["method"] == "acpi"
        assert result["power_state"] == "running"
        assert result["seconds"] < 5
        assert driver.reboot(spec.name, timeout=30) == "running"
        driver.stop(spec.name, force=True)
        with pytest.raises(DriverError, match="not running"):
            driver.reboot_with_fallback(spec.name)
    finally:
        driver.destroy_and_undefine(spec.name)


def test_direct_kernel_boot_xml(tmp_path):
    spec = DomainSpec(
        name="zenith-k",
        uuid=str(uuid.uuid4()),
        vcpus=1,
        memory_mb=128,
        kernel="/guest/vmlinuz",
        ramdisk="/guest/initrd.img",
        cmdline="console=ttyS0 quiet",
    )
    xml = dx.domain_xml(spec, "qemu")
    assert "<kernel>/guest/vmlinuz</kernel><initrd>/guest/initrd.img</initrd>" in xml
    assert "<cmdline>console=ttyS0 quiet</cmdline>" in xml
    assert "<boot " not in xml
    plain = dx.domain_xml(DomainSpec(name="zenith-p", uuid=spec.uuid, vcpus=1, memory_mb=128), "qemu")
    assert "<kernel>" not in plain and '<boot dev="hd" />' in plain


@pytest.mark.parametrize(
    ("event", "detail", "expected"),
    [
        ("STARTED", 0, "running"),
        ("SUSPENDED", 0, "paused"),
        ("RESUMED", 0, "running"),
        ("STOPPED", "SAVED", "suspended"),
        ("STOPPED", "CRASHED", "crashed"),
        ("STOPPED", "SHUTDOWN", "shutdown"),
        ("STOPPED", "DESTROYED", "shutdown"),
        ("CRASHED", 0, "crashed"),
        ("UNDEFINED", 0, "nostate"),
        ("DEFINED", 0, None),
        ("SHUTDOWN", 0, None),
    ],
)
def test_lifecycle_power_state(event, detail, expected):
    import libvirt

    code = getattr(libvirt, f"VIR_DOMAIN_EVENT_{event}")
    if isinstance(detail, str):
        detail = getattr(libvirt, f"VIR_DOMAIN_EVENT_STOPPED_{detail}")
    assert lifecycle_power_state(code, detail) == expected


def test_kvm_usable_needs_hardware_virtualisation(tmp_path, monkeypatch):
    from workers.agent.drivers.libvirt import connection as ld

    dev = tmp_path / "kvm"
    dev.write_text("")
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(ld.platform, "machine", lambda: "x86_64")
    cpuinfo.write_text("processor : 0\nflags : fpu sse2 vmx\n")
    assert ld.kvm_usable(str(dev), str(cpuinfo))
    cpuinfo.write_text("processor : 0\nflags : fpu sse2\n")  # kvm_pvm: /dev/kvm without vmx/svm
    assert not ld.kvm_usable(str(dev), str(cpuinfo))
    assert not ld.kvm_usable(str(tmp_path / "absent"), str(cpuinfo))
