"""Run the benchmarks and rewrite the README's "Measured" table from their JSON.

Usage: .venv/bin/python bench/run_all.py [--full] [--only NAME[,NAME]] [--backends embedded,pg]
       [--pg-url URL] [--redis-url URL] [--table-only]
       (``make bench``, ``make bench FULL=1``)

Each benchmark in ``BENCHMARKS`` runs as its own process, once per backend: embedded (SQLite + the
filesystem broker) and PostgreSQL + Redis (``--pg-url`` / ``--redis-url``; skipped, with the reason,
when either does not answer). The quick set (default) is every entry with ``quick`` arguments; ``--full``
runs every entry with its ``full`` arguments (boot storms at several host counts, the real guest).
The 1-minute load average is read at the start and the end of each run and sampled every second
between (its maximum is kept).

Each run's raw JSON goes to ``var/bench/<timestamp>/<entry>.<backend>.json`` (not committed). The latest
result of every (entry, backend) is kept in ``bench/measured.json`` (committed), so a quick run does not
drop the rows of the benchmarks only ``--full`` runs: those keep their own date and commit. The table
between ``<!-- measured:begin -->`` and ``<!-- measured:end -->`` in README.md is rendered from it;
nothing outside the markers is touched.

Adding a benchmark is one ``Bench`` entry below: its script, the arguments of the quick and the full
run, and the rows it makes (a figure, the target, and the JSON keys shown, with their unit).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MEASURED = ROOT / "bench" / "measured.json"
BEGIN = "<!-- measured:begin -->"
END = "<!-- measured:end -->"
BACKENDS = {"embedded": "SQLite + filesystem", "pg": "PostgreSQL + Redis"}


@dataclass(frozen=True)
class Row:
    """One line of the table: ``figure`` (may use ``{key}`` of the result, e.g. ``{runs}``), the values of
    ``keys`` (dotted paths into the JSON; ``list[key=value]`` picks an element of a list) joined by " / ",
    then ``unit``."""

    figure: str
    keys: tuple[str, ...]
    unit: str = "ms"
    target: str = ""


@dataclass(frozen=True)
class Bench:
    name: str  # the key in measured.json; "<script>@<variant>" for variants of one script
    script: str
    quick: tuple[str, ...] | None  # arguments of the quick run; None: only in --full
    full: tuple[str, ...]
    rows: tuple[Row, ...]
    backends: tuple[str, ...] = ("embedded", "pg")
    timeout: float = 1800.0


def _storm(hosts: int, instances: int, quick: tuple[str, ...] | None, target: str = "") -> Bench:
    return Bench(
        f"boot_storm@{hosts}",
        "boot_storm.py",
        quick,
        ("--instances", str(instances), "--hosts", str(hosts)),
        (
            Row(
                "boot storm, {instances} instances on {hosts} hosts: instances/s (total)",
                ("instances_per_s",),
                "/s",
                target,
            ),
            Row("boot storm, {hosts} hosts: total s", ("total_s",), "s"),
            Row(
                "boot storm, {hosts} hosts: POST p50 / create-to-ACTIVE p50 (server)",
                ("create_answered.p50_ms", "create_to_active_server.p50_ms"),
            ),
            Row(
                "boot storm, {hosts} hosts: errors / per-host min / max",
                ("error", "per_host.min", "per_host.max"),
                "",
            ),
        ),
    )


BENCHMARKS: tuple[Bench, ...] = (
    Bench(
        "operation_roundtrip",
        "operation_roundtrip.py",
        ("--runs", "20"),
        ("--runs", "50"),
        (
            Row(
                "operation round trip (enqueue -> host -> callback), p50 / p95 ({runs} runs)",
                ("p50_ms", "p95_ms"),
            ),
        ),
    ),
    Bench(
        "instance_create",
        "instance_create.py",
        ("--runs", "10"),
        ("--runs", "30"),
        (
            Row(
                "API create answered (202), p50 / p95",
                ("create_answered.p50_ms", "create_answered.p95_ms"),
                target="< 50 ms",
            ),
            Row(
                "API create-to-ACTIVE, p50 / p95 ({runs} runs, {hosts} hosts)",
                ("create_to_active.p50_ms", "create_to_active.p95_ms"),
                target="p50 < 300 ms",
            ),
            Row(
                "of which conductor started -> succeeded, p50",
                ("server_phases.conductor_started_to_succeeded.p50_ms",),
            ),
            Row("API delete-to-gone (404), p50", ("delete_to_gone.p50_ms",)),
        ),
    ),
    _storm(4, 40, ("--instances", "40", "--hosts", "4", "--clients", "4")),
    _storm(10, 200, None),
    _storm(20, 200, None, "> 25 /s"),
    _storm(100, 500, None, ">= 50 /s"),
    Bench(
        "agent_memory",
        "agent_memory.py",
        ("--hosts", "1,100", "--idle", "5"),
        ("--hosts", "1,100,1000"),
        (
            Row(
                "one agent serving 100 simulated hosts: RSS / per host / each extra host",
                (
                    "runs[hosts=100].agent_rss_mb",
                    "runs[hosts=100].agent_rss_per_host_mb",
                    "runs[hosts=100].marginal_rss_per_host_mb",
                ),
                "MB",
                "< 5 MB per host",
            ),
            Row("portal / conductor RSS at idle", ("idle.web.rss_mb", "idle.conductor.rss_mb"), "MB"),
        ),
    ),
    Bench(
        "instance_list",
        "instance_list.py",
        ("--runs", "20"),
        ("--runs", "50"),
        (
            Row(
                "list 100 of {instances} instances (API first page), p50 / p95",
                ("requests.api_first_100.p50_ms", "requests.api_first_100.p95_ms"),
                target="< 50 ms",
            ),
            Row("list instances at offset 9,000 (API), p50", ("requests.api_offset_9000.p50_ms",)),
            Row(
                "dashboard instances page, first / page 400, p50",
                ("requests.dashboard_instances_page.p50_ms", "requests.dashboard_instances_page_400.p50_ms"),
                target="< 150 ms",
            ),
            Row(
                "SQL queries per list request, API / dashboard",
                ("requests.api_first_100.queries", "requests.dashboard_instances_page.queries"),
                "",
                "fixed",
            ),
        ),
    ),
    Bench(
        "scheduler",
        "scheduler.py",
        ("--hosts", "1000,10000", "--runs", "50"),
        ("--hosts", "1000,10000", "--runs", "200"),
        (
            Row(
                "scheduler, 1,000 hosts: candidates / select_and_claim p50",
                ("sizes[hosts=1000].candidates.p50_ms", "sizes[hosts=1000].select_and_claim.p50_ms"),
                target="< 5 ms",
            ),
            Row(
                "scheduler, 10,000 hosts: candidates / select_and_claim p50 / select_and_claim p95",
                (
                    "sizes[hosts=10000].candidates.p50_ms",
                    "sizes[hosts=10000].select_and_claim.p50_ms",
                    "sizes[hosts=10000].select_and_claim.p95_ms",
                ),
                target="< 20 ms",
            ),
            Row(
                "scheduler `explain()` (no-valid-host reasons), 10,000 hosts, p50",
                ("sizes[hosts=10000].explain_all_hosts.p50_ms",),
            ),
        ),
    ),
    Bench(
        "volume_create",
        "volume_create.py",
        ("--runs", "10"),
        ("--runs", "30"),
        (
            Row(
                "volume create-to-available / attach-to-in-use, p50 ({runs} runs)",
                ("create_to_available.p50_ms", "attach_to_in_use.p50_ms"),
                target="< 150 / < 300 ms",
            ),
            Row(
                "volume detach-to-available / delete-to-gone, p50",
                ("detach_to_available.p50_ms", "delete_to_gone.p50_ms"),
            ),
        ),
    ),
    Bench(
        "volume_list",
        "volume_list.py",
        ("--runs", "20"),
        ("--runs", "50"),
        (
            Row(
                "list 100 of {volumes} volumes (API first page), p50 / p95",
                ("requests.api_first_100.p50_ms", "requests.api_first_100.p95_ms"),
                target="< 50 ms",
            ),
            Row(
                "SQL queries per volume list request (API)", ("requests.api_first_100.queries",), "", "fixed"
            ),
        ),
    ),
    Bench(
        "port_create",
        "port_create.py",
        ("--ports", "100", "--threads", "50", "--free", "20"),
        ("--ports", "500", "--threads", "200", "--free", "100"),
        (
            Row(
                "port create ({ports} on a /22), service / native API, p50",
                ("service.p50_ms", "api.p50_ms"),
                target="< 10 ms (service)",
            ),
            Row(
                "ports racing for free addresses: threads / free / created / duplicates",
                ("race.threads", "race.free", "race.created", "race.duplicates"),
                "",
                "created = free, 0 duplicates",
            ),
        ),
    ),
    Bench(
        "real_guest",
        "real_guest.py",
        None,
        ("--guests", "5"),
        (
            Row(
                "real QEMU guest: create-to-ACTIVE p50 / p95 ({guests} guests)",
                ("create_to_active.p50_ms", "create_to_active.p95_ms"),
            ),
            Row(
                "real QEMU guest: create-to-`ZENITH GUEST READY` p50 / p95",
                ("create_to_console_marker.p50_ms", "create_to_console_marker.p95_ms"),
            ),
        ),
        backends=("embedded",),
    ),
)


# --- the table --------------------------------------------------------------------------------------


def lookup(result: dict, path: str):
    """The value at a dotted ``path`` of ``result`` (``name[key=value]``: from a list); None if absent."""
    node = result
    for part in path.split("."):
        match = re.fullmatch(r"(\w+)\[(\w+)=([^\]]+)\]", part)
        if match:
            name, key, want = match.groups()
            items = node.get(name) if isinstance(node, dict) else None
            node = next((i for i in items or () if str(i.get(key)) == want), None)
        else:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def _number(value) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}".rstrip("0").rstrip(".")


class _Keep(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def render_row(row: Row, record: dict) -> tuple[str, str]:
    """(figure, value) of ``row`` for one measured.json record."""
    result = record.get("result") or {}
    figure = row.figure.format_map(_Keep({k: _number(v) for k, v in result.items()}))
    if record.get("skipped"):
        return figure, f"skipped: {record['skipped']}"
    if record.get("failed"):
        return figure, f"failed: {record['failed']}"
    values = [lookup(result, key) for key in row.keys]
    if all(v is None for v in values):
        return figure, "n/a"
    text = " / ".join("n/a" if v is None else _number(v) for v in values)
    return figure, f"{text} {row.unit}".rstrip()


def _load(record: dict) -> str:
    load = record.get("load") or {}
    if not load:
        return ""
    return f"{load['start']:.1f} -> {load['end']:.1f} (max {load['max']:.1f})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(measured: dict, benchmarks=BENCHMARKS) -> str:
    """The Markdown table of every row of every benchmark measured, in registry order, per backend."""
    lines = [
        "| figure | target | backend | measured | load average (start -> end, max) | when (commit) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for bench in benchmarks:
        records = {b: measured[f"{bench.name}.{b}"] for b in BACKENDS if f"{bench.name}.{b}" in measured}
        ok = {b: r for b, r in records.items() if not (r.get("skipped") or r.get("failed"))}
        rows = [  # each figure on both backends, one line after the other
            (backend, *render_row(row, record), row.target)
            for row in bench.rows
            for backend, record in ok.items()
        ]
        rows += [
            (backend, f"`{bench.name}`", render_row(bench.rows[0], record)[1], "")
            for backend, record in records.items()
            if backend not in ok
        ]
        for backend, figure, value, target in rows:
            record = records[backend]
            when = f"{record.get('date', '?')} ({record.get('commit', '?')})"
            cells = (figure, target, BACKENDS[backend], value, _load(record), when)
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def rewrite_readme(text: str, table: str) -> str:
    """``text`` with what lies between the markers replaced by ``table``; refuses text without them."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start or text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"README must hold {BEGIN} ... {END} once, in that order")
    return text[: start + len(BEGIN)] + "\n" + table + text[end:]


