"""Deployment defaults (issue 16, items 3 and 4): ``make run`` generates a random SECRET_KEY into
``var/`` once and the settings read it; a production run refuses the public default key and
``check --deploy`` flags it; the web process listens on 127.0.0.1 unless ``BIND`` says otherwise.
Real processes: ``manage.py`` and the Procfile's web line under honcho."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portal.secret_key import DEFAULT_SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]
SHOW_KEY = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"


def run(args, var_dir: Path, **env) -> subprocess.CompletedProcess:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DJANGO_SECRET_KEY", "ZENITH_ENV")
    }
    environ.update(ZENITH_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="portal.settings", **env)
    return subprocess.run(args, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)


def manage(var_dir: Path, *args, **env) -> subprocess.CompletedProcess:
    return run([sys.executable, "manage.py", *args], var_dir, **env)


def key_of(var_dir: Path, **env) -> str:
    result = run([sys.executable, "-c", SHOW_KEY], var_dir, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_key_is_generated_once_kept_and_read(tmp_path):
    assert key_of(tmp_path) == DEFAULT_SECRET_KEY  # nothing generated yet: the development default
    first = manage(tmp_path, "ensure_secret_key")
    assert first.returncode == 0 and "Generated" in first.stdout, first.stderr
    key_file = tmp_path / "secret_key"
    key = key_file.read_text().strip()
    assert len(key) >= 50 and key != DEFAULT_SECRET_KEY
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert manage(tmp_path, "ensure_secret_key").returncode == 0  # a restart keeps it
    assert key_file.read_text().strip() == key
    assert key_of(tmp_path) == key
    assert key_of(tmp_path, DJANGO_SECRET_KEY="from-the-environment") == "from-the-environment"
    assert key_of(tmp_path, SECRET_KEY="older-name") == "older-name"
    # Another var dir gets another key.
    manage(tmp_path / "other", "ensure_secret_key")
    assert (tmp_path / "other" / "secret_key").read_text().strip() != key


def test_production_refuses_the_public_default_key(tmp_path):
    refused = manage(tmp_path, "check", ZENITH_ENV="production")
    assert refused.returncode != 0
    assert "public default SECRET_KEY" in refused.stderr
    assert manage(tmp_path, "check", ZENITH_ENV="production", DJANGO_SECRET_KEY="k" * 60).returncode == 0
    manage(tmp_path, "ensure_secret_key")
    assert manage(tmp_path, "check", ZENITH_ENV="production").returncode == 0


def test_check_deploy_flags_the_default_key(tmp_path):
    flagged = manage(tmp_path, "check", "--deploy")
    assert "zenith.E001" in flagged.stdout + flagged.stderr and flagged.returncode != 0
    manage(tmp_path, "ensure_secret_key")
    generated = manage(tmp_path, "check", "--deploy")
    assert "zenith.E001" not in generated.stdout + generated.stderr


def test_make_run_generates_the_key_before_anything_starts():
    plan = subprocess.run(
        ["make", "-n", "--no-print-directory", "run"], cwd=ROOT, capture_output=True, text=True, timeout=60
    ).stdout
    lines = plan.splitlines()
    ensure = next(i for i, line in enumerate(lines) if "manage.py ensure_secret_key" in line)
    migrate = next(i for i, line in enumerate(lines) if "manage.py migrate" in line)
    assert ensure < migrate


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listeners(port: int) -> set[str]:
    """Local addresses listening on ``port`` (IPv4), from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, local_port = local.split(":")
        if state == "0A" and int(local_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


@pytest.mark.parametrize("bind", [None, "0.0.0.0"])
def test_the_web_process_binds_loopback_unless_told(tmp_path, bind):
    honcho = ROOT / ".venv" / "bin" / "honcho"
    port = _free_port()
    env = {"ZENITH_PORT": str(port)}
    if bind:
        env["BIND"] = bind
    environ = {k: v for k, v in os.environ.items() if k != "BIND"}
    environ.update(ZENITH_VAR_DIR=str(tmp_path), **env)
    proc = subprocess.Popen(
        [str(honcho), "start", "-f", "Procfile", "web"],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _listeners(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _listeners(port) == {bind or "127.0.0.1"}
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def test_make_runs_simulated_hosts_share_their_volume_backend():
    """On ``make run`` a volume created on either simulated host can be attached to an instance on
    the other (as on shared storage), so a newcomer's first attach never meets "cannot reach"."""
    import json
    import shlex
    from pathlib import Path

    procfile = (Path(__file__).resolve().parents[2] / "Procfile").read_text()
    for line in procfile.splitlines():
        name, _, command = line.partition(":")
        if not name.startswith("sim-"):
            continue
        words = shlex.split(command)
        assert words[0] == "env", line
        (setting,) = [w for w in words if w.startswith("ZENITH_STORAGE_BACKENDS=")]
        backends = json.loads(setting.partition("=")[2])
        assert [(b["name"], b["type"], b["shared"]) for b in backends] == [("local", "dir", True)], line
