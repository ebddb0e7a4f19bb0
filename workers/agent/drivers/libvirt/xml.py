"""libvirt XML built with ElementTree: domains, disks, pools and volumes. Pure functions."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from workers.agent.drivers.base import DiskSpec, DomainSpec, NicSpec

METADATA_NS = "https://zenith.invalid/xmlns/instance/1"
METADATA_PREFIX = "zenith"
ET.register_namespace(METADATA_PREFIX, METADATA_NS)

GiB = 1024**3


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = text
    return el


def _disk_dev(index: int, bus: str) -> str:
    prefix = {"virtio": "vd", "scsi": "sd", "sata": "sd", "ide": "hd"}.get(bus, "vd")
    letters = ""
    n = index
    while True:
        letters = chr(ord("a") + n % 26) + letters
        n = n // 26 - 1
        if n < 0:
            return prefix + letters


def _disk(parent: ET.Element, disk: DiskSpec, dev: str) -> ET.Element:
    """A <disk> of source type file (a file in a dir pool), block (a logical volume) or network
    (an rbd image ``<ceph pool>/<image>`` with its monitors and cephx secret)."""
    d = _sub(parent, "disk", type=disk.type, device="disk")
    _sub(d, "driver", name="qemu", type=disk.format, cache="none")
    if disk.type == "file":
        _sub(d, "source", file=disk.path)
    elif disk.type == "block":
        _sub(d, "source", dev=disk.path)
    elif disk.type == "network":
        if disk.auth_user:
            auth = _sub(d, "auth", username=disk.auth_user)
            _sub(auth, "secret", type="ceph", uuid=disk.secret_uuid)
        source = _sub(d, "source", protocol=disk.protocol or "rbd", name=disk.path)
        for host in disk.hosts:
            name, _, port = host.partition(":")
            _sub(source, "host", name=name, port=port or None)
    else:
        raise ValueError(f"disk type must be file, block or network, not {disk.type!r}")
    _sub(d, "target", dev=dev, bus=disk.bus)
    if disk.readonly:
        _sub(d, "readonly")
    return d


def disk_xml(disk: DiskSpec, dev: str) -> str:
    """The <disk> element of ``disk`` at target ``dev``, for hot-plugging into a defined domain."""
    return ET.tostring(_disk(ET.Element("devices"), disk, dev), encoding="unicode")


def free_disk_dev(used: set[str], bus: str = "virtio") -> str:
    """The first target name of ``bus`` (vda, vdb, ...) that no disk in ``used`` has."""
    index = 0
    while _disk_dev(index, bus) in used:
        index += 1
    return _disk_dev(index, bus)


def disks_of(xml: str) -> dict[str, tuple[str, str]]:
    """target dev -> (source path, the <disk> element as XML) of a domain's disks (not cdroms)."""
    found = {}
    for d in ET.fromstring(xml).findall("devices/disk"):
        target, source = d.find("target"), d.find("source")
        if target is None or d.get("device", "disk") != "disk":
            continue
        # file, block or network (rbd: "<ceph pool>/<image>")
        path = "" if source is None else source.get("file") or source.get("dev") or source.get("name") or ""
        found[target.get("dev")] = (path, ET.tostring(d, encoding="unicode"))
    return found


def interface(parent: ET.Element, nic: NicSpec) -> ET.Element:
    """An <interface> of ``nic``: on a libvirt network (type network) or a host bridge (type
    bridge), with its MAC, tap device name and model, and its nwfilter's <filterref> when it has one."""
    if nic.network is not None:
        i = _sub(parent, "interface", type="network")
        _sub(i, "mac", address=nic.mac.lower())
        _sub(i, "source", network=nic.network)
    else:
        i = _sub(parent, "interface", type="bridge")
        _sub(i, "mac", address=nic.mac.lower())
        _sub(i, "source", bridge=nic.bridge)
    if nic.target_dev:
        _sub(i, "target", dev=nic.target_dev)
    _sub(i, "model", type=nic.model)
    if nic.filter:
        _sub(i, "filterref", filter=nic.filter)
    return i


