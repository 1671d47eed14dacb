"""scripts/simulate-fleet --mode managed-instances: the command line, and the report it writes
(docs/fleet-simulation-managed-instances.{md,json,png}). The model is simulate_managed.py."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from cache_extension.runner import PREFETCH_BUDGET
from cache_extension.lanes import THREADS_PER_LANE as FETCH_THREADS  # one source in one region: one lane

from local_lambda.simulate_common import (
    ROOT,
    add_options,
    argument_as_given,
    duration_text,
    log,
    number,
    plot_series,
    reproduce_section,
)
from local_lambda.simulate_managed import NAME, OPTIONS, STRATEGIES, simulate

LABELS = {"get_parameter": "cache per process (get_parameter)",
          "get_parameters_by_name": "cache per process (get_parameters_by_name)",
          "extension": "shared extension per environment"}
COLOURS = {"get_parameter": "#d62728", "get_parameters_by_name": "#ff7f0e", "extension": "#1f77b4"}
MIB = 1024 * 1024

# Each runs in a fresh interpreter that prints how much its RSS grew (KiB): what one function process adds to read
# parameters itself (boto3 and an SSM client, as Powertools needs) or through the extension (its thin client).
RSS_PROBE = ("import sys\n"
             "def rss():\n"
             "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS:'))\n"
             "before = rss()\nexec(sys.argv[1])\nprint(rss() - before)\n")
RSS_SNIPPETS = {"boto3_ssm_client_mib": "import boto3; boto3.client('ssm', region_name='us-east-1')",
                "thin_client_mib": "import cache_extension_client"}


def measure_memory() -> dict[str, Any]:
    """The per-process RSS each way of reading costs, measured here (median of 3 fresh interpreters), and the
    extension's own RSS as scripts/bench measured it (docs/benchmarks.json), when there is one."""
    measured: dict[str, Any] = {"python": platform.python_version()}
    if not Path("/proc/self/status").exists():
        return measured
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "layer" / "python")}
    for key, snippet in RSS_SNIPPETS.items():
        runs = [int(subprocess.run([sys.executable, "-c", RSS_PROBE, snippet], capture_output=True, text=True,
                                   check=True, env=environment, timeout=60).stdout) for _ in range(3)]
        measured[key] = round(statistics.median(runs) / 1024, 1)
    try:
        bench = json.loads((ROOT / "docs" / "benchmarks.json").read_text())
        smallest = bench["rss"]["sizes"][0]
        measured["extension_rss_mib"] = smallest["rss_after_prefetch_mib"]
        measured["extension_rss_items"] = smallest["items"]
        measured["extension_rss_source"] = f"docs/benchmarks.json (`{bench['command']}`)"
    except (OSError, KeyError, IndexError, ValueError):
        pass
    return measured


def table(results: dict[str, Any]) -> str:
    p, strategies = results["parameters"], results["strategies"]
    names = list(strategies)

    def row(label: str, show: Callable[[dict], str]) -> str:
        return f"| {label} | " + " | ".join(show(strategies[name]) for name in names) + " |"

    def timer(s: dict) -> str:
        t = s["timer"]
        return "n/a" if s["strategy"] != "extension" else \
            f"{t['runs']:,} / {t['refresh_ahead_calls']:,} / {t['entries_started']:,}"

    return "\n".join([
        "| | " + " | ".join(LABELS[name] for name in names) + " |",
        "|---" * (len(names) + 1) + "|",
        row("SSM calls", lambda s: number(s["api_calls"])),
        row("SSM calls per minute: whole run / second half", lambda s: f"{number(s['calls_per_min'])} / "
                                                                      f"{number(s['calls_per_min_second_half'])}"),
        row(f"peak calls/s (quota: {p['tps']:g})", lambda s: number(s["peak_calls_per_s"])),
        row("throttled calls", lambda s: f"{number(s['throttled_calls'])} ({s['throttled_pct']:.1f}%)"),
        row("SDK retries (boto3, in the process)", lambda s: number(s["sdk_retries"])
            if s["strategy"] != "extension" else "n/a (the Store's own: " +
            f"{s['store_counters']['Retries']:,})"),
        row("reads", lambda s: number(s["reads"])),
        row("failed reads", lambda s: f"{number(s['failed_reads'])} ({s['failed_reads_pct']:.3f}%)"),
        row("failed reads by cause", lambda s: ", ".join(f"{code} {count:,}" for code, count
                                                         in s["failed_reads_by_code"].items()) or "none"),
        row("reads: hit / miss / stale", lambda s: f"{s['hits']:,} / {s['misses']:,} / {s['stale_served']:,}"),
        row("age of served values p50 / p99 / max", lambda s: " / ".join(
            duration_text(s[key]) for key in ("age_p50_s", "age_p99_s", "age_max_s"))),
        row("staleness (superseded upstream for) p99 / max", lambda s: f"{duration_text(s['staleness_p99_s'])} / "
                                                                       f"{duration_text(s['staleness_max_s'])}"),
        row("reads of a superseded version", lambda s: f"{s['superseded_reads_pct']:.1f}%"),
        row("caches", lambda s: number(s["caches"])),
        row(f"cached copies of each value (copies of all {p['items']} held at the end)",
            lambda s: f"{s['caches']:,} ({s['copies_held']:,})"),
        row(f"value bytes held (copies × {p['value_bytes']:,} B)", lambda s: _bytes(s["value_bytes_held"])),
        row("refresh timer: wakeups / refresh_ahead() runs / entries", timer),
    ])


