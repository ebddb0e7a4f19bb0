"""The agent's libvirt driver against libvirt's own test driver (no daemon, no database).

The test driver keeps its state in memory while any connection of this process is open, so every
test uses names and uuids of its own. What that driver cannot do must raise NotSupported.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import libvirt
import pytest

from workers.agent.drivers import (
    DiskSpec,
    DomainNotFound,
    DomainSpec,
    DriverError,
    NicSpec,
    NotSupported,
    PoolConflict,
)
from workers.agent.drivers.base import tail_file
from workers.agent.drivers.libvirt import (
    LibvirtDriver,
    libvirt_state_to_power_state,
    pool_name_for,
    translate,
)
from workers.agent.drivers.libvirt import xml as dx

TEST_URI = "test:///default"
HOST_XML = Path(__file__).resolve().parent.parent / "fixtures" / "testhost.xml"
GiB = 1024**3


@pytest.fixture
def driver():
    d = LibvirtDriver(TEST_URI, pool_name="zenith", pool_path="/zenith-test/images")
    yield d
    d.close()


def make_spec(tmp_path, disks=None, **kw) -> DomainSpec:
    instance = str(uuid.uuid4())
    defaults = {
        "name": f"zenith-{instance}",
        "uuid": instance,
        "vcpus": 2,
        "memory_mb": 512,
        "disks": disks if disks is not None else [DiskSpec(path=f"/zenith-test/images/{instance}.qcow2")],
        "nics": [
            NicSpec(mac="52:54:00:12:34:56", network="default"),
            NicSpec(mac="52:54:00:AB:CD:EF", bridge="br-zen"),
        ],
        "console_log": str(tmp_path / f"{instance}.log"),
        "instance_id": f"inst-{instance[:8]}",
    }
    defaults.update(kw)
    return DomainSpec(**defaults)


def running_spawn(driver, tmp_path, **kw) -> DomainSpec:
    spec = make_spec(tmp_path, **kw)
    result = driver.spawn(spec)
    assert result["state"] == "running"
    return spec


# -- host -----------------------------------------------------------------------------------


def test_host_info_matches_libvirt(driver):
    driver.ensure_pool()
    info = driver.host_info()
    model, memory_mb, cpus, mhz, *_ = driver.conn.getInfo()
    assert (info.vcpus, info.memory_mb, info.arch, info.cpu_mhz) == (cpus, memory_mb, model, mhz)
    assert info.hostname == driver.conn.getHostname()
    assert info.hypervisor_type == "TEST"
    assert info.hypervisor_version == driver.conn.getVersion()
    assert info.uri == TEST_URI
    pool_capacity = driver.conn.storagePoolLookupByName("zenith").info()[1]
    assert info.disk_gb == pool_capacity // GiB > 0


def test_host_info_on_a_new_host_makes_its_pool_and_reports_its_disk():
    """A host whose pool does not exist yet (a new machine) must not report 0 GB: no launch would fit
    it, so it would never get the first spawn that used to create the pool."""
    name = f"absent-{uuid.uuid4().hex[:8]}"
    with LibvirtDriver(TEST_URI, pool_name=name, pool_path=f"/zenith-test/{name}") as d:
        info = d.host_info()
        pool = d.conn.storagePoolLookupByName(name)
        assert pool.isActive() and pool.autostart()
        assert info.disk_gb == pool.info()[1] // GiB > 0


def test_host_file_sets_cpus_memory_and_pool():
    with LibvirtDriver(f"test://{HOST_XML}", pool_name="zenith") as d:
        info = d.host_info()
        assert info.vcpus == 16
        assert info.memory_mb == 64 * 1024
        assert info.arch == "x86_64"
        # The pool comes from the file (already active there), and host_info reads its capacity
        # as libvirt reports it. Measured: the test driver replaces the file's 500 GiB with its
        # fixed 100 GiB for every pool, so that is what a real agent would see here.
        pool = d.conn.storagePoolLookupByName("zenith")
        assert pool.isActive()
        assert info.disk_gb == pool.info()[1] // GiB == 100
        assert [n.name() for n in d.conn.listAllNetworks()] == ["default"]


def test_ensure_pool_defines_dir_pool_once(driver):
    name = f"pool-{uuid.uuid4().hex[:8]}"
    d = LibvirtDriver(TEST_URI, pool_name=name, pool_path=f"/zenith-test/{name}")
    try:
        pool = d.ensure_pool()
        assert pool.isActive() and pool.autostart()
        root = ET.fromstring(pool.XMLDesc(0))
        assert root.get("type") == "dir"
        assert root.findtext("target/path") == f"/zenith-test/{name}"
        assert d.ensure_pool().UUIDString() == pool.UUIDString()
        # The test driver's built-in pool is still there, untouched.
        assert "default-pool" in {p.name() for p in d.conn.listAllStoragePools()}
    finally:
        d.close()


def test_pool_names_never_shared_between_directories_or_hosts():
    a, b = "/srv/clone-a/var/agent/real-1/pool", "/srv/clone-b/var/agent/real-1/pool"
    assert len({pool_name_for(a), pool_name_for(b), pool_name_for(a, "real-1"), pool_name_for(a, "h2")}) == 4
    assert pool_name_for(a, "real-1").startswith("zenith-real-1-")
    assert pool_name_for(a + "/") == pool_name_for(a)  # one directory, however it is spelt
    assert LibvirtDriver(TEST_URI, pool_path=a).pool_name == pool_name_for(a)


def _define_pool(conn, name: str, path: str) -> libvirt.virStoragePool:
    pool = conn.storagePoolDefineXML(dx.pool_xml(name, path), 0)
    pool.build(0)
    pool.create(0)
    return pool


def _drop_pool(conn, name: str) -> None:
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        return
    if pool.isActive():
        pool.destroy()
    pool.undefine()


def test_a_pool_of_our_name_elsewhere_is_redefined_at_our_path(driver):
    """The issue's case: the pool still points at the directory of an earlier, removed clone."""
    name = f"pool-{uuid.uuid4().hex[:8]}"
    _define_pool(driver.conn, name, f"/removed-clone/{name}")
    d = LibvirtDriver(TEST_URI, pool_name=name, pool_path=f"/this-clone/{name}")
    try:
        pool = d.ensure_pool()
        assert pool.isActive() and pool.autostart()
        assert dx.pool_path_from_xml(pool.XMLDesc(0)) == f"/this-clone/{name}"
        assert d.pool_name == name
    finally:
        _drop_pool(d.conn, name)
        d.close()


