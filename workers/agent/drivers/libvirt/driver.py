"""``LibvirtDriver``: the one host-side driver, composed of one mixin per concern."""

from __future__ import annotations

import itertools
import os
import threading

import libvirt

from workers.agent.drivers.base import ComputeDriver, LifecycleCallback
from workers.agent.drivers.libvirt.connection import ConnectionMixin, ensure_event_loop
from workers.agent.drivers.libvirt.disks import DisksMixin
from workers.agent.drivers.libvirt.domains import DomainsMixin
from workers.agent.drivers.libvirt.events import EventsMixin
from workers.agent.drivers.libvirt.host import HostMixin
from workers.agent.drivers.libvirt.networks import NetworksMixin
from workers.agent.drivers.libvirt.storage import DEFAULT_POOL_PATH, StorageMixin, pool_name_for
from workers.agent.drivers.libvirt.volumes import VolumesMixin


class LibvirtDriver(
    ConnectionMixin,
    EventsMixin,
    HostMixin,
    StorageMixin,
    VolumesMixin,
    DomainsMixin,
    DisksMixin,
    NetworksMixin,
    ComputeDriver,
):
    def __init__(
        self,
        uri: str = "test:///default",
        domain_type: str = "auto",
        pool_name: str | None = None,
        pool_path: str = DEFAULT_POOL_PATH,
    ):
        if domain_type not in ("auto", "kvm", "qemu", "test"):
            raise ValueError(f"domain_type must be auto, kvm, qemu or test, not {domain_type!r}")
        self.uri = uri
        self.domain_type = domain_type
        self.pool_path = os.path.normpath(pool_path)
        self.pool_name = pool_name or pool_name_for(self.pool_path)
        self._pool_reconciled = False  # once per driver: the definition checked against pool_path
        self._backend_pools: dict[str, str] = {}  # backend pool name -> the pool checked (adopted)
        self._pool_lock = threading.Lock()  # one reconciliation at a time (task threads start together)
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.Lock()
        self._resolved_type: str | None = None
        self._listeners: dict[int, LifecycleCallback] = {}
        self._listener_ids = itertools.count(1)
        self._lifecycle_cb: int | None = None  # libvirt's id of our callback on ``_conn``
        self._instance_ids: dict[str, str | None] = {}  # domain uuid -> instance id, for events
        # Keepalive answers and events need the loop running from the first connection on: without
        # it libvirtd drops an idle qemu:///system connection after ~30 s ("Broken pipe").
        ensure_event_loop()
