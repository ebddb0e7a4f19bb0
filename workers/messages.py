"""Typed messages between the conductor and the host agents: plain dataclasses, no Django.

Both sides import this module (the agent imports no model, the conductor no agent code), so a field
is named once. A message crosses the broker as JSON: ``as_dict()`` on the way out, ``from_dict()``
on the way in; ``from_dict`` refuses unknown and missing keys, so a renamed field fails loudly on
the first message instead of being read as a default.

Storage is the first user: the conductor sends a ``VolumeRequest`` (and friends) to ``storage.<host>``
and the agent answers with a ``VolumeResult``; attach and detach go to ``compute.<host>`` with the
``VolumeConnection`` the storage host handed over, so the compute side never needs to know the
backend (a file in a ``dir`` pool, a logical volume, an rbd image).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

M = TypeVar("M", bound="Message")


class MessageError(ValueError):
    """A message that does not match its dataclass (unknown, missing or mistyped keys)."""


@dataclass(frozen=True)
class Message:
    """Base of every typed message: strict to and from the JSON dict Celery carries."""

    # Fields whose value is itself a Message (or a list of them): name -> class.
    nested: ClassVar[dict[str, type[Message]]] = {}

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Message):
                value = value.as_dict()
            elif isinstance(value, (list, tuple)):
                value = [v.as_dict() if isinstance(v, Message) else v for v in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls: type[M], data: dict[str, Any] | M) -> M:
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise MessageError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise MessageError(f"{cls.__name__}: unknown keys {', '.join(unknown)}")
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - set(data))
        if missing:
            raise MessageError(f"{cls.__name__}: missing keys {', '.join(missing)}")
        values = dict(data)
        for name, sub in cls.nested.items():
            value = values.get(name)
            if isinstance(value, dict):
                values[name] = sub.from_dict(value)
            elif isinstance(value, list):
                values[name] = tuple(sub.from_dict(v) for v in value)
        for f in dataclasses.fields(cls):
            if isinstance(values.get(f.name), list):  # JSON has no tuples; frozen fields want them
                values[f.name] = tuple(values[f.name])
        return cls(**values)


# --- storage: what a storage host stores and how a compute host reaches it ------------------------


@dataclass(frozen=True)
class VolumeConnection(Message):
    """How a compute host attaches a volume, whatever the backend (libvirt's disk source)."""

    type: str  # "file" (dir pool), "block" (logical pool), "network" (rbd)
    path: str  # the file or block device; for "network": "<ceph pool>/<image>"
    format: str = "raw"  # "qcow2" or "raw": the disk driver's type
    protocol: str = ""  # "rbd" when type is "network"
    hosts: tuple[str, ...] = ()  # rbd monitors, "host:port"
    secret_uuid: str = ""  # the libvirt secret of a cephx user, when the backend needs one


@dataclass(frozen=True)
class VolumeSource(Message):
    """What a new volume starts from."""

    kind: str = "blank"  # "blank", "image", "snapshot" or "volume"
    # kind "image": the signed image spec the agent already fetches for a spawn (url, checksum,
    # disk_format, size, ...), as ``compute`` builds it.
    image: dict[str, Any] | None = None
    # kind "snapshot" / "volume": the source's name in the same backend (its libvirt volume).
    name: str = ""


@dataclass(frozen=True)
class VolumeRequest(Message):
    """Conductor -> ``storage.<host>``: create (or, for the other tasks, name) one volume."""

    nested: ClassVar[dict[str, type[Message]]] = {"source": VolumeSource}

    backend: str  # the backend's name as the host reports it (a libvirt pool of its own)
    name: str  # the libvirt volume's name: "volume-<uuid>" or "snapshot-<uuid>"
    size_gb: int = 0
    source: VolumeSource = field(default_factory=VolumeSource)
    operation_id: str = ""  # for progress reports (bytes copied)
    # upload_volume only: where the agent PUTs the volume's bytes (a signed URL of the portal; the
    # body is the volume as stored, in the format its connection names).
    upload_url: str = ""


@dataclass(frozen=True)
class VolumeResult(Message):
    """``storage.<host>`` -> conductor: the answer to a ``VolumeRequest`` (``{"ok": ...}`` shape of
    every host answer, so ``transition_done`` settles it like any other)."""

    nested: ClassVar[dict[str, type[Message]]] = {"connection": VolumeConnection}

    ok: bool
    error: str = ""
    message: str = ""
    size_bytes: int = 0
    allocation_bytes: int = 0
    connection: VolumeConnection | None = None
    existed: bool = True  # a delete: whether there was anything to delete
    # upload_volume: sha256 (hex) of the bytes sent, and their number is ``size_bytes``.
    checksum: str = ""


@dataclass(frozen=True)
class VolumeAttachment(Message):
    """Conductor -> ``compute.<host>``: attach (or detach, or resize) a volume on a domain."""

    nested: ClassVar[dict[str, type[Message]]] = {"connection": VolumeConnection}

    domain: str  # "zenith-<instance uuid>"
    connection: VolumeConnection
    target_dev: str = ""  # "vdb"...; chosen by the conductor, "" to let the host pick the next free
    readonly: bool = False
    size_bytes: int = 0  # resize: the new size the guest sees


@dataclass(frozen=True)
class AttachmentResult(Message):
    """``compute.<host>`` -> conductor."""

    ok: bool
    error: str = ""
    message: str = ""
    target_dev: str = ""
    live: bool = False  # the running guest saw it (False on a simulated host: definition only)


@dataclass(frozen=True)
class StorageBackendReport(Message):
    """One backend in the ``storage`` section of a host's heartbeat."""

    name: str
    type: str  # libvirt pool type: "dir", "logical", "rbd"
    pool: str  # the libvirt pool's name
    capacity_bytes: int
    available_bytes: int
    # Compute hosts that can attach its volumes: ["*"] for shared storage (rbd, a dir pool on a
    # shared mount), else just the host itself.
    reaches: tuple[str, ...] = ()
    simulated: bool = False


@dataclass(frozen=True)
class StorageReport(Message):
    """The ``storage`` section of a heartbeat."""

    nested: ClassVar[dict[str, type[Message]]] = {"backends": StorageBackendReport}

    backends: tuple[StorageBackendReport, ...] = ()
