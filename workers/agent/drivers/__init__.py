"""Host-side drivers of the agent (DESIGN.md section 5): one interface, one libvirt implementation.

Importing this package does not import libvirt; ``LibvirtDriver`` lives in the ``libvirt`` package.
"""

from workers.agent.drivers.base import (
    ComputeDriver,
    DiskSpec,
    DomainNotFound,
    DomainSpec,
    DriverError,
    HostInfo,
    NicSpec,
    NotSupported,
    PoolConflict,
)

__all__ = [
    "ComputeDriver",
    "DiskSpec",
    "DomainNotFound",
    "DomainSpec",
    "DriverError",
    "HostInfo",
    "NicSpec",
    "NotSupported",
    "PoolConflict",
]