def test_a_pool_of_our_name_elsewhere_serving_a_domain_is_refused(driver, tmp_path):
    """Disks of a domain live in the other directory: the agent refuses rather than orphan them."""
    name = f"pool-{uuid.uuid4().hex[:8]}"
    _define_pool(driver.conn, name, f"/other-agent/{name}")
    spec = make_spec(tmp_path, disks=[DiskSpec(path=f"/other-agent/{name}/disk.qcow2")])
    driver.conn.defineXML(dx.domain_xml(spec, "test"))
    d = LibvirtDriver(TEST_URI, pool_name=name, pool_path=f"/this-clone/{name}")
    try:
        with pytest.raises(PoolConflict, match=rf"{spec.name}.*ZENITH_LIBVIRT_POOL_PATH=/other-agent/{name}"):
            d.ensure_pool()
        pool = driver.conn.storagePoolLookupByName(name)
        assert pool.isActive() and dx.pool_path_from_xml(pool.XMLDesc(0)) == f"/other-agent/{name}"
    finally:
        driver.destroy_and_undefine(spec.name, delete_disks=False)
        _drop_pool(d.conn, name)
        d.close()


def test_a_pool_of_another_name_at_our_path_is_adopted(driver):
    """An older agent's pool ("zenith") at this very directory: libvirt allows one pool per
    directory, and the directory is ours."""
    old = f"old-{uuid.uuid4().hex[:8]}"
    path = f"/this-clone/{old}"
    original = _define_pool(driver.conn, old, path)
    d = LibvirtDriver(TEST_URI, pool_path=path)
    try:
        assert d.pool_name == pool_name_for(path)
        assert d.ensure_pool().UUIDString() == original.UUIDString()
        assert d.pool_name == old
    finally:
        _drop_pool(d.conn, old)
        d.close()


def test_connection_is_shared_and_reopened_after_close(driver):
    with ThreadPoolExecutor(max_workers=8) as pool:
        conns = set(pool.map(lambda _i: id(driver.conn), range(32)))
    assert len(conns) == 1
    driver.conn.close()  # closed behind the driver's back: the next call reconnects
    assert driver.host_info().vcpus > 0