def merge(measured: dict, records: dict) -> dict:
    """``measured`` with the (entry.backend) records of this run replacing theirs; sorted keys."""
    return dict(sorted({**measured, **records}.items()))


def load_measured(path: Path = MEASURED) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


# Left out of bench/measured.json (kept in the raw JSON under var/bench/): query plans and profiles.
BULKY = frozenset({"plan", "postgres_plans", "profile_api_first_100"})


def slim(value):
    """``value`` without the BULKY keys, at any depth."""
    if isinstance(value, dict):
        return {k: slim(v) for k, v in value.items() if k not in BULKY}
    if isinstance(value, list):
        return [slim(v) for v in value]
    return value


def write_outputs(measured: dict, readme: Path = README, path: Path = MEASURED) -> None:
    path.write_text(json.dumps(measured, indent=1, sort_keys=True) + "\n")
    readme.write_text(rewrite_readme(readme.read_text(), render_table(measured)))


# --- running ----------------------------------------------------------------------------------------


class LoadSampler:
    """The 1-minute load average at start and end, and its maximum sampled every ``interval`` s between."""

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self.start = self.peak = os.getloadavg()[0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, os.getloadavg()[0])

    def finish(self) -> dict:
        self._stop.set()
        self._thread.join()
        end = os.getloadavg()[0]
        return {"start": round(self.start, 2), "end": round(end, 2), "max": round(max(self.peak, end), 2)}