def domain_xml(spec: DomainSpec, domain_type: str) -> str:
    """The domain definition of ``spec`` for a hypervisor of ``domain_type`` (kvm, qemu, test)."""
    dom = ET.Element("domain", type=domain_type)
    _sub(dom, "name", spec.name)
    _sub(dom, "uuid", spec.uuid)
    meta = _sub(dom, "metadata")
    inst = _sub(meta, f"{{{METADATA_NS}}}instance")
    _sub(inst, f"{{{METADATA_NS}}}id", spec.instance_id or spec.uuid)
    _sub(dom, "memory", str(spec.memory_mb), unit="MiB")
    _sub(dom, "currentMemory", str(spec.memory_mb), unit="MiB")
    _sub(dom, "vcpu", str(spec.vcpus))
    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch=spec.arch)
    if spec.kernel:
        # Direct kernel boot: the firmware loads these instead of a boot sector.
        _sub(os_el, "kernel", spec.kernel)
        if spec.ramdisk:
            _sub(os_el, "initrd", spec.ramdisk)
        if spec.cmdline:
            _sub(os_el, "cmdline", spec.cmdline)
    else:
        _sub(os_el, "boot", dev=spec.boot)
    features = _sub(dom, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")

    devices = _sub(dom, "devices")
    for index, disk in enumerate(spec.disks):
        _disk(devices, disk, disk.target_dev or _disk_dev(index, disk.bus))
    for nic in spec.nics:
        interface(devices, nic)
    if spec.console_log:
        serial = _sub(devices, "serial", type="file")
        _sub(serial, "source", path=spec.console_log, append="on")
        _sub(serial, "target", port="0")
        console = _sub(devices, "console", type="file")
        _sub(console, "source", path=spec.console_log, append="on")
        _sub(console, "target", type="serial", port="0")
    if spec.vnc:
        g = _sub(devices, "graphics", type="vnc", port="-1", autoport="yes", listen=spec.vnc_listen)
        _sub(g, "listen", type="address", address=spec.vnc_listen)
    return ET.tostring(dom, encoding="unicode")


def instance_id_from_xml(xml: str) -> str | None:
    """The instance id written in <metadata> by ``domain_xml``, None for foreign domains."""
    root = ET.fromstring(xml)
    el = root.find(f"metadata/{{{METADATA_NS}}}instance/{{{METADATA_NS}}}id")
    return el.text if el is not None else None


def disk_paths_from_xml(xml: str) -> list[str]:
    """The source paths of a domain's disks (device='disk' only, not cdroms)."""
    return [path for path, _xml in disks_of(xml).values() if path]


def choose_domain_type(capabilities_xml: str, kvm_usable: bool) -> str:
    """ "kvm" when the capabilities offer it and /dev/kvm is usable, else "qemu"."""
    caps = ET.fromstring(capabilities_xml)
    offered = {d.get("type") for d in caps.iterfind("guest/arch/domain")}
    if kvm_usable and "kvm" in offered:
        return "kvm"
    return "qemu"


POOL_TYPES = ("dir", "logical", "rbd")


def pool_xml(
    name: str,
    path: str = "",
    pool_type: str = "dir",
    source: str = "",
    hosts: tuple[str, ...] | list[str] = (),
    auth_user: str = "",
    secret_uuid: str = "",
) -> str:
    """A storage pool: ``dir`` (files in ``path``), ``logical`` (the LVM volume group ``source``,
    its devices under ``path``, default /dev/<source>) or ``rbd`` (the Ceph pool ``source`` on the
    monitors ``hosts``, "host:port", with the cephx user ``auth_user`` whose key is libvirt secret
    ``secret_uuid``)."""
    if pool_type not in POOL_TYPES:
        raise ValueError(f"pool type must be one of {', '.join(POOL_TYPES)}, not {pool_type!r}")
    pool = ET.Element("pool", type=pool_type)
    _sub(pool, "name", name)
    if pool_type == "logical":
        src = _sub(pool, "source")
        _sub(src, "name", source)
        _sub(src, "format", type="lvm2")
        target = _sub(pool, "target")
        _sub(target, "path", path or f"/dev/{source}")
    elif pool_type == "rbd":
        src = _sub(pool, "source")
        _sub(src, "name", source)
        for host in hosts:
            host_name, _, port = host.partition(":")
            _sub(src, "host", name=host_name, port=port or None)
        if auth_user:
            auth = _sub(src, "auth", type="ceph", username=auth_user)
            _sub(auth, "secret", uuid=secret_uuid)
    else:
        target = _sub(pool, "target")
        _sub(target, "path", path)
    return ET.tostring(pool, encoding="unicode")


def pool_path_from_xml(xml: str) -> str:
    """The target directory of a pool's XML ("" when it has none)."""
    return (ET.fromstring(xml).findtext("target/path") or "").strip()


def volume_xml(
    name: str,
    capacity_bytes: int,
    fmt: str | None = "qcow2",
    backing_path: str | None = None,
    backing_format: str | None = None,
    vol_type: str = "file",
) -> str:
    """A volume; with ``backing_path`` a copy-on-write overlay over that image. ``fmt=None`` names
    no format (a logical volume or an rbd image: raw is all they hold); ``vol_type`` is libvirt's
    volume type: "file" in a dir pool, "block" for a logical volume, "network" for rbd."""
    vol = ET.Element("volume", type=vol_type)
    _sub(vol, "name", name)
    _sub(vol, "capacity", str(capacity_bytes), unit="bytes")
    _sub(vol, "allocation", "0", unit="bytes")
    target = _sub(vol, "target")
    if fmt is not None:
        _sub(target, "format", type=fmt)
    if backing_path is not None:
        backing = _sub(vol, "backingStore")
        _sub(backing, "path", backing_path)
        _sub(backing, "format", type=backing_format or "qcow2")
    return ET.tostring(vol, encoding="unicode")


def volume_format_from_xml(xml: str) -> str:
    """The format a volume's XML names ("qcow2", "raw", ...); "raw" when it names none."""
    el = ET.fromstring(xml).find("target/format")
    return (el.get("type") if el is not None else None) or "raw"


def with_disk(domain: str, disk: DiskSpec, dev: str) -> str:
    """The domain definition ``domain`` with ``disk`` added at ``dev`` (a definition-only attach,
    where the hypervisor has no device hot-plug)."""
    root = ET.fromstring(domain)
    devices = root.find("devices")
    if devices is None:
        devices = _sub(root, "devices")
    _disk(devices, disk, dev)
    return ET.tostring(root, encoding="unicode")


def without_disk(domain: str, dev: str) -> str:
    """The domain definition ``domain`` without its disk at target ``dev``."""
    root = ET.fromstring(domain)
    devices = root.find("devices")
    for d in [] if devices is None else devices.findall("disk"):
        target = d.find("target")
        if target is not None and target.get("dev") == dev:
            devices.remove(d)
    return ET.tostring(root, encoding="unicode")
