"""The storage agent's runtime on qemu:///system with dir backends of the test's own under its
tmp_path, for tests that need a volume's real bytes (libvirt's test driver holds none). Skipped when
qemu:///system cannot be reached (``ZENITH_REQUIRE_REALHOST=1`` makes that a failure)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import libvirt
import pytest

from workers.agent import runtime

URI = "qemu:///system"


def system_libvirt() -> libvirt.virConnect:
    try:
        return libvirt.open(URI)
    except libvirt.libvirtError as exc:
        if os.environ.get("ZENITH_REQUIRE_REALHOST") == "1":
            pytest.fail(f"{URI} is required but cannot be reached: {exc}")
        pytest.skip(f"{URI} cannot be reached here: {exc}")


@contextlib.contextmanager
def real_dir_backends(monkeypatch, tmp_path: Path, host: str, backends: list[dict]):
    """The agent's runtime as host ``host`` with ``backends`` (``ZENITH_STORAGE_BACKENDS`` items,
    each a dir pool under tmp_path); yields the driver. Every pool made there is undefined after."""
    conn = system_libvirt()
    items = [{"type": "dir", "path": str(tmp_path / b["name"]), **b} for b in backends]
    monkeypatch.setenv(runtime.HOST_ENV, host)
    monkeypatch.setenv(runtime.URI_ENV, URI)
    monkeypatch.setenv(runtime.VAR_ENV, str(tmp_path))
    monkeypatch.setenv(runtime.POOL_ENV, str(tmp_path / "pool"))
    monkeypatch.setenv(runtime.BACKENDS_ENV, json.dumps(items))
    monkeypatch.setattr(runtime, "_driver", None)
    try:
        yield runtime.driver()
    finally:
        runtime.driver().close()
        monkeypatch.setattr(runtime, "_driver", None)
        for pool in conn.listAllStoragePools(0):
            if f"<path>{tmp_path}" in pool.XMLDesc(0):
                if pool.isActive():
                    for vol in pool.listAllVolumes(0):
                        vol.delete(0)
                    pool.destroy()
                pool.undefine()
        conn.close()
