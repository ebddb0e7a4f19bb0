"""The port benchmark runs as a script and its race holds the IPAM guarantee (created = free, no
address twice); a small run on the embedded defaults, in its own var dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_port_create_bench_prints_its_figures(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["ZENITH_VAR_DIR"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "bench/port_create.py", "--ports", "5", "--threads", "6", "--free", "3"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ports"] == 5 and result["service"]["p50_ms"] > 0 and result["api"]["p50_ms"] > 0
    race = result["race"]
    assert (race["created"], race["refused"], race["allocated"], race["duplicates"]) == (3, 3, 3, 0)
