"""Stopping an agent the way ``make run``'s Ctrl-C does (SIGINT to its process group, then the
process runner's SIGTERM) prints nothing alarming and exits 0. Before, the hypervisor connection was
still open at interpreter exit, and libvirt's ``virConnect.__del__`` ran after its C module was torn
down: ``TypeError: 'NoneType' object is not callable`` on every stop.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from workers import processes

from .conftest import Plane, _signal_group, clear_broker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

STOP_WITHIN = 20  # seconds; an idle worker on the filesystem transport takes ~3-5 s


@pytest.mark.parametrize(
    "signals", [(signal.SIGINT,), (signal.SIGINT, signal.SIGTERM)], ids=["int", "int-term"]
)
def test_a_stopped_agent_prints_no_traceback_and_exits_0(tmp_path, django_db_setup, signals):
    clear_broker()
    workers = Plane(tmp_path)
    workers.env.update(ZENITH_HEARTBEAT_INTERVAL="1")
    agent = workers.launch_agent("quiet-host", processes.simulated_host_uri())
    try:
        workers.start(agent)  # answered a ping: its heartbeat has opened the libvirt connection
        time.sleep(1.5)  # and listens for lifecycle events, and has reported at least once
        for sig in signals:
            _signal_group(agent, sig)
        try:
            returncode = agent.proc.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the agent did not stop within {STOP_WITHIN} s:\n{agent.log()}")
    finally:
        workers.stop()
    log = agent.log()
    assert "Warm shutdown" in log, log
    for alarming in ("Traceback", "TypeError", "Exception ignored", "ERROR"):
        assert alarming not in log, log
    assert returncode == 0, log
