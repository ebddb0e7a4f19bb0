"""What the host offers: CPUs, memory, the instance pool's capacity, the hypervisor."""

from __future__ import annotations

from workers.agent.drivers.base import HostInfo
from workers.agent.drivers.libvirt import xml as dx
from workers.agent.drivers.libvirt.connection import _errors


class HostMixin:
    def host_info(self) -> HostInfo:
        with _errors():
            conn = self.conn
            model, memory_mb, cpus, mhz, *_ = conn.getInfo()
            # The host's local disk is its instance pool: made here, so that a new host (no pool
            # until its first spawn) reports its real capacity instead of 0 GB, which no launch fits.
            disk_bytes = self.ensure_pool().info()[1]
            return HostInfo(
                hostname=conn.getHostname(),
                vcpus=int(cpus),
                memory_mb=int(memory_mb),
                disk_gb=int(disk_bytes // dx.GiB),
                hypervisor_type=conn.getType(),
                hypervisor_version=int(conn.getVersion()),
                uri=self.uri,
                arch=model,
                cpu_mhz=int(mhz),
            )
