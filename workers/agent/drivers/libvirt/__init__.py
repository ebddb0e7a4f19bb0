"""The one host-side driver, over libvirt-python (DESIGN.md section 5), one module per concern:

- ``connection``: the connection (opened on first use, again after a drop), libvirt errors
  translated to ``DriverError`` / ``NotSupported`` / ``DomainNotFound``, the event loop thread;
- ``events``: lifecycle events to listeners (power sync);
- ``host``: the host's capacity;
- ``storage``: the agent's instance-disk pool, its disks and imported images;
- ``volumes``: the storage role's backends (dir, logical, rbd pools) and their volumes;
- ``domains``: define, start, power actions, delete, list;
- ``disks``: plug and unplug disks of a defined domain;
- ``networks``: libvirt networks, nwfilters, NICs of domains, floating IPs' NAT rules;
- ``xml``: the XML libvirt is given (domains, disks, pools, volumes), pure functions (a network's,
  nwfilter's and NIC's are in ``networks``);
- ``driver``: ``LibvirtDriver``, made of the mixins above.

URIs: ``test:///default`` (libvirt's in-memory test driver, no daemon), ``test:///abs/host.xml``,
``qemu:///system``, ``qemu+ssh://...``. What the connected driver cannot do raises
``NotSupported`` with libvirt's own message; it is never reported as success.
"""

from workers.agent.drivers.libvirt.connection import ensure_event_loop, kvm_usable, translate
from workers.agent.drivers.libvirt.domains import SOFT_REBOOT_TIMEOUT, libvirt_state_to_power_state
from workers.agent.drivers.libvirt.driver import LibvirtDriver
from workers.agent.drivers.libvirt.events import lifecycle_power_state
from workers.agent.drivers.libvirt.storage import CHUNK, DEFAULT_POOL_PATH, pool_name_for

__all__ = [
    "CHUNK",
    "DEFAULT_POOL_PATH",
    "SOFT_REBOOT_TIMEOUT",
    "LibvirtDriver",
    "ensure_event_loop",
    "kvm_usable",
    "libvirt_state_to_power_state",
    "lifecycle_power_state",
    "pool_name_for",
    "translate",
]