def backend_env(backend: str, pg_url: str, redis_url: str, var_dir: Path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
    }
    env["ZENITH_VAR_DIR"] = str(var_dir)
    if backend == "pg":
        env["DATABASE_URL"] = pg_url
        env["CELERY_BROKER_URL"] = redis_url
    return env


def services_down(pg_url: str, redis_url: str) -> str | None:
    """Why PostgreSQL + Redis cannot be used (None: both answer, and the names are ones a bench may drop)."""
    import dj_database_url

    db = dj_database_url.parse(pg_url)
    if "bench" not in db["NAME"]:
        return f"the PostgreSQL database {db['NAME']!r} is not named *bench* (the benchmarks drop it)"
    try:
        import psycopg2

        psycopg2.connect(
            dbname="postgres",
            user=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            host=db.get("HOST") or None,
            port=db.get("PORT") or None,
            connect_timeout=3,
        ).close()
    except Exception as exc:  # noqa: BLE001  (any failure to connect is the reason to skip)
        return f"PostgreSQL {db.get('HOST')}:{db.get('PORT')}: {str(exc).strip()[:200]}"
    try:
        import redis

        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001
        return f"Redis {redis_url}: {str(exc).strip()[:200]}"
    return None


def commit_label() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git(
        "status", "--porcelain", "--untracked-files=no", "--", ".", ":!README.md", ":!bench/measured.json"
    )
    return f"{head}+changes" if dirty else head