def test_domain_type_resolution(driver):
    assert driver.resolved_domain_type() == "test"
    caps = "<capabilities><guest><arch name='x86_64'>{}</arch></guest></capabilities>"
    caps_kvm = caps.format("<domain type='qemu'/><domain type='kvm'/>")
    caps_tcg = caps.format("<domain type='qemu'/>")
    assert dx.choose_domain_type(caps_kvm, kvm_usable=True) == "kvm"
    assert dx.choose_domain_type(caps_kvm, kvm_usable=False) == "qemu"
    assert dx.choose_domain_type(caps_tcg, kvm_usable=True) == "qemu"
    assert LibvirtDriver(TEST_URI, domain_type="qemu").resolved_domain_type() == "qemu"
    with pytest.raises(ValueError):
        LibvirtDriver(TEST_URI, domain_type="xen")


# -- domains ---------------------------------------------------------------------------------


def test_spawn_runs_and_libvirt_stores_the_generated_xml(driver, tmp_path):
    spec = make_spec(tmp_path)
    generated = ET.fromstring(dx.domain_xml(spec, "test"))
    result = driver.spawn(spec)
    assert result == {
        "name": spec.name,
        "uuid": spec.uuid,
        "state": "running",
        "created": True,
        "domain_type": "test",
        "console_log": spec.console_log,
    }
    stored = ET.fromstring(driver.domain_xml(spec.name))
    for root in (generated, stored):
        assert root.get("type") == "test"
        assert root.findtext("name") == spec.name
        assert root.findtext("uuid") == spec.uuid
        assert root.findtext("vcpu") == "2"
        disk = root.find("devices/disk")
        assert disk.find("driver").get("type") == "qcow2"
        assert disk.find("source").get("file") == spec.disks[0].path
        assert disk.find("target").attrib == {"dev": "vda", "bus": "virtio"}
        serial = root.find("devices/serial")
        assert serial.get("type") == "file"
        assert serial.find("source").get("path") == spec.console_log
        assert root.find("devices/console").get("type") == "file"
        vnc = root.find("devices/graphics")
        assert (vnc.get("type"), vnc.get("autoport"), vnc.get("listen")) == ("vnc", "yes", "127.0.0.1")
        macs = [i.find("mac").get("address") for i in root.findall("devices/interface")]
        assert macs == ["52:54:00:12:34:56", "52:54:00:ab:cd:ef"]
        sources = [i.find("source").attrib for i in root.findall("devices/interface")]
        assert sources == [{"network": "default"}, {"bridge": "br-zen"}]
    assert generated.find("memory").attrib == {"unit": "MiB"} and generated.findtext("memory") == "512"
    assert stored.find("memory").get("unit") == "KiB" and stored.findtext("memory") == str(512 * 1024)
    assert dx.instance_id_from_xml(driver.domain_xml(spec.name)) == spec.instance_id


def test_spawn_twice_gives_one_running_domain(driver, tmp_path):
    spec = make_spec(tmp_path)
    first = driver.spawn(spec)
    second = driver.spawn(spec)
    assert (first["created"], second["created"]) == (True, False)
    assert second["state"] == "running"
    mine = [d for d in driver.list_domains() if d["uuid"] == spec.uuid]
    assert len(mine) == 1
    # Spawning a stopped domain starts it again rather than defining a second one.
    driver.stop(spec.name)
    assert driver.spawn(spec)["state"] == "running"


def test_spawn_refuses_uuid_taken_by_another_name(driver, tmp_path):
    spec = running_spawn(driver, tmp_path)
    clash = make_spec(tmp_path, uuid=spec.uuid, name=f"other-{spec.uuid}")
    with pytest.raises(DriverError, match="already defined"):
        driver.spawn(clash)


def test_stop_then_start(driver, tmp_path):
    spec = running_spawn(driver, tmp_path)
    assert driver.stop(spec.name, timeout=5) == "shutdown"
    assert driver.conn.lookupByName(spec.name).state(0)[0] == libvirt.VIR_DOMAIN_SHUTOFF
    assert driver.stop(spec.name) == "shutdown"  # idempotent
    assert driver.start(spec.name) == "running"
    assert driver.start(spec.name) == "running"  # idempotent
    assert driver.stop(spec.name, force=True) == "shutdown"


def test_soft_and_hard_reboot_keep_it_running(driver, tmp_path):
    spec = running_spawn(driver, tmp_path)
    assert driver.reboot(spec.name) == "running"
    assert driver.reboot(spec.name, hard=True) == "running"
    driver.stop(spec.name)
    with pytest.raises(DriverError, match="not running"):
        driver.reboot(spec.name)


