"""The agent's libvirt driver against real QEMU guests on qemu:///system (software emulation here).

Each guest is the tiny Debian-kernel + busybox guest of tests/guest/build.sh, booted directly from
its kernel and initramfs over a copy-on-write overlay of root.qcow2 in the driver's pool. It prints
"ZENITH GUEST READY" on its serial console at the end of every boot, which is how these tests see
that a boot happened.
"""

from __future__ import annotations

import os
import queue
import stat
import subprocess
import sys
import threading
import time

import libvirt
import pytest

from tests.realhost.conftest import MARKER, POWEROFF, record_timing, wait_for, wait_for_console
from workers.agent.drivers import DiskSpec, DomainNotFound
from workers.agent.drivers.libvirt import xml as dx

pytestmark = pytest.mark.realhost


def test_auto_domain_type_is_qemu_without_usable_kvm(driver):
    from workers.agent.drivers.libvirt import kvm_usable

    assert driver.resolved_domain_type() == ("kvm" if kvm_usable() else "qemu")
    info = driver.host_info()
    assert info.hypervisor_type == "QEMU"
    assert info.disk_gb > 0  # the pool is there


def test_guest_lifecycle(driver, guests, realhost):
    spec = guests.spec()
    disk = spec.disks[0].path
    started = time.monotonic()
    result = driver.spawn(spec)
    assert result["state"] == "running" and result["created"]
    assert result["domain_type"] == driver.resolved_domain_type()
    record_timing("spawn call", time.monotonic() - started)
    record_timing("spawn to marker", wait_for_console(driver, spec, MARKER, 1))
    console = driver.console_log(spec.console_log, 2000)
    assert "ZENITH DISK vda 1073741824" in console  # the 1 GiB overlay, through virtio-blk
    assert stat.S_IMODE(os.stat(spec.console_log).st_mode) & 0o044 == 0o044  # readable by the portal's user
    xml = driver.domain_xml(spec.name)
    assert f"<kernel>{realhost.kernel}</kernel>" in xml and f"<initrd>{realhost.ramdisk}</initrd>" in xml

    # Idempotent spawn: the same domain, not a second one.
    assert driver.spawn(spec)["created"] is False

    # Soft reboot: ACPI, seen by libvirt's reboot event; the guest boots again.
    reboot = driver.reboot_with_fallback(spec.name, timeout=60)
    assert reboot["method"] == "acpi" and reboot["power_state"] == "running"
    record_timing("soft reboot (acpi) until reset", reboot["seconds"])
    record_timing("soft reboot to marker", wait_for_console(driver, spec, MARKER, 2))

    assert driver.pause(spec.name) == "paused"
    assert driver.power_state(spec.name) == "paused"
    assert driver.unpause(spec.name) == "running"

    started = time.monotonic()
    assert driver.suspend(spec.name) == "suspended"
    record_timing("suspend (managedSave 192 MiB)", time.monotonic() - started)
    started = time.monotonic()
    assert driver.resume(spec.name) == "running"
    record_timing("resume (restore)", time.monotonic() - started)

    # The restored guest is alive: a hard reset boots it again.
    assert driver.reboot(spec.name, hard=True) == "running"
    wait_for_console(driver, spec, MARKER, 3)

    # stop: ACPI shutdown, which this guest obeys (it says so), no destroy needed.
    started = time.monotonic()
    assert driver.stop(spec.name, timeout=60) == "shutdown"
    record_timing("stop (acpi shutdown)", time.monotonic() - started)
    assert driver.console_log(spec.console_log, 2000).count(POWEROFF) == 2  # the soft reboot's, and this

    assert driver.start(spec.name) == "running"
    wait_for_console(driver, spec, MARKER, 4)

    done = driver.destroy_and_undefine(spec.name)
    assert done["deleted"] and done["disks_deleted"] == [disk]
    with pytest.raises(DomainNotFound):
        driver.power_state(spec.name)
    assert not os.path.exists(disk)
    assert os.path.exists(realhost.root_disk)  # the base image is never deleted


# Defines and starts the domain of the XML on stdin: a caller that the test kills in the middle of the start.
STARTER = "import libvirt, sys; libvirt.open(sys.argv[1]).defineXML(sys.stdin.read()).create()"
STARTING_UP = [libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_STARTING_UP]


def _defined(conn: libvirt.virConnect, name: str) -> bool:
    try:
        conn.lookupByName(name)
    except libvirt.libvirtError:
        return False
    return True


