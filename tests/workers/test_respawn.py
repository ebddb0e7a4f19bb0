"""``make run``'s process runner: honcho with every Procfile command under workers/respawn.py.

A process that dies (SIGKILL) is logged and restarted while the others keep running; Ctrl-C (SIGINT to
honcho) still stops them all. Real processes: honcho, the wrapper, and a small Python program per entry.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workers import respawn

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(600)"


def wait_until(predicate, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text() or 0) or None
    except (FileNotFoundError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of the wrapper counts as gone.
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_wrap_procfile_keeps_names_and_runs_each_command_under_the_wrapper():
    text = (
        "# comment\nweb: gunicorn --bind 0.0.0.0:${ZENITH_PORT:-8000}\n\n"
        "sim-1: python manage.py agent --host sim-1\n"
    )
    wrapped = respawn.wrap_procfile(text, "/venv/bin/python").splitlines()
    assert wrapped[0] == "# comment"
    assert wrapped[1] == (
        "web: /venv/bin/python -m workers.respawn run web -- "
        "sh -c 'exec gunicorn --bind 0.0.0.0:${ZENITH_PORT:-8000}'"
    )
    assert wrapped[2] == ""
    assert wrapped[3].startswith(
        "sim-1: /venv/bin/python -m workers.respawn run sim-1 -- sh -c 'exec python manage.py"
    )


def test_the_repository_procfile_is_run_wrapped_by_make_run():
    makefile = (ROOT / "Makefile").read_text()
    assert "-m workers.respawn procfile Procfile" in makefile
    assert "honcho start -f var/Procfile.run" in makefile


def test_a_killed_process_is_restarted_and_ctrl_c_still_stops_everything(tmp_path):
    honcho = Path(sys.executable).parent / "honcho"
    if not honcho.exists():
        pytest.skip("honcho is not installed in this virtualenv")
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        "".join(
            f'{name}: {sys.executable} -c "{PROGRAM}" {tmp_path / name}.pid\n' for name in ("alpha", "beta")
        )
    )
    (tmp_path / "Procfile.run").write_text(respawn.wrap_procfile(procfile.read_text(), sys.executable))
    with open(tmp_path / "honcho.log", "wb") as out:
        runner = subprocess.Popen(
            [str(honcho), "start", "-f", str(tmp_path / "Procfile.run"), "-d", str(ROOT)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        alpha = wait_until(lambda: pid_in(tmp_path / "alpha.pid"), "alpha to start")
        beta = wait_until(lambda: pid_in(tmp_path / "beta.pid"), "beta to start")
        os.kill(alpha, signal.SIGKILL)
        restarted = wait_until(
            lambda: (pid := pid_in(tmp_path / "alpha.pid")) != alpha and pid, "alpha to be restarted"
        )
        assert alive(restarted)
        assert alive(beta), "beta must keep running while alpha restarts"
        assert runner.poll() is None, "honcho must not stop everything when one process dies"
        log = (tmp_path / "honcho.log").read_text()
        assert "alpha: exited with signal 9" in log and "restarting in 1 s" in log, log

        runner.send_signal(signal.SIGINT)  # Ctrl-C
        runner.wait(timeout=20)
        wait_until(lambda: not alive(restarted) and not alive(beta), "every process to stop after Ctrl-C")
    finally:
        if runner.poll() is None:
            runner.kill()