def test_pause_and_unpause(driver, tmp_path):
    spec = running_spawn(driver, tmp_path)
    assert driver.pause(spec.name) == "paused"
    assert driver.power_state(spec.name) == "paused"
    assert driver.pause(spec.name) == "paused"
    assert driver.unpause(spec.name) == "running"
    assert driver.unpause(spec.name) == "running"


def test_suspend_and_resume_with_managed_save(driver, tmp_path):
    # Measured: the test driver does support managedSave (domain shut off with a saved image).
    spec = running_spawn(driver, tmp_path)
    assert driver.suspend(spec.name) == "suspended"
    dom = driver.conn.lookupByName(spec.name)
    assert dom.state(0)[0] == libvirt.VIR_DOMAIN_SHUTOFF and dom.hasManagedSaveImage(0)
    assert driver.suspend(spec.name) == "suspended"
    assert driver.resume(spec.name) == "running"
    assert not dom.hasManagedSaveImage(0)
    assert driver.resume(spec.name) == "running"
    driver.stop(spec.name)
    with pytest.raises(DriverError, match="not suspended"):
        driver.resume(spec.name)


def test_delete_removes_domain_and_its_disks_and_is_idempotent(driver, tmp_path):
    base = f"img-{uuid.uuid4().hex[:8]}.qcow2"
    driver.ensure_pool().createXML(dx.volume_xml(base, GiB), 0)
    instance = str(uuid.uuid4())
    disk = driver.create_disk_from_image(f"{instance}-disk0.qcow2", base, 10)
    spec = running_spawn(
        driver, tmp_path, uuid=instance, name=f"zenith-{instance}", disks=[DiskSpec(path=disk)]
    )
    result = driver.destroy_and_undefine(spec.name)
    assert result == {"name": spec.name, "deleted": True, "disks_deleted": [disk]}
    with pytest.raises(DomainNotFound):
        driver.power_state(spec.name)
    assert spec.uuid not in {d["uuid"] for d in driver.list_domains()}
    pool_volumes = driver.ensure_pool().listVolumes()
    assert f"{instance}-disk0.qcow2" not in pool_volumes
    assert base in pool_volumes  # the image it was cloned from stays
    assert driver.destroy_and_undefine(spec.name) == {
        "name": spec.name,
        "deleted": False,
        "disks_deleted": [],
    }


def test_delete_of_a_suspended_domain_drops_its_saved_image(driver, tmp_path):
    spec = running_spawn(driver, tmp_path, disks=[])
    driver.suspend(spec.name)
    assert driver.destroy_and_undefine(spec.name)["deleted"] is True
    with pytest.raises(DomainNotFound):
        driver.power_state(spec.name)


@pytest.mark.parametrize(
    ("state", "managed_save", "expected"),
    [
        (libvirt.VIR_DOMAIN_NOSTATE, False, "nostate"),
        (libvirt.VIR_DOMAIN_RUNNING, False, "running"),
        (libvirt.VIR_DOMAIN_BLOCKED, False, "running"),
        (libvirt.VIR_DOMAIN_PAUSED, False, "paused"),
        (libvirt.VIR_DOMAIN_SHUTDOWN, False, "shutdown"),
        (libvirt.VIR_DOMAIN_SHUTOFF, False, "shutdown"),
        (libvirt.VIR_DOMAIN_SHUTOFF, True, "suspended"),
        (libvirt.VIR_DOMAIN_CRASHED, False, "crashed"),
        (libvirt.VIR_DOMAIN_PMSUSPENDED, False, "suspended"),
        (99, False, "nostate"),
    ],
)
def test_power_state_mapping(state, managed_save, expected):
    assert libvirt_state_to_power_state(state, managed_save) == expected


def test_power_state_of_missing_domain(driver):
    with pytest.raises(DomainNotFound):
        driver.power_state(f"zenith-{uuid.uuid4()}")
    with pytest.raises(DomainNotFound):
        driver.stop(f"zenith-{uuid.uuid4()}")


def test_list_domains_for_drift(driver, tmp_path):
    running = running_spawn(driver, tmp_path)
    stopped = running_spawn(driver, tmp_path)
    driver.stop(stopped.name)
    listed = {d["uuid"]: d for d in driver.list_domains()}
    assert listed[running.uuid] == {
        "name": running.name,
        "uuid": running.uuid,
        "power_state": "running",
        "instance_id": running.instance_id,
    }
    assert listed[stopped.uuid]["power_state"] == "shutdown"
    # The test driver's own domain "test" is foreign: no Zenith metadata.
    foreign = [d for d in listed.values() if d["name"] == "test"]
    assert foreign and foreign[0]["instance_id"] is None