def memory_table(results: dict[str, Any]) -> list[str]:
    m, p = results["memory"], results["parameters"]
    if "boto3_ssm_client_mib" not in m:
        return ["(Not measured in this run: `--no-memory`, or no /proc/self/status.)"]
    processes = p["envs"] * p["processes"]
    lines = ["| | cache per process | shared extension per environment |", "|---|---|---|",
             f"| per function process (RSS, measured here) | {m['boto3_ssm_client_mib']} MiB: boto3 and an SSM client "
             f"| {m['thin_client_mib']} MiB: the thin Python client |",
             f"| × {processes:,} processes | {m['boto3_ssm_client_mib'] * processes:,.0f} MiB "
             f"| {m['thin_client_mib'] * processes:,.1f} MiB |"]
    if "extension_rss_mib" in m:
        lines.append(f"| extension process, × {p['envs']} environments | none | {m['extension_rss_mib']} MiB each "
                     f"(RSS after a prefetch of {m['extension_rss_items']} items, from {m['extension_rss_source']}): "
                     f"{m['extension_rss_mib'] * p['envs']:,.0f} MiB |")
    return lines


def _bytes(count: int) -> str:
    return f"{count / MIB:,.2f} MiB" if count >= MIB else f"{count / 1024:,.0f} KiB"


def _reads(count: int) -> str:
    return f"{count:,} read" + ("" if count == 1 else "s")


def explanation(results: dict[str, Any]) -> list[str]:
    p, s = results["parameters"], results["strategies"]
    one, batched, ext = s["get_parameter"], s["get_parameters_by_name"], s["extension"]
    processes = p["envs"] * p["processes"]
    paragraphs = [
        f"Every function process with a cache of its own fetches every value itself: {processes:,} caches "
        f"({p['envs']} environments × {p['processes']} processes), so each value is fetched {p['processes']} times "
        f"per environment and TTL, and held {processes:,} times. With get_parameter that is one call per name "
        f"({number(one['calls_per_min_second_half'])} calls a minute in the second half); get_parameters_by_name "
        f"batches the names a process finds expired ({number(batched['calls_per_min_second_half'])} a minute). The "
        f"shared extension fetches each value once per environment, {p['envs']} times per TTL "
        f"({number(ext['calls_per_min_second_half'])} calls a minute), and holds {p['envs']} copies.",
        f"When an environment starts, its {p['processes']} processes take their first invokes together: with "
        f"get_parameter {p['processes'] * p['items']:,} calls at once against a quota of {p['tps']:g} calls/s. "
        f"{one['throttled_calls']:,} calls were throttled; boto3 retried them ({one['sdk_retries']:,} retries) and "
        f"{_reads(one['failed_reads'])} failed after every attempt. Batched: {batched['throttled_calls']:,} throttled, "
        f"{batched['failed_reads']:,} failed. The extension: {ext['throttled_calls']:,} throttled, "
        f"{ext['failed_reads']:,} failed.",
        f"No invoke ever reaches the extension (Managed Instances send none), so its refresh runs on the timer: "
        f"{ext['timer']['refresh_ahead_calls']:,} refresh_ahead() runs started {ext['timer']['entries_started']:,} "
        f"entries, and its processes read {ext['misses']:,} misses and {ext['stale_served']:,} stale values: a "
        f"value is refreshed before its TTL runs out (oldest value served {duration_text(ext['age_max_s'])}, TTL "
        f"{duration_text(p['ttl_s'])}). A per-process cache serves a value until its TTL runs out and then makes the "
        f"reader wait for the call (oldest {duration_text(one['age_max_s'])}); staleness p99 "
        f"{duration_text(ext['staleness_p99_s'])} against {duration_text(one['staleness_p99_s'])}.",
    ]
    return [line for paragraph in paragraphs for line in (paragraph, "")]