def test_a_spawn_waits_for_a_start_its_killed_caller_left_under_way(driver, guests):
    """An agent killed in the middle of a start (tests/faults): libvirtd finishes that start by itself,
    the QEMU process paused meanwhile; the redelivered spawn must not answer "paused" then (the
    instance showed PAUSED until the next power sync), but wait for the start and say "running"."""
    for delay in (0.02, 0.05, 0.1, 0.02, 0.05, 0.1):
        spec = guests.spec()
        os.makedirs(os.path.dirname(spec.console_log), exist_ok=True)
        starter = subprocess.Popen(
            [sys.executable, "-c", STARTER, driver.uri],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        starter.stdin.write(dx.domain_xml(spec, driver.resolved_domain_type()))
        starter.stdin.close()
        wait_for(lambda s=spec: _defined(driver.conn, s.name), 30, "its domain", interval=0.002)
        time.sleep(delay)
        starter.kill()
        if starter.wait() not in (0, -9):
            pytest.fail(f"the start failed by itself: {starter.stderr.read()}")
        starter.stderr.close()
        dom = driver.conn.lookupByName(spec.name)
        if dom.state(0) != STARTING_UP:
            continue  # killed before its create() was sent, or after the start: not the case, again
        result = driver.spawn(spec)
        assert result["state"] == "running" and result["created"] is False, result
        assert dom.state(0)[0] == libvirt.VIR_DOMAIN_RUNNING
        wait_for_console(driver, spec, MARKER, 1)
        return
    pytest.skip("no start was caught under way in 6 tries (each killed 20-100 ms into it)")


def test_two_guests_events_and_fallbacks(driver, guests):
    """Two guests at once: one obeys ACPI, the other ignores it (no acpid)."""
    obeys = guests.spec()
    ignores = guests.spec(extra_cmdline="zenith.noacpid")
    events: queue.Queue = queue.Queue()
    listener = driver.listen_events(lambda *event: events.put(event))
    try:
        results = {}
        threads = [
            threading.Thread(target=lambda s=s: results.__setitem__(s.name, driver.spawn(s)))
            for s in (obeys, ignores)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert {r["state"] for r in results.values()} == {"running"}
        for spec in (obeys, ignores):
            record_timing("two guests: spawn to marker", wait_for_console(driver, spec, MARKER, 1))

        seen: list[tuple] = []

        def got(uuid: str, power_state: str, event: str):
            def check():
                while True:
                    try:
                        seen.append(events.get_nowait())
                    except queue.Empty:
                        break
                return any(e[0] == uuid and e[2:] == (power_state, event) for e in seen)

            return check

        for spec in (obeys, ignores):
            wait_for(got(spec.uuid, "running", "started"), 10, f"the started event of {spec.name}")
        assert {e[1] for e in seen if e[0] == obeys.uuid} == {obeys.instance_id}

        # The guest powers itself off (ACPI from outside, as "virsh shutdown" does): the listener
        # hears it stop, and the driver reports it shut down; the other guest runs on.
        driver.conn.lookupByName(obeys.name).shutdown()
        wait_for(got(obeys.uuid, "shutdown", "stopped"), 60, f"the stopped event of {obeys.name}")
        assert driver.power_state(obeys.name) == "shutdown"
        assert driver.power_state(ignores.name) == "running"

        # Soft reboot of a guest that ignores ACPI: reset after the timeout, and it boots again.
        reboot = driver.reboot_with_fallback(ignores.name, timeout=3)
        assert reboot["method"] == "reset" and reboot["power_state"] == "running"
        assert 3 <= reboot["seconds"] < 30
        wait_for_console(driver, ignores, MARKER, 2)

        # stop of a guest that ignores ACPI: destroyed after the timeout.
        started = time.monotonic()
        assert driver.stop(ignores.name, timeout=3) == "shutdown"
        assert 3 <= time.monotonic() - started < 30
        assert POWEROFF not in driver.console_log(ignores.console_log, 2000)
        wait_for(got(ignores.uuid, "shutdown", "stopped"), 10, f"the stopped event of {ignores.name}")

        for spec in (obeys, ignores):
            driver.destroy_and_undefine(spec.name)
            wait_for(got(spec.uuid, "nostate", "undefined"), 10, f"the undefined event of {spec.name}")
        names = {d["name"] for d in driver.list_domains()}
        assert not names & {obeys.name, ignores.name}
    finally:
        driver.unlisten_events(listener)


def test_disk_hot_plug_into_a_running_guest(driver, guests):
    """What a volume attachment will do: an empty 1 GiB qcow2 from the pool plugged into a running
    guest appears in it (the guest reports it on its console), stays in the definition, and is gone
    from both after the detach, which the guest acknowledges. Both calls are idempotent."""
    spec = guests.spec()
    driver.spawn(spec)
    wait_for_console(driver, spec, MARKER, 1)
    volume = f"{spec.name}-vol"
    guests.volumes.append(volume)
    path = driver.create_disk_from_image(volume, None, 1)

    started = time.monotonic()
    assert driver.attach_disk(spec.name, DiskSpec(path=path)) == {
        "target": "vdb",
        "attached": True,
        "live": True,
    }
    wait_for_console(driver, spec, "ZENITH DISK vdb 1073741824", 1, deadline=30)
    record_timing("attach to seen in the guest", time.monotonic() - started)
    assert driver.attach_disk(spec.name, DiskSpec(path=path)) == {
        "target": "vdb",
        "attached": False,
        "live": True,
    }
    persistent = driver.conn.lookupByName(spec.name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert path in persistent  # a restart keeps it

    started = time.monotonic()
    assert driver.detach_disk(spec.name, "vdb") == {"target": "vdb", "detached": True, "live": True}
    record_timing("detach until released by the guest", time.monotonic() - started)
    wait_for_console(driver, spec, "ZENITH DISK GONE vdb", 1, deadline=30)
    assert path not in driver.domain_xml(spec.name)
    assert path not in driver.conn.lookupByName(spec.name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert driver.detach_disk(spec.name, path) == {"target": None, "detached": False, "live": False}
    assert driver.power_state(spec.name) == "running"
    assert "ZENITH DISK vda" in driver.console_log(spec.console_log, 2000)  # the root disk untouched


def test_disk_attached_while_shut_off_is_there_at_boot(driver, guests):
    spec = guests.spec()
    driver.spawn(spec)
    wait_for_console(driver, spec, MARKER, 1)
    assert driver.stop(spec.name, timeout=60) == "shutdown"
    volume = f"{spec.name}-vol"
    guests.volumes.append(volume)
    path = driver.create_disk_from_image(volume, None, 2)
    assert driver.attach_disk(spec.name, DiskSpec(path=path))["target"] == "vdb"
    assert driver.start(spec.name) == "running"
    wait_for_console(driver, spec, MARKER, 2)
    assert f"ZENITH DISK vdb {2 * 1024**3}" in driver.console_log(spec.console_log, 2000)
    driver.stop(spec.name, force=True)
    assert driver.detach_disk(spec.name, "vdb") == {"target": "vdb", "detached": True, "live": False}
    assert path not in driver.domain_xml(spec.name)


def test_export_disk_pauses_a_running_guest_and_resumes_one_a_killed_copy_left_paused(
    driver, guests, tmp_path
):
    """The snapshot's copy of a real guest's root disk: a standalone qcow2 holding what the guest
    wrote (its marker), the guest paused for the copy and running after; a guest an earlier,
    killed copy left paused (its marker file still there) is resumed; one the user paused stays."""
    spec = guests.spec("zenith.rootmark=exported")
    driver.spawn(spec)
    wait_for_console(driver, spec, "ZENITH DISK WROTE vda exported", 1)
    marker = tmp_path / "guest.paused"
    copy = tmp_path / "copy.qcow2"
    done = driver.export_disk(spec.name, str(copy), marker=str(marker))
    assert done["paused"] and driver.power_state(spec.name) == "running" and not marker.exists()
    info = subprocess.run(["qemu-img", "info", "--output=json", str(copy)], capture_output=True, text=True)
    assert '"format": "qcow2"' in info.stdout and "backing-filename" not in info.stdout
    raw = tmp_path / "copy.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(copy), str(raw)], check=True)
    with open(raw, "rb") as fh:
        assert fh.read(512).startswith(b"ZENITH-MARK:exported")

    dom = driver.conn.lookupByName(spec.name)
    dom.suspend()  # as a copy whose agent was killed left it
    marker.write_text(spec.name)
    again = driver.export_disk(spec.name, str(tmp_path / "again.qcow2"), marker=str(marker))
    assert again["paused"] and driver.power_state(spec.name) == "running" and not marker.exists()
    dom.suspend()  # the user's pause: no marker
    kept = driver.export_disk(spec.name, str(tmp_path / "kept.qcow2"), marker=str(marker))
    assert not kept["paused"] and driver.power_state(spec.name) == "paused"