# -- storage ---------------------------------------------------------------------------------


def test_disk_overlay_has_backing_store_and_is_idempotent(driver):
    pool = driver.ensure_pool()
    base = f"img-{uuid.uuid4().hex[:8]}.qcow2"
    base_vol = pool.createXML(dx.volume_xml(base, 2 * GiB), 0)
    name = f"disk-{uuid.uuid4().hex[:8]}.qcow2"
    path = driver.create_disk_from_image(name, base, 20)
    vol = driver.conn.storageVolLookupByPath(path)
    root = ET.fromstring(vol.XMLDesc(0))
    assert root.find("target/format").get("type") == "qcow2"
    assert root.findtext("backingStore/path") == base_vol.path()
    assert root.find("backingStore/format").get("type") == "qcow2"
    assert vol.info()[1] == 20 * GiB
    # By path too, and a second call returns the same volume without creating another.
    assert driver.create_disk_from_image(name, base_vol.path(), 20) == path
    assert pool.listVolumes().count(name) == 1


def test_empty_disk_without_image_and_error_for_unknown_image(driver):
    name = f"blank-{uuid.uuid4().hex[:8]}.qcow2"
    path = driver.create_disk_from_image(name, None, 5)
    root = ET.fromstring(driver.conn.storageVolLookupByPath(path).XMLDesc(0))
    assert root.find("backingStore") is None
    assert int(root.findtext("capacity")) == 5 * GiB
    with pytest.raises(DriverError, match="neither a volume"):
        driver.create_disk_from_image(f"x-{uuid.uuid4().hex[:8]}", "no-such-image.qcow2", 5)
    assert driver.delete_volume(name) is True
    assert driver.delete_volume(name) is False


def test_import_image_is_not_supported_on_test_driver(driver, tmp_path):
    image = tmp_path / "cirros.img"
    image.write_bytes(b"\0" * 4096)
    name = f"img-{uuid.uuid4().hex[:8]}.qcow2"
    with pytest.raises(NotSupported, match="virStorageVolUpload"):
        driver.import_image(name, image, image.stat().st_size)
    with pytest.raises(NotSupported, match="not supported by the connection driver"):
        driver.import_image(name, iter([b"a" * 10]), 10)
    # Nothing half-imported is left behind.
    assert name not in driver.ensure_pool().listVolumes()


def _attach_disk(conn):
    disk = "<disk type='file' device='disk'><source file='/x.qcow2'/><target dev='vdz' bus='virtio'/></disk>"
    conn.lookupByName("test").attachDevice(disk)


def _open_console(conn):
    conn.lookupByName("test").openConsole(None, conn.newStream(0), 0)


def _resize_volume(conn):
    pool = conn.storagePoolLookupByName("default-pool")
    pool.createXML(dx.volume_xml(f"r-{uuid.uuid4().hex[:8]}", GiB), 0).resize(2 * GiB, 0)


def _wipe_volume(conn):
    pool = conn.storagePoolLookupByName("default-pool")
    pool.createXML(dx.volume_xml(f"w-{uuid.uuid4().hex[:8]}", GiB), 0).wipe(0)


def _nwfilter(conn):
    conn.nwfilterDefineXML("<filter name='zenith-sg'><rule action='accept' direction='in'/></filter>")


@pytest.mark.parametrize(
    "call",
    [_attach_disk, _open_console, _resize_volume, _wipe_volume, _nwfilter],
    ids=["attach-device", "open-console", "volume-resize", "volume-wipe", "nwfilter"],
)
def test_unsupported_calls_translate_to_not_supported(driver, call):
    with pytest.raises(libvirt.libvirtError) as info:
        call(driver.conn)
    err = translate(info.value)
    assert isinstance(err, NotSupported)
    assert "not supported by the connection driver" in str(err)


def test_other_libvirt_errors_translate_to_driver_error(driver):
    with pytest.raises(libvirt.libvirtError) as info:
        driver.conn.defineXML("<domain type='test'><name>broken</name></domain>")
    err = translate(info.value)
    assert type(err) is DriverError and str(err) == info.value.get_error_message()


# -- console ---------------------------------------------------------------------------------


