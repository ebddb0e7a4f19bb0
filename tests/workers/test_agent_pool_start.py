"""``manage.py agent`` reconciles its storage pool before it takes any task (issue 9), as a real
process on libvirt's test driver loading a host file: it refuses to start, saying why, when a pool
of its name at another directory still serves domains; otherwise it makes the pool its own."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from workers import processes
from workers.agent.drivers.libvirt import pool_name_for
from workers.agent.drivers.libvirt import xml as dx

ROOT = Path(__file__).resolve().parents[2]
HOST = "pool-host"


def host_file(tmp_path: Path, pool_name: str, pool_dir: str, disk: str | None) -> str:
    """A test-driver host: one dir pool, and a domain whose disk is ``disk`` (when given)."""
    domain = (
        "<domain type='test'><name>zenith-other-agents</name><memory>65536</memory>"
        f"<os><type>hvm</type></os><devices><disk type='file' device='disk'><source file='{disk}'/>"
        "<target dev='vda' bus='virtio'/></disk></devices></domain>"
        if disk
        else ""
    )
    xml = (
        "<node><cpu><mhz>2400</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets>"
        "<cores>2</cores><threads>1</threads><active>2</active></cpu><memory>4194304</memory>"
        f"{domain}{dx.pool_xml(pool_name, pool_dir)}</node>"
    )
    path = tmp_path / "host.xml"
    path.write_text(xml)
    return f"test://{path}"


def run_agent(tmp_path: Path, uri: str, pool_dir: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "ZENITH_VAR_DIR": str(tmp_path / "var"), "ZENITH_LIBVIRT_POOL_PATH": str(pool_dir)}
    return subprocess.run(
        processes.agent_argv(HOST, libvirt_uri=uri),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_agent_refuses_a_pool_of_its_name_that_still_serves_domains_elsewhere(tmp_path):
    ours = tmp_path / "this-clone" / "pool"
    name = pool_name_for(str(ours), HOST)
    uri = host_file(tmp_path, name, "/other-agent/pool", disk="/other-agent/pool/zenith-x-disk")
    done = run_agent(tmp_path, uri, ours)
    assert done.returncode != 0
    message = done.stderr
    assert f"libvirt pool '{name}' is at /other-agent/pool, not at this agent's {ours}" in message, message
    assert "zenith-other-agents" in message and "ZENITH_LIBVIRT_POOL_PATH=/other-agent/pool" in message
    assert "Traceback" not in message  # a clear message, not a crash
