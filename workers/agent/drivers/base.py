"""The driver interface of the host agent: plain data in, plain data out, no Django."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from os import PathLike

# Nova's power states, the only values ``power_state`` returns.
RUNNING = "running"
PAUSED = "paused"
SHUTDOWN = "shutdown"
CRASHED = "crashed"
SUSPENDED = "suspended"
NOSTATE = "nostate"
POWER_STATES = (RUNNING, PAUSED, SHUTDOWN, CRASHED, SUSPENDED, NOSTATE)

# Seconds a running guest may take to release an unplugged disk (measured: under a second).
DETACH_TIMEOUT = 30.0


class DriverError(Exception):
    """A hypervisor call failed; ``str(exc)`` is the hypervisor's own message."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class NotSupported(DriverError):
    """The connected hypervisor cannot do this (e.g. libvirt's test driver has no real guest)."""


class DomainNotFound(DriverError):
    """No domain of that name on this host."""


class VolumeNotFound(DriverError):
    """No volume of that name in the backend's pool."""


class VolumeInUse(DriverError):
    """The volume is held by a running guest in a way that forbids this (a qcow2 file's resize)."""


class PoolConflict(DriverError):
    """The agent's storage pool cannot be made its own: another pool definition at another path
    still serves domains (so the agent must not start on it)."""


@dataclass(frozen=True)
class HostInfo:
    hostname: str
    vcpus: int
    memory_mb: int
    disk_gb: int  # capacity of the agent's storage pool, 0 when it has none
    hypervisor_type: str  # libvirt's name of the driver: "QEMU", "Test", ...
    hypervisor_version: int  # libvirt encoding: major * 1_000_000 + minor * 1_000 + release
    uri: str
    arch: str = ""
    cpu_mhz: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DiskSpec:
    path: str  # a file, a block device, or for type "network" the rbd name "<ceph pool>/<image>"
    format: str = "qcow2"
    bus: str = "virtio"
    target_dev: str | None = None  # vda, vdb, ... by position when None
    readonly: bool = False
    type: str = "file"  # libvirt's disk source type: "file", "block" or "network"
    protocol: str = ""  # "rbd" for type "network"
    hosts: tuple[str, ...] = ()  # rbd monitors, "host:port"
    auth_user: str = ""  # the cephx user, when the rbd backend needs one ...
    secret_uuid: str = ""  # ... and the libvirt secret holding its key


@dataclass(frozen=True)
class BackendSpec:
    """A storage backend of the agent: a libvirt pool of its own (``ZENITH_STORAGE_BACKENDS``).

    ``dir``: qcow2 files in ``path`` (raw files when ``format`` is "raw"); ``logical``: raw logical
    volumes of the LVM volume group ``source``; ``rbd``: raw images in the Ceph pool ``source`` on
    the monitors ``hosts``. The same code serves all three: only the pool XML and the disk source
    type differ.
    """

    name: str
    type: str = "dir"
    path: str = ""
    source: str = ""
    hosts: tuple[str, ...] = ()
    auth_user: str = ""
    secret_uuid: str = ""
    shared: bool = False  # every compute host reaches it (rbd, or a dir on shared storage)
    pool_name: str = ""  # the libvirt pool's name (set from the host and the pool's identity)
    format: str = ""  # a dir pool's volume format: "qcow2" (the default) or "raw"

    @property
    def volume_format(self) -> str:
        """The format of a new volume: qcow2 files in a dir pool (unless configured raw), raw
        anywhere else."""
        if self.type != "dir":
            return "raw"
        return self.format or "qcow2"

    def needs_conversion(self, image_format: str) -> bool:
        """An image of ``image_format`` must be converted to raw before its bytes go into a volume
        here: a qcow2 image and a backend that holds raw volumes. A dir pool of qcow2 keeps the
        image's format as it is."""
        return image_format == "qcow2" and self.volume_format == "raw"


@dataclass(frozen=True)
class NicSpec:
    mac: str
    network: str | None = None  # a libvirt network name ...
    bridge: str | None = None  # ... or a host bridge (exactly one of the two)
    model: str = "virtio"
    target_dev: str = ""  # the tap device's name; "" lets libvirt pick (vnetN)
    filter: str = ""  # the nwfilter the NIC references (a port's security groups); "" for none

    def __post_init__(self):
        if (self.network is None) == (self.bridge is None):
            raise ValueError("a NIC needs exactly one of network= or bridge=")


@dataclass(frozen=True)
class DomainSpec:
    name: str  # "zenith-<instance uuid>"
    uuid: str  # the instance's uuid, used as the domain's uuid
    vcpus: int
    memory_mb: int
    disks: list[DiskSpec] = field(default_factory=list)
    nics: list[NicSpec] = field(default_factory=list)
    console_log: str | None = None  # serial console logged to this file (the agent reads it)
    instance_id: str | None = None  # written to <metadata>; defaults to uuid
    vnc: bool = True
    vnc_listen: str = "127.0.0.1"
    arch: str | None = None  # None: the hypervisor's default
    boot: str = "hd"
    # Direct kernel boot (an AMI with its AKI/ARI): paths on the host, passed as <os><kernel> etc.
    kernel: str | None = None
    ramdisk: str | None = None
    cmdline: str | None = None  # e.g. "console=ttyS0"; only with ``kernel``


ByteSource = str | PathLike | Iterable[bytes]
Progress = Callable[[int], None]
# callback(domain_uuid, instance_id or None, power_state (one of POWER_STATES), event name)
LifecycleCallback = Callable[[str, str | None, str, str], None]