def test_console_log_tail(driver, tmp_path):
    log = tmp_path / "console.log"
    assert driver.console_log(str(log), 10) == ""
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    assert driver.console_log(str(log), 3) == "line 997\nline 998\nline 999\n"
    assert tail_file(log, 2, block=7) == "line 998\nline 999\n"
    assert driver.console_log(str(log), 0) == ""
    assert len(driver.console_log(str(log), 5000).splitlines()) == 1000


# -- disks of a defined domain (hot-plug; the real guest's side is in tests/realhost) ----------


def test_disk_xml_and_free_targets():
    spec = DiskSpec(path="/pool/vol-1", format="raw", readonly=True)
    disk = ET.fromstring(dx.disk_xml(spec, "vdc"))
    assert disk.tag == "disk" and disk.get("device") == "disk"
    assert disk.find("source").get("file") == "/pool/vol-1"
    assert disk.find("target").attrib == {"dev": "vdc", "bus": "virtio"}
    assert disk.find("driver").get("type") == "raw" and disk.find("readonly") is not None
    assert dx.free_disk_dev(set()) == "vda"
    assert dx.free_disk_dev({"vda", "vdb", "vdd"}) == "vdc"
    assert dx.free_disk_dev({f"vd{chr(c)}" for c in range(ord("a"), ord("z") + 1)}) == "vdaa"
    assert dx.free_disk_dev({"sda"}, bus="scsi") == "sdb"


def test_disks_of_a_spawned_domain(driver, tmp_path):
    second = DiskSpec(path="/zenith-test/images/extra.qcow2")
    spec = running_spawn(driver, tmp_path, disks=[DiskSpec(path="/zenith-test/images/root.qcow2"), second])
    disks = dx.disks_of(driver.domain_xml(spec.name))
    assert {target: path for target, (path, _xml) in disks.items()} == {
        "vda": "/zenith-test/images/root.qcow2",
        "vdb": "/zenith-test/images/extra.qcow2",
    }
    assert ET.fromstring(disks["vdb"][1]).find("target").get("dev") == "vdb"


def test_a_cdrom_is_not_a_disk_to_detach_or_delete():
    xml = """<domain><devices>
      <disk type='file' device='disk'><source file='/pool/root'/><target dev='vda' bus='virtio'/></disk>
      <disk type='block' device='disk'><source dev='/dev/vg/vol'/><target dev='vdb' bus='virtio'/></disk>
      <disk type='file' device='cdrom'><source file='/iso/boot.iso'/><target dev='hdc' bus='ide'/></disk>
    </devices></domain>"""
    assert {t: path for t, (path, _xml) in dx.disks_of(xml).items()} == {
        "vda": "/pool/root",
        "vdb": "/dev/vg/vol",
    }
    assert dx.disk_paths_from_xml(xml) == ["/pool/root", "/dev/vg/vol"]


def test_attach_disk_on_the_test_driver_changes_the_definition_only(driver, tmp_path):
    """libvirt's test driver has no device hot-plug: the disk goes into the persistent definition
    and the answer says ``live: False``; the running domain's live XML does not pretend to have it."""
    spec = running_spawn(driver, tmp_path)
    vol = "/zenith-test/images/vol.qcow2"
    assert driver.attach_disk(spec.name, DiskSpec(path=vol)) == {
        "target": "vdb",
        "attached": True,
        "live": False,
    }
    dom = driver.conn.lookupByName(spec.name)
    assert vol in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) and vol not in dom.XMLDesc(0)
    # Idempotent: found where it is, in the definition.
    assert driver.attach_disk(spec.name, DiskSpec(path=vol))["attached"] is False
    assert driver.attach_disk(spec.name, spec.disks[0]) == {"target": "vda", "attached": False, "live": False}
    with pytest.raises(DriverError, match="already has another disk at vdb"):
        driver.attach_disk(spec.name, DiskSpec(path="/other.qcow2", target_dev="vdb"))
    assert driver.detach_disk(spec.name, vol) == {"target": "vdb", "detached": True, "live": False}
    assert vol not in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def test_detach_of_a_disk_not_attached_is_a_no_op(driver, tmp_path):
    spec = running_spawn(driver, tmp_path)
    assert driver.detach_disk(spec.name, "vdz") == {"target": None, "detached": False, "live": False}
    assert driver.detach_disk(spec.name, "/nowhere.qcow2")["detached"] is False
    with pytest.raises(DomainNotFound):
        driver.detach_disk("zenith-missing", "vdb")