def run_one(bench: Bench, backend: str, args, env: dict, out_dir: Path) -> dict:
    argv = [sys.executable, str(ROOT / "bench" / bench.script), *(bench.full if args.full else bench.quick)]
    print(f"=== {bench.name} ({BACKENDS[backend]}): bench/{bench.script} {' '.join(argv[2:])}", flush=True)
    sampler = LoadSampler()
    started = time.monotonic()
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=bench.timeout)
        returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        returncode, stdout, stderr = "timeout", exc.stdout or "", f"timed out after {bench.timeout:.0f} s"
        stdout = stdout.decode(errors="replace") if isinstance(stdout, bytes) else stdout
    record = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": args.commit,
        "argv": argv[2:],
        "seconds": round(time.monotonic() - started, 1),
        "load": sampler.finish(),
        "cpus": os.cpu_count(),
    }
    result = None
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                result = json.loads(line)
                break
            except ValueError:
                continue
    if returncode != 0 or result is None:
        tail = (stderr.strip() or stdout.strip()).splitlines()[-1:] or [""]
        record["failed"] = f"exit {returncode}: {tail[0][:300]}"
    elif result.get("skipped"):
        record["skipped"] = str(result["skipped"])[:300]
    record["result"] = result
    (out_dir / f"{bench.name}.{backend}.json").write_text(json.dumps(record, indent=1) + "\n")
    record["result"] = slim(result)
    if stderr.strip() and (returncode != 0):
        (out_dir / f"{bench.name}.{backend}.stderr").write_text(stderr)
    status = record.get("failed") or record.get("skipped") or "ok"
    print(f"    {status} in {record['seconds']} s, load {_load(record)}", flush=True)
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="every benchmark at full size")
    parser.add_argument("--only", default="", help="comma-separated entry names (or scripts without .py)")
    parser.add_argument("--backends", default="embedded,pg")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/zenith_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument(
        "--table-only", action="store_true", help="rewrite the README from bench/measured.json"
    )
    args = parser.parse_args(argv)

    measured = load_measured()
    if args.table_only:
        write_outputs(measured)
        return 0
    only = {n for n in args.only.split(",") if n}
    chosen = [
        b
        for b in BENCHMARKS
        if (args.full or b.quick is not None) and (not only or b.name in only or b.script[:-3] in only)
    ]
    backends = [b for b in args.backends.split(",") if b]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}: use {', '.join(BACKENDS)}")
    if not chosen:
        parser.error("no benchmark chosen")
    args.commit = commit_label()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = ROOT / "var" / "bench" / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    down = services_down(args.pg_url, args.redis_url) if "pg" in backends else None
    if down:
        print(f"=== skipping PostgreSQL + Redis: {down}", flush=True)
    records = {}
    for backend in backends:
        if backend == "pg" and down:
            continue
        for bench in chosen:
            if backend not in bench.backends:
                continue
            var_dir = ROOT / "var" / "bench-work" / f"{bench.name}.{backend}"
            env = backend_env(backend, args.pg_url, args.redis_url, var_dir)
            records[f"{bench.name}.{backend}"] = run_one(bench, backend, args, env, out_dir)
            # Each run's own table, so an interrupted run still leaves what it measured.
            write_outputs(merge(measured, records))
    print(f"=== raw JSON in {out_dir.relative_to(ROOT)}; README.md and bench/measured.json rewritten")
    return 1 if any(r.get("failed") for r in records.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