class ComputeDriver(ABC):
    """What the agent's tasks call. Every method is idempotent where the docstring says so."""

    @abstractmethod
    def host_info(self) -> HostInfo: ...

    @abstractmethod
    def ensure_pool(self) -> None: ...

    @abstractmethod
    def create_disk_from_image(self, name: str, base: str | None, size_gb: int) -> str: ...

    @abstractmethod
    def import_image(
        self, name: str, source: ByteSource, size: int, progress: Progress | None = None
    ) -> str: ...

    @abstractmethod
    def spawn(self, spec: DomainSpec) -> dict: ...

    @abstractmethod
    def start(self, name: str) -> str: ...

    @abstractmethod
    def stop(self, name: str, timeout: float = 60.0, force: bool = False) -> str: ...

    @abstractmethod
    def reboot(self, name: str, hard: bool = False, timeout: float | None = None) -> str: ...

    @abstractmethod
    def pause(self, name: str) -> str: ...

    @abstractmethod
    def unpause(self, name: str) -> str: ...

    @abstractmethod
    def suspend(self, name: str) -> str: ...

    @abstractmethod
    def resume(self, name: str) -> str: ...

    @abstractmethod
    def destroy_and_undefine(self, name: str, delete_disks: bool = True) -> dict: ...

    @abstractmethod
    def power_state(self, name: str) -> str: ...

    @abstractmethod
    def list_domains(self) -> list[dict]: ...

    @abstractmethod
    def attach_disk(self, name: str, disk: DiskSpec) -> dict: ...

    @abstractmethod
    def detach_disk(self, name: str, disk: str, timeout: float = DETACH_TIMEOUT) -> dict: ...

    def resize_disk(self, name: str, disk: str, size_bytes: int) -> dict:
        """Tell domain ``name``'s guest that its disk ``disk`` (target or source) grew to
        ``size_bytes``; ``{"target", "live"}``."""
        raise NotSupported(f"{type(self).__name__} cannot resize a guest's disk")

    def export_disk(self, name: str, dest: str, target: str = "vda", marker: str | None = None) -> dict:
        """A consistent, flattened qcow2 copy of domain ``name``'s disk ``target`` at ``dest``
        (a running guest paused meanwhile, ``marker`` existing while it is); ``{"source", "paused"}``."""
        raise NotSupported(f"{type(self).__name__} cannot copy a guest's disk")

    # -- storage backends (the storage role); a driver without them says so --------------------

    def backend_report(self, backend: BackendSpec) -> dict:
        """``{"pool", "capacity_bytes", "available_bytes"}`` of ``backend``'s pool."""
        raise NotSupported(f"{type(self).__name__} has no storage backends")

    def volume_info(self, backend: BackendSpec, name: str) -> dict | None:
        """``{"name", "path", "capacity_bytes", "allocation_bytes", "format"}``, None if missing."""
        raise NotSupported(f"{type(self).__name__} has no storage backends")

    def volume_create(self, backend: BackendSpec, name: str, size_bytes: int) -> dict:
        """A blank volume; idempotent. Answers like ``volume_info``."""
        raise NotSupported(f"{type(self).__name__} has no storage backends")

    def volume_create_from_file(
        self, backend: BackendSpec, name: str, path: str, fmt: str, size_bytes: int, progress=None
    ) -> dict:
        """A volume holding a full copy of an image file (not a backing-file link)."""
        raise NotSupported(f"{type(self).__name__} has no storage backends")

    def volume_copy(self, backend: BackendSpec, name: str, source: str, size_bytes: int = 0) -> dict:
        """A full copy of another volume of the backend: clone, snapshot, volume from snapshot."""
        raise NotSupported(f"{type(self).__name__} has no storage backends")

    def volume_extend(self, backend: BackendSpec, name: str, size_bytes: int) -> dict:
        """Grow a volume (never shrink)."""
        raise NotSupported(f"{type(self).__name__} has no storage backends")

    def volume_delete(self, backend: BackendSpec, name: str) -> bool:
        """Delete a volume; False when there was none (idempotent)."""
        raise NotSupported(f"{type(self).__name__} has no storage backends")

    def volume_connection(self, backend: BackendSpec, name: str) -> dict:
        """``workers.messages.VolumeConnection``'s fields for a volume."""
        raise NotSupported(f"{type(self).__name__} has no storage backends")

    def volume_read(self, backend: BackendSpec, name: str) -> Iterable[bytes]:
        """A volume's bytes as stored, in chunks (upload to an image)."""
        raise NotSupported(f"{type(self).__name__} has no storage backends")

    def volume_stored_size(self, backend: BackendSpec, name: str) -> int:
        """How many bytes ``volume_read`` yields: the volume as stored (a file's length, a block
        device's or an rbd image's size), not its virtual capacity nor its allocation."""
        raise NotSupported(f"{type(self).__name__} has no storage backends")

    def listen_events(self, callback: LifecycleCallback) -> int:
        """Call ``callback`` on every lifecycle event of the host's domains; a listener id."""
        raise NotSupported(f"{type(self).__name__} reports no lifecycle events")

    def console_log(self, path: str, lines: int = 100) -> str:
        """The last ``lines`` lines of the serial log file the guest writes; "" when there is none."""
        return tail_file(path, lines)


def tail_file(path: str | PathLike, lines: int, block: int = 64 * 1024) -> str:
    """Last ``lines`` lines of a file, read backwards in blocks (a console log can be large)."""
    if lines <= 0:
        return ""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, the read loop needs the handle
    except (FileNotFoundError, NotADirectoryError):
        return ""
    with fh:
        fh.seek(0, 2)
        pos = fh.tell()
        data = b""
        # One newline more than asked: the text may end with a newline of its own.
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
    text = data.decode("utf-8", errors="replace")
    kept = text.splitlines(keepends=True)[-lines:]
    return "".join(kept)
