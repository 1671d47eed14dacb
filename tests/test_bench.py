"""scripts/bench end to end, in its short form: it runs, and writes every section with numbers.

Performance is what the bench reports, never what a test asserts: no number here is compared with a target."""

from __future__ import annotations

import json
import subprocess
from numbers import Number
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def is_number(value) -> bool:
    return isinstance(value, Number) and not isinstance(value, bool)


def test_quick_bench_writes_json_markdown_and_chart(layer_dir, tmp_path):
    out = tmp_path / "bench"
    run = subprocess.run([str(ROOT / "scripts" / "bench"), "--quick", "--no-build", "--layer", str(layer_dir),
                          "--out", str(out)], capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, f"stdout:\n{run.stdout[-3000:]}\nstderr:\n{run.stderr[-5000:]}"

    results = json.loads((out / "benchmarks.json").read_text())
    assert results["quick"] is True
    assert is_number(results["run_seconds"]) and is_number(results["machine"]["cpus"])

    rows = {row["id"]: row for row in results["latency"]["rows"]}
    for row_id in ("floor_keepalive", "raw_keepalive", "python_keepalive", "floor_new", "raw_new", "python_new",
                   "direct_boto3"):
        for key in ("p50_ms", "p99_ms", "p50_vs_floor", "speedup_vs_direct"):
            assert is_number(rows[row_id][key]) and rows[row_id][key] > 0, (row_id, key, rows[row_id])
    for row_id in ("node_keepalive", "java_keepalive"):  # None only where that runtime is not installed
        assert rows[row_id]["p50_ms"] is None or is_number(rows[row_id]["p50_ms"])

    throughput = results["throughput"]
    assert throughput["connections"] == 10
    for target in ("floor", "extension"):
        assert is_number(throughput[target]["requests_per_s"]) and throughput[target]["requests"] > 0
        assert throughput[target]["errors"] == 0
    assert is_number(throughput["extension_vs_floor"])

    sizes = results["startup"]["sizes"]
    assert [row["items"] for row in sizes] == [3, 50, 500]
    for row in sizes:
        for key in ("start_to_register_ms", "start_to_init_done_ms", "rss_after_prefetch_mib", "aws_calls"):
            assert is_number(row[key]) and row[key] > 0, (key, row)
        assert sum(row["aws_calls_by_operation"].values()) == row["aws_calls"]
    assert [row["items"] for row in results["rss"]["sizes"]] == [3, 50, 500]
    assert all(is_number(row["rss_after_prefetch_mib"]) for row in results["rss"]["sizes"])
    assert [row["items"] for row in results["aws_calls"]["sizes"]] == [3, 50, 500]
    assert all(is_number(row["calls"]) for row in results["aws_calls"]["sizes"])

    measured_layers = [row for row in results["layer"]["zips"] if row["zip_mib"] is not None]
    assert measured_layers, results["layer"]
    assert all(is_number(row["zip_mib"]) and is_number(row["unzipped_mib"]) for row in measured_layers)

    targets = {target["id"]: target for target in results["targets"]}
    assert set(targets) == {"python_p50_vs_floor", "python_speedup_vs_direct", "throughput_vs_floor",
                            "start_to_register", "start_to_init_done_3", "rss_after_prefetch", "layer_zip"}
    for target in targets.values():
        assert is_number(target["measured"]) and target["met"] in (True, False), target

    markdown = (out / "benchmarks.md").read_text()
    assert markdown.startswith("# Benchmarks")
    headline = markdown.index("| target | measured | met? |")
    sections = [markdown.index(title) for title in ("## Cache-hit latency", "## Throughput", "## Start-up",
                                                     "## Layer size", "## Machine", "## Command")]
    assert [headline, *sections] == sorted([headline, *sections])
    assert "scripts/bench --quick --no-build" in markdown
    assert (out / "benchmarks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