def markdown(results: dict[str, Any]) -> str:
    p = results["parameters"]
    ext = results["strategies"]["extension"]
    overrides = ext["policy_overrides"]
    policy = "`Policy()` (the defaults)" if not overrides else "`Policy` with " + ", ".join(
        f"`{k}={v}`" for k, v in overrides.items())
    lines = [
        "# Fleet simulation on Lambda Managed Instances: one cache per process, or one per environment",
        "",
        f"`{results['command']}`, {results['date']}, {results['wall_s']:.0f} s of wall time for "
        f"{duration_text(p['duration_s'])} of virtual time per strategy (the numbers, per second too: "
        f"[{NAME}.json]({NAME}.json)). Generated: run the command again rather than editing this page. The classic "
        "on-demand mode is [fleet-simulation.md](fleet-simulation.md).",
        "",
        f"{p['envs']} Managed Instances environments start within {duration_text(p['start_s'])} and run "
        f"{p['processes']} function processes each (`AWS_LAMBDA_MAX_CONCURRENCY={p['processes']}`; Python runs a "
        f"process per slot, each with its own memory) for {duration_text(p['duration_s'])}. Every invoke reads the "
        f"same {p['items']} SSM parameters ({p['value_bytes']:,} bytes each), TTL {duration_text(p['ttl_s'])}, "
        f"against an account whose SSM quota is {p['tps']:g} calls per second.",
        "",
        table(results),
        "",
        f"![SSM calls, throttled calls and failed reads over time; cached copies]({NAME}.png)",
        "",
        "## Why the numbers differ",
        "",
        *explanation(results),
        "## Memory",
        "",
        "The table's bytes are the values' own: the size of every value a cache holds at the end of the run "
        "(the per-process caches' entries, and one read of every item from every extension's Store), summed: "
        "value bytes × copies. Python's per-object overhead is left out, so both columns are lower bounds. What each "
        "way of reading costs besides the values:",
        "",
        *memory_table(results),
        "",
        "A function that uses boto3 for other AWS calls pays its client's share anyway; the extension's process is "
        "paid once per environment whatever the concurrency.",
        "",
        "## What was simulated",
        "",
        "- **Time.** A discrete-event scheduler (simulate_common.Scheduler, the classic mode's) runs every clock, "
        "executor and timer. Nothing sleeps.",
        f"- **Environments** are never frozen. Each process serves one invoke at a time: it reads the {p['items']} "
        f"items one after another, works {duration_text(p['work_s'])}, then idles for an exponential time with mean "
        f"{duration_text(p['interval_s'])}. Every strategy meets the same start times and invoke gaps.",
        f"- **SSM**: one account, a token bucket of {p['tps']:g} calls/s (burst {p['tps']:g}) over every call, each "
        f"answered {duration_text(p['latency_s'])} after it is sent; a call over the quota is a botocore "
        f"`ClientError` (`ThrottlingException`). Each parameter gets a new version every "
        f"{duration_text(p['change_s'])} at staggered times, so a served value's staleness is known.",
        "- **Cache per process** is a small explicit model of Powertools Parameters' cache, not its code: in each "
        "process a dict of value and expiry per name, with the same TTL (Powertools' `max_age`, whose default is "
        "5 s, would call far more often). A name missing or expired is fetched by the reader: get_parameter makes "
        "one GetParameter call per name (GetParameters with one name stands in; the quota counts every call "
        "alike), get_parameters_by_name one GetParameters call per 10 such names, one after another as Powertools "
        f"does. The boto3 client retries a throttled call in botocore's default (legacy) mode: {p['sdk_attempts']} "
        "attempts, the n-th retry after random() × 2^(n-1) s; when all fail the library raises, and every read that "
        "call was for fails (get_parameters_by_name raises for the whole invoke). No stale value, no jitter, no "
        "single flight across processes: a process only knows its own cache.",
        f"- **Shared extension** is the extension's own code: one real `cache_extension.store.Store` per environment "
        f"with {policy}, a stale window of {duration_text(p['stale_s'])} and the real SSM fetcher "
        f"(`ParameterFetcher`, batches of {ext['batch_size']}), {FETCH_THREADS} fetch threads. INIT is its prefetch "
        f"(processes start serving when it has settled, or after {PREFETCH_BUDGET:g} s). Its refresh is the "
        "extension's timer on Managed Instances: `store.refresh_ahead()` while `store.next_refresh_due()` is due, "
        "then a sleep until the next due time, or until the Store's `on_settle` wakes it. Every process of the "
        f"environment reads that Store as through the thin client (`store.read()`, waiting at most "
        f"{duration_text(p['timeout_s'])} on a Future). A timer pass that found work due and started nothing would "
        f"spin in a real thread; it is counted ({ext['timer']['due_but_idle']}) and left to the next wake.",
        "",
        *reproduce_section(results, overrides, "`scripts/simulate-fleet --mode managed-instances --help` lists "
                           "the options. The simulated numbers are deterministic for a seed; the measured RSS figures "
                           "vary a little from run to run."),
    ]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p, strategies = results["parameters"], results["strategies"]
    figure, axes = plt.subplots(2, 2, figsize=(13, 8))
    figure.suptitle(f"Managed Instances: {p['envs']} environments × {p['processes']} processes, {p['items']} "
                    f"parameters, TTL {duration_text(p['ttl_s'])}, SSM quota {p['tps']:g} calls/s "
                    f"({results['command']})", fontsize=10)
    panels = [("calls_per_s", "SSM calls/s"), ("throttled_per_s", "throttled calls/s"),
              ("failed_reads_per_s", "failed reads/s")]
    for ax, (series, title) in zip(axes.flat, panels):
        plot_series(ax, results, series, COLOURS, LABELS)
        ax.set_ylim(0, max(ax.get_ylim()[1], 10))
        ax.set_title(f"{title} (symlog)", fontsize=10)
        ax.set_xlabel("virtual time (minutes)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    ax = axes.flat[3]
    names = list(strategies)
    copies = [strategies[name]["value_bytes_held"] / 1024 for name in names]
    ax.bar(range(len(names)), copies, color=[COLOURS[name] for name in names])
    ax.set_xticks(range(len(names)), [LABELS[name].replace(" (", "\n(") for name in names], fontsize=7)
    for i, name in enumerate(names):
        ax.annotate(f"{strategies[name]['caches']:,} copies", (i, copies[i]), ha="center", va="bottom", fontsize=8)
    ax.set_title("value bytes held at the end (KiB)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/simulate-fleet --mode managed-instances", description=sys.modules[simulate.__module__].__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Durations are Go durations (30s, 5m, 1h30m, 20ms). The default run takes a few seconds.")
    add_options(parser, OPTIONS, "change a field of the extension's Policy, e.g. --policy jitter=0; repeatable")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip measuring the per-process RSS of boto3 and of the thin client")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help=f"where {NAME}.md, .json and .png go "
                                                                        "(default: docs/)")
    return parser


def main(argv: list[str]) -> int:
    """argv without `--mode managed-instances`."""
    args = parser().parse_args(argv)
    for name in ("envs", "processes", "items", "value_bytes", "sdk_attempts"):
        if getattr(args, name) < 1:
            parser().error(f"--{name.replace('_', '-')} must be at least 1")
    if args.duration <= 0 or args.tps <= 0 or args.interval <= 0 or args.change <= 0:
        parser().error("--duration, --tps, --interval and --change must be positive")
    started = time.monotonic()
    strategies: dict[str, Any] = {}
    for strategy in STRATEGIES:
        summary, _ = simulate(args, strategy)
        strategies[strategy] = summary
        log(f"{strategy}: {summary['api_calls']:,} calls ({summary['throttled_calls']:,} throttled), "
            f"{summary['failed_reads']:,} failed reads of {summary['reads']:,}, {summary['wall_s']:.1f} s")
    shown = [arg if not arg.startswith(str(ROOT)) else os.path.relpath(arg, ROOT) for arg in argv]
    results = {
        "schema": 1,
        "command": shlex.join(["scripts/simulate-fleet", "--mode", "managed-instances", *shown]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "arguments": {name: argument_as_given(argv, name, default) for name, default, _, _ in OPTIONS},
        "parameters": {"envs": args.envs, "processes": args.processes, "start_s": args.start, "items": args.items,
                       "ttl_s": args.ttl, "stale_s": args.stale, "interval_s": args.interval,
                       "duration_s": args.duration, "seed": args.seed, "tps": args.tps, "latency_s": args.latency,
                       "timeout_s": args.timeout, "change_s": args.change, "work_s": args.work,
                       "value_bytes": args.value_bytes, "sdk_attempts": args.sdk_attempts,
                       "fetch_threads": FETCH_THREADS, "prefetch_budget_s": PREFETCH_BUDGET},
        "memory": {} if args.no_memory else measure_memory(),
        "strategies": strategies,
    }
    results["wall_s"] = round(time.monotonic() - started, 1)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{NAME}.json").write_text(json.dumps(results, indent=1) + "\n")
    chart(results, out / f"{NAME}.png")
    (out / f"{NAME}.md").write_text(markdown(results))
    print(table(results))
    print(f"\nwrote {out / NAME}.md, .json and .png in {results['wall_s']:.0f} s")
    return 0
