"""bench/run_all.py's table and README rewriting, on a recorded measured.json (no benchmark is run here:
they are slow and noisy)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "fixtures" / "measured.json"


def _load_runner():
    spec = importlib.util.spec_from_file_location("bench_run_all", ROOT / "bench" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


run_all = _load_runner()

README = """# Zenith

## Measured

Prose about the machine: 2 cores, shared, loaded.

<!-- measured:begin -->
| stale | hand | table |
<!-- measured:end -->

Faults table, written by hand:

| fault | time |
| --- | --- |
| agent | 8.5 s |
"""


@pytest.fixture
def measured():
    return json.loads(FIXTURE.read_text())


def _rows(table: str) -> dict:
    """{(figure, backend): (target, measured, load, when)} of a rendered table."""
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows[(cells[0], cells[2])] = tuple(cells[1:2] + cells[3:])
    return rows


def test_rows_come_from_the_json_keys(measured):
    rows = _rows(run_all.render_table(measured))
    emb, pg = "SQLite + filesystem", "PostgreSQL + Redis"
    assert rows[("API create answered (202), p50 / p95", emb)] == (
        "< 50 ms",
        "15.8 / 19.9 ms",
        "2.6 -> 3.4 (max 3.9)",
        "2026-12-03 16:28 UTC (65e1f47)",
    )
    assert rows[("API create-to-ACTIVE, p50 / p95 (10 runs, 2 hosts)", emb)][:2] == (
        "p50 < 300 ms",
        "81 / 102 ms",
    )
    assert rows[("of which conductor started -> succeeded, p50", emb)][1] == "46 ms"
    assert rows[("boot storm, 40 instances on 4 hosts: instances/s (total)", emb)][1] == "6.4 /s"
    assert rows[("boot storm, 4 hosts: errors / per-host min / max", emb)][1] == "0 / 9 / 11"
    # A list element picked by a key, whatever its position.
    assert rows[("scheduler, 1,000 hosts: candidates / select_and_claim p50", emb)][:2] == (
        "< 5 ms",
        "1.04 / 1.7 ms",
    )
    assert rows[("scheduler `explain()` (no-valid-host reasons), 10,000 hosts, p50", emb)][1] == "252 ms"
    assert (
        rows[("operation round trip (enqueue -> host -> callback), p50 / p95 (20 runs)", pg)][1]
        == "148 / 188 ms"
    )
    # A failed and a skipped run are one row each, with the reason; "|" in a reason is escaped.
    assert (
        rows[("`instance_create`", pg)][1]
        == "failed: exit 1: RuntimeError: instance 1f0 not ACTIVE after 60 s"
    )
    assert (
        rows[("`real_guest`", emb)][1]
        == "skipped: workers/agent/realhost.sh setup: no usable libvirtd \\| qemu"
    )
    # Only the registry's benchmarks are shown (a record nobody registers any more is not).
    assert not any("retired" in figure or "p50_ms" in figure for figure, _ in rows)


def test_rows_follow_the_registry_order(measured):
    figures = [line.split(" | ")[0] for line in run_all.render_table(measured).splitlines()[2:]]
    first = {
        name: next(i for i, f in enumerate(figures) if key in f)
        for name, key in (
            ("roundtrip", "operation round trip"),
            ("create", "API create"),
            ("storm", "boot storm"),
            ("scheduler", "scheduler"),
        )
    }
    assert first["roundtrip"] < first["create"] < first["storm"] < first["scheduler"]
    # A benchmark's failed backend comes after its measured rows, before the next benchmark.
    assert figures.index("| `instance_create`") == first["storm"] - 1


def test_each_figure_is_on_both_backends_one_line_after_the_other(measured):
    both = {
        **measured,
        "instance_create.pg": {**measured["instance_create.embedded"], "date": "2026-12-03 17:00 UTC"},
    }
    lines = run_all.render_table(both).splitlines()[2:]
    create = [line.split(" | ")[2] for line in lines if "API create" in line or "conductor started" in line]
    assert create == ["SQLite + filesystem", "PostgreSQL + Redis"] * 3


def test_readme_rewrite_is_idempotent_and_keeps_the_text_outside_the_markers(measured):
    table = run_all.render_table(measured)
    once = run_all.rewrite_readme(README, table)
    twice = run_all.rewrite_readme(once, table)
    assert once == twice
    assert "stale" not in once
    before, _, rest = once.partition(run_all.BEGIN)
    _, _, after = rest.partition(run_all.END)
    assert before == README.partition(run_all.BEGIN)[0]
    assert after == README.partition(run_all.END)[2]
    assert run_all.BEGIN + "\n" + table + run_all.END in once


@pytest.mark.parametrize(
    "text",
    [
        "no markers at all\n",
        f"{run_all.END}\nreversed\n{run_all.BEGIN}\n",
        f"{run_all.BEGIN}\n{run_all.END}\n{run_all.BEGIN}\n{run_all.END}\n",
    ],
)
def test_readme_without_one_pair_of_markers_is_refused(text):
    with pytest.raises(ValueError, match="measured:begin"):
        run_all.rewrite_readme(text, "| table |\n")


def test_write_outputs_merges_a_new_run_and_rewrites_in_place(tmp_path, measured):
    readme, path = tmp_path / "README.md", tmp_path / "measured.json"
    readme.write_text(README)
    newer = {
        **measured["instance_create.embedded"],
        "date": "2026-12-04 09:00 UTC",
        "result": {**measured["instance_create.embedded"]["result"], "plan": ["Seq Scan"]},
    }
    newer["result"]["create_answered"] = {"p50_ms": 12.0, "p95_ms": 14.0}
    merged = run_all.merge(measured, {"instance_create.embedded": newer})
    run_all.write_outputs(merged, readme=readme, path=path)
    first = readme.read_text()
    run_all.write_outputs(json.loads(path.read_text()), readme=readme, path=path)
    assert readme.read_text() == first
    rows = _rows(first.partition(run_all.BEGIN + "\n")[2].partition(run_all.END)[0])
    assert rows[("API create answered (202), p50 / p95", "SQLite + filesystem")][1:] == (
        "12 / 14 ms",
        "2.6 -> 3.4 (max 3.9)",
        "2026-12-04 09:00 UTC (65e1f47)",
    )
    # The others keep their own date.
    assert (
        rows[("boot storm, 4 hosts: total s", "SQLite + filesystem")][3] == "2026-12-03 16:30 UTC (65e1f47)"
    )
    assert first.endswith(README.partition(run_all.END)[2])


def test_slim_drops_plans_and_profiles_only():
    result = {
        "sizes": [{"hosts": 1, "plan": ["x"], "candidates": {"p50_ms": 1}}],
        "postgres_plans": {},
        "runs": 3,
    }
    assert run_all.slim(result) == {"sizes": [{"hosts": 1, "candidates": {"p50_ms": 1}}], "runs": 3}


def test_every_registered_row_names_its_keys_and_every_entry_runs_in_full():
    names = [b.name for b in run_all.BENCHMARKS]
    assert len(names) == len(set(names))
    for bench in run_all.BENCHMARKS:
        assert (ROOT / "bench" / bench.script).exists(), bench.script
        assert bench.rows and all(row.keys for row in bench.rows)
        assert set(bench.backends) <= set(run_all.BACKENDS)
