"""What an agent process knows about itself: its host name and hypervisor (set by ``manage.py agent``)."""

from __future__ import annotations

import os
import socket
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .drivers.libvirt_driver import LibvirtDriver

HOST_ENV = "ZENITH_AGENT_HOST"
URI_ENV = "ZENITH_LIBVIRT_URI"
DEFAULT_URI = "test:///default"

_driver: LibvirtDriver | None = None
_driver_lock = threading.Lock()


def host_name() -> str:
    return os.environ.get(HOST_ENV) or socket.gethostname()


def libvirt_uri() -> str:
    return os.environ.get(URI_ENV) or DEFAULT_URI


def driver(uri: str | None = None) -> LibvirtDriver:
    """The one hypervisor driver of this process (libvirt's test driver keeps its state per connection).

    ``uri`` defaults to the agent's (``--libvirt-uri``); asking for another one replaces it.
    """
    global _driver
    uri = uri or libvirt_uri()
    with _driver_lock:
        if _driver is None or _driver.uri != uri:
            from .drivers.libvirt_driver import LibvirtDriver

            if _driver is not None:
                _driver.close()
            _driver = LibvirtDriver(uri)
        return _driver
