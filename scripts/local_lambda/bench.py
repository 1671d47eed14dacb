"""Measures the extension from the built layer, side by side in one run, and writes docs/benchmarks.md (with the
chart docs/benchmarks.png) and docs/benchmarks.json.

What it measures, on this machine, in this run (so ratios matter more than absolute times):
- near cache: a repeated read of one name through each client (Python, Node.js, Java) with its near cache on,
  in µs, next to Powertools Parameters' cached get_parameter (and its first, uncached call);
- cache-hit latency over HTTP, p50/p99, through each client with its near cache off, on a keep-alive connection
  and with a new connection per call, next to the floor (bench_programs/raw_responder.py, a minimal raw-socket
  responder answering the very bytes the extension answers) and a direct boto3 GetParameter to the same moto;
- throughput and latency under load over 10 and 64 concurrent keep-alive connections, against the extension and
  the floor (wrk where installed, else bench_programs/load.py), and on asyncio's own loop instead of uvloop;
- a bare `python3 -S -E -c pass` start with the launcher's python3; process start -> register and -> INIT done
  with the CPU time of each phase, RSS after prefetch and the AWS calls of the prefetch, for 3, 50 and 500 items;
- import time by package (one launch under -X importtime) and where RSS goes, step by step (bench_memory);
- the layer's zip size per architecture;
and judges each against issue 13's targets (bench_targets; reported, never asserted). HTTP rows run with client
and server pinned to one CPU, so that no row pays a cross-CPU wake-up the others do not (two rows show that cost).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import layer
from .aws import MotoServer, create_sample_resources
from .bench_chart import chart
from .bench_common import (CONNECTIONS, MANY_CONNECTIONS, REGION, SIZES, Responder, capture_response, log, shown,
                           start_extension)
from .bench_latency import measure_latency, measure_near_cache
from .bench_layer import layer_sizes
from .bench_memory import memory_breakdown
from .bench_report import machine, markdown
from .bench_startup import bare_interpreter, create_bulk_resources, import_breakdown, startup
from .bench_targets import judge
from .bench_throughput import asyncio_loop_variant, throughput


def serve_and_measure(tree: Path, moto: MotoServer, workdir: Path, results: dict[str, Any], *, count: int,
                      warmup: int, near_count: int, duration: float) -> None:
    """Latency (HTTP and near cache) and throughput against one extension with the sample config.yaml."""
    sample_config = (layer.ROOT / "config.yaml").read_text()
    emulator, extension, port = start_extension(tree, moto, workdir / "latency", sample_config)
    try:
        emulator.invoke()
        responder = Responder(capture_response(port), workdir)
        try:
            direct_count = max(count // 10, 50)
            rows = measure_latency(tree, moto, port, extension.process.pid, responder, count, warmup, direct_count)
            results["latency"] = {"count": count, "warmup": warmup, "direct_count": direct_count, "rows": rows}
            log(f"near cache: {near_count:,} reads per row")
            results["near_cache"] = measure_near_cache(tree, moto, port, near_count, warmup, rows)
            rates = {}
            for connections in (CONNECTIONS, MANY_CONNECTIONS):
                log(f"throughput: {connections} connections, {duration:g} s each")
                rates[connections] = {
                    "floor": throughput(responder.port, duration, responder.process.pid, connections),
                    "extension": throughput(port, duration, extension.process.pid, connections)}
                for key, rate in rates[connections].items():
                    log(f"  {key}: {rate['requests_per_s']:,.0f} requests/s, p50 {rate['p50_ms']} ms, "
                        f"p99 {rate['p99_ms']} ms")
        finally:
            responder.close()
    finally:
        emulator.close()
    asyncio_rate = None
    variant = asyncio_loop_variant(tree, workdir)
    if variant is not None:
        emulator, extension, port = start_extension(variant, moto, workdir / "asyncio-loop", sample_config)
        try:
            emulator.invoke()
            asyncio_rate = throughput(port, duration, extension.process.pid, CONNECTIONS)
            log(f"  extension on asyncio's loop: {asyncio_rate['requests_per_s']:,.0f} requests/s")
        finally:
            emulator.close()
    floor_rate, extension_rate = rates[CONNECTIONS]["floor"], rates[CONNECTIONS]["extension"]
    results["throughput"] = {
        "tool": extension_rate["tool"], "connections": CONNECTIONS, "duration_s": extension_rate["duration_s"],
        "floor": floor_rate, "extension": extension_rate, "extension_asyncio_loop": asyncio_rate,
        "extension_vs_floor": round(extension_rate["requests_per_s"] / floor_rate["requests_per_s"], 4)
        if floor_rate["requests_per_s"] else None,
        "many": {"connections": MANY_CONNECTIONS, **rates[MANY_CONNECTIONS]},
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="scripts/bench", formatter_class=argparse.RawDescriptionHelpFormatter, description=__doc__,
        epilog="The full run takes about two minutes on a 2-CPU machine, layer builds included; --quick with "
               "--no-build under a minute.")
    parser.add_argument("--quick", action="store_true",
                        help="a short run (200 reads per HTTP row, 20,000 per near-cache row, 1 s of load, 1 launch "
                             "per size, 5 bare starts, no layer builds for other architectures); noisier numbers")
    parser.add_argument("--count", type=int, help="timed reads per HTTP latency row (default: 2000; --quick: 200)")
    parser.add_argument("--near-count", type=int,
                        help="timed reads per near-cache row (default: 100000; --quick: 20000)")
    parser.add_argument("--runs", type=int,
                        help="launches per size for start-up and RSS, median taken (default: 5; --quick: 1)")
    parser.add_argument("--bare-runs", type=int,
                        help="bare interpreter starts, median taken (default: 21; --quick: 5)")
    parser.add_argument("--duration", type=float, help="seconds of load per throughput target (default: 5; --quick: 1)")
    parser.add_argument("--no-build", action="store_true", help="use the layer tree as it is")
    parser.add_argument("--layer", type=Path, default=layer.ROOT / "dist" / "layer",
                        help="layer tree (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=layer.ROOT / "docs",
                        help="where benchmarks.md, benchmarks.json and benchmarks.png go (default: %(default)s)")
    args = parser.parse_args(argv)
    count = args.count or (200 if args.quick else 2000)
    near_count = args.near_count or (20_000 if args.quick else 100_000)
    runs = args.runs or (1 if args.quick else 5)
    bare_runs = args.bare_runs or (5 if args.quick else 21)
    duration = args.duration or (1.0 if args.quick else 5.0)
    warmup = 50 if args.quick else 200
    started = time.monotonic()
    tree = args.layer.resolve()
    if not (args.no_build and tree.exists()):
        log(f"building the layer into {tree}")
        layer.build(layer.machine_arch(), layer.this_python(), tree, log=log)
    if not (tree / "extensions" / layer.EXTENSION_NAME).exists():
        parser.error(f"{tree} holds no extensions/{layer.EXTENSION_NAME}: build it, or drop --no-build")
    if (unfit := layer.unfit_here(tree)) is not None:  # a tree from another --arch/--python: say so, not ImportError
        parser.error(f"{unfit}: drop --no-build to rebuild it for this machine")
    results: dict[str, Any] = {"schema": 2, "command": shlex.join(["scripts/bench", *argv]), "quick": args.quick,
                               "machine": machine(), "layer_tree": shown(tree)}
    with tempfile.TemporaryDirectory(prefix="bench-") as temp, MotoServer() as moto:
        workdir = Path(temp)
        create_sample_resources(moto, REGION)
        log(f"creating {max(SIZES)} items in moto")
        create_bulk_resources(moto, max(SIZES))

        log("latency and throughput: the extension with the sample config.yaml")
        serve_and_measure(tree, moto, workdir, results, count=count, warmup=warmup, near_count=near_count,
                          duration=duration)

        log(f"bare interpreter start, {bare_runs} runs")
        results["bare_start"] = bare_interpreter(bare_runs)
        log(f"start-up, RSS and AWS calls for {', '.join(map(str, SIZES))} items")
        sizes = startup(tree, moto, workdir, runs)
        results["startup"] = {"runs": runs, "sizes": sizes}
        results["rss"] = {"sizes": [{"items": r["items"], "rss_after_prefetch_mib": r["rss_after_prefetch_mib"]}
                                    for r in sizes]}
        results["aws_calls"] = {"sizes": [{"items": r["items"], "calls": r["aws_calls"],
                                           "by_operation": r["aws_calls_by_operation"]} for r in sizes]}
        log("import time (-X importtime) and memory steps")
        results["imports"] = import_breakdown(tree, moto, workdir)
        results["memory"] = memory_breakdown(tree, moto, workdir)

        log("layer size")
        results["layer"] = {"zips": layer_sizes(tree, workdir, build_missing=not args.quick)}

    results["targets"] = judge(results)
    results["run_seconds"] = round(time.monotonic() - started, 1)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps(results, indent=2) + "\n")
    chart(results, out / "benchmarks.png")
    text = markdown(results)
    (out / "benchmarks.md").write_text(text)
    headline = text.split("| issue 13 | target | measured | met? |", 1)[1].split("\n\n", 1)[0]
    print("| issue 13 | target | measured | met? |" + headline)
    print(f"\nwrote {out / 'benchmarks.md'}, {out / 'benchmarks.json'} and {out / 'benchmarks.png'} "
          f"in {results['run_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
