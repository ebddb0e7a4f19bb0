"""The libvirt connection: opened on first use and again after a drop, errors translated.

libvirt's default event loop implementation is registered when this module is imported (it must
be, before the first connection is opened) and run by one daemon thread per process, started by the
first ``LibvirtDriver``. Lifecycle events and the soft reboot's wait for the guest go through it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import threading
import time
from collections.abc import Iterator
from typing import Self
from urllib.parse import urlparse

import libvirt

from workers.agent.drivers.base import DomainNotFound, DriverError, NotSupported
from workers.agent.drivers.libvirt import xml as dx

log = logging.getLogger(__name__)

# libvirt prints every error on stderr by default; we raise them instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

# -- the event loop: registered before any connection is opened, run by one thread per process --

libvirt.virEventRegisterDefaultImpl()
_event_loop_lock = threading.Lock()
_event_loop_pid: int | None = None


def _run_event_loop() -> None:
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except Exception:  # one bad callback must not end event delivery for the process
            log.exception("libvirt event loop iteration failed")
            time.sleep(0.1)


def ensure_event_loop() -> None:
    """Run libvirt's default event loop in a daemon thread of this process (again after a fork)."""
    global _event_loop_pid
    with _event_loop_lock:
        if _event_loop_pid == os.getpid():
            return
        threading.Thread(target=_run_event_loop, name="libvirt-events", daemon=True).start()
        _event_loop_pid = os.getpid()


def kvm_usable(device: str = "/dev/kvm", cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether local guests can use KVM: /dev/kvm is read-writable and, on x86, the CPU has
    hardware virtualisation (vmx/svm). Some nested clouds expose a /dev/kvm without it (the
    kvm_pvm module): QEMU starts there but the guest never boots, so that counts as unusable."""
    if not os.access(device, os.R_OK | os.W_OK):
        return False
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    try:
        with open(cpuinfo) as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"vmx", "svm"})
    except OSError:
        return False
    return False


def translate(exc: libvirt.libvirtError) -> DriverError:
    message = exc.get_error_message() or str(exc)
    code = exc.get_error_code()
    if code == libvirt.VIR_ERR_NO_SUPPORT or "not supported by the connection driver" in message:
        return NotSupported(message, code)
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return DomainNotFound(message, code)
    return DriverError(message, code)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except libvirt.libvirtError as exc:
        raise translate(exc) from exc


def _is_missing(exc: libvirt.libvirtError, *codes: int) -> bool:
    return exc.get_error_code() in codes


class ConnectionMixin:
    """The driver's connection to one libvirt URI (``self.uri``), shared by its threads."""

    @property
    def conn(self) -> libvirt.virConnect:
        """The connection, opened on first use and again if it was closed or dropped."""
        with self._lock:
            if self._conn is not None:
                try:
                    if self._conn.isAlive():
                        return self._conn
                except libvirt.libvirtError:
                    pass
                self._conn = None
                self._lifecycle_cb = None
            with _errors():
                self._conn = libvirt.open(self.uri)
                if self._listeners:
                    self._register_lifecycle(self._conn)
            return self._conn

    def close(self) -> None:
        """Close the connection; listeners stay and are registered again if it is reopened."""
        with self._lock:
            if self._conn is not None:
                if self._lifecycle_cb is not None:
                    with contextlib.suppress(libvirt.libvirtError):
                        self._conn.domainEventDeregisterAny(self._lifecycle_cb)
                    self._lifecycle_cb = None
                with contextlib.suppress(libvirt.libvirtError):
                    self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def resolved_domain_type(self) -> str:
        """The <domain type> to define: test on the test driver, kvm when usable, else qemu."""
        if self._resolved_type is None:
            if self.domain_type != "auto":
                self._resolved_type = self.domain_type
            else:
                with _errors():
                    driver = self.conn.getType().lower()
                    caps = self.conn.getCapabilities()
                if driver == "test":
                    self._resolved_type = "test"
                else:
                    # A remote URI: /dev/kvm is on the other machine, trust its capabilities.
                    usable = self._is_remote() or kvm_usable()
                    self._resolved_type = dx.choose_domain_type(caps, usable)
        return self._resolved_type

    def _is_remote(self) -> bool:
        return bool(urlparse(self.uri).netloc)
