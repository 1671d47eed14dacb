"""The report of a bench run: docs/benchmarks.md (markdown()) and docs/benchmarks.png (chart()), from the results
document that also goes to docs/benchmarks.json."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .bench_common import spread
from .bench_startup import NAMED_PACKAGES

# Latency rows as the chart names them.
SHORT_LABELS = {
    "floor_keepalive": "floor: socket → responder", "raw_keepalive": "socket → extension",
    "python_keepalive": "Python client → extension", "python_keepalive_floor": "Python client → responder",
    "node_keepalive": "Node.js client → extension", "java_keepalive": "Java client → extension",
    "floor_new": "floor: socket → responder", "raw_new": "socket → extension",
    "python_new": "new CacheClient → extension", "python_new_floor": "new CacheClient → responder",
    "direct_boto3": "direct boto3 → moto", "floor_keepalive_cross": "floor, server on other CPU",
    "python_keepalive_cross": "Python client → ext., other CPU",
    "python_near": "Python client", "node_near": "Node.js client", "java_near": "Java client",
    "powertools_cached": "Powertools, cached",
}


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or platform.machine()) \
        if Path("/proc/cpuinfo").exists() else platform.processor()

    def version(command: list[str]) -> str | None:
        if not shutil.which(command[0]):
            return None
        out = subprocess.run(command, capture_output=True, text=True)
        return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else None

    return {"cpus": os.cpu_count(), "cpu_model": model, "machine": platform.machine(), "platform": platform.platform(),
            "python": platform.python_version(), "node": version(["node", "--version"]),
            "java": version(["java", "-version"]), "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def fmt(value: float | None, spec: str = ".3f", suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def placement_note(rows: list[dict[str, Any]]) -> str:
    by_id = {row["id"]: row for row in rows}
    if "floor_keepalive_cross" not in by_id:
        return "This machine has one CPU: client and server share it in every row."
    same, cross = by_id["floor_keepalive"]["p50_ms"], by_id["floor_keepalive_cross"]["p50_ms"]
    return ("Client and server are pinned to one CPU for every row but the last two, which put the server on the "
            f"other CPU: there the floor's round trip takes {cross:.3f} ms instead of {same:.3f} ms, the cost of "
            "waking a process that waits on another CPU (large on a virtual machine). Left unpinned, the scheduler "
            "decides run by run whether a row pays it, and the ratios would measure the scheduler.")


def loop_comparison(t: dict[str, Any]) -> list[str]:
    """What uvloop changes: the rate, and the server's CPU time per request, which the load generator's share of
    the CPUs moves less than the rate."""
    uv, aio = t["extension"], t.get("extension_asyncio_loop")
    if not aio or not uv["requests_per_s"] or not aio["requests_per_s"]:
        return []
    cost = {k: r["server_cpu_percent"] * 10_000 / r["requests_per_s"] for k, r in (("uv", uv), ("aio", aio))}  # us
    return [
        "The extension runs on uvloop. The asyncio row is the same layer with the line of the extension that makes "
        "the loop switched to asyncio's own: on uvloop the rate is "
        f"{uv['requests_per_s'] / aio['requests_per_s']:.2f}x asyncio's ({uv['requests_per_s']:,.0f} vs "
        f"{aio['requests_per_s']:,.0f} requests/s) and the server spends {cost['uv']:.0f} µs of CPU per request "
        f"against {cost['aio']:.0f} µs. Where other work shares the CPUs, the rates move from run to run and "
        "the CPU time per request is the steadier of the two.",
        "",
    ]


def targets_section(results: dict[str, Any]) -> list[str]:
    lines = ["| issue 13 | target | measured | met? |", "|---|---|---|---|"]
    for target in results["targets"]:
        met = ("reported" if not target["judged"] else "not measured" if target["met"] is None
               else "yes" if target["met"] else "**no**")
        item = f"({target['item']})" if target["item"] else ""
        lines.append(f"| {item} | {target['what']}: {target['target']} | {target['measured_text']} | {met} |")
    return lines


def near_cache_section(results: dict[str, Any]) -> list[str]:
    near = results.get("near_cache")
    if not near:
        return []
    lines = [
        "## Near cache: a repeated read of one name, in process",
        "",
        f"{near['count']:,} timed reads of one parameter per row, after {near['warmup']} untimed (the first of them "
        "a real GET, whose `Cache-Control: max-age` lets the client keep the value). Each client is built with its "
        "default, the near cache on (`CacheClient()`; Node.js `new CacheClient()`; Java `new CacheClient()`); the "
        "HTTP rows below build the same clients with it off. Powertools Parameters' `get_parameter` runs in this "
        "process against the same moto server (through `AWS_ENDPOINT_URL`), with `max_age=600` so that no read of "
        "the run finds its copy expired.",
        "",
        "| reader | p50 | p99 | the same client over HTTP, p50 | times faster than over HTTP |",
        "|---|---|---|---|---|",
    ]
    for row in near["rows"]:
        if row.get("p50_us") is None:
            lines.append(f"| {row['label']} | not measured ({row.get('note', '')}) | | | |")
            continue
        http = row.get("http_p50_us")
        label = row["label"] + (f" {row['version']}" if row.get("version") else "")
        lines.append(f"| {label} | {row['p50_us']:.2f} µs | {row['p99_us']:.2f} µs | {fmt(http, '.1f', ' µs')} | "
                     f"{fmt(http / row['p50_us'] if http else None, '.0f', 'x')} |")
    first = near.get("powertools_first_call")
    if first:
        lines += ["", f"Powertools' first call (uncached: it creates its boto3 client and calls GetParameter) took "
                      f"{first['first_call_ms']:.1f} ms, and importing `aws_lambda_powertools.utilities.parameters` "
                      f"{first['import_ms']:.0f} ms, both inside the function's own process and INIT."]
    return [*lines, ""]


def http_latency_section(results: dict[str, Any]) -> list[str]:
    latency = results["latency"]
    lines = [
        "## Cache-hit latency over HTTP",
        "",
        f"{latency['count']} sequential reads of one cached parameter per row (after {latency['warmup']} untimed), "
        f"{latency['direct_count']} for the direct boto3 call; every client with its near cache off "
        "(`near_cache=False`, `{nearCache: false}`, `.nearCache(false)`, and `CACHE_EXTENSION_CLIENT_CACHE=off` for "
        "a client without the option), so that every read is a GET. The floor is a bare socket sending the same GET "
        "to `bench_programs/raw_responder.py`, a minimal raw-socket responder in another process that answers the "
        "very bytes the extension answers (captured in this run): a loopback HTTP round trip and nothing else. "
        "Each row is compared with the floor on the same kind of connection and the same CPU placement.",
        "",
        placement_note(latency["rows"]),
        "",
        "| path | connection | client and server on | p50 | p99 | p50 / floor | times faster than direct boto3 (p50) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in latency["rows"]:
        if row.get("p50_ms") is None:
            lines.append(f"| {row['label']} | {row['connection']} | {row['placement']} | "
                         f"not measured ({row.get('note', '')}) | | | |")
            continue
        lines.append(f"| {row['label']} | {row['connection']} | {row['placement']} | {row['p50_ms']:.3f} ms | "
                     f"{row['p99_ms']:.3f} ms | {row['p50_vs_floor']:.1f}x | {row['speedup_vs_direct']:.1f}x |")
    return [*lines, "",
            "The Python, Node.js and Java clients run from the layer tree (`python/`, `nodejs/node_modules/`, "
            "`java/lib/`). The direct call is boto3's `get_parameter` against the same moto server the extension "
            "prefetched from; moto on loopback answers far faster than SSM does over a network, so the real gap is "
            "wider.", ""]


def throughput_section(results: dict[str, Any]) -> list[str]:
    t, m = results["throughput"], results["machine"]
    lines = [
        "## Throughput and latency under load",
        "",
        f"{t['tool']}, {t['duration_s']:g} s counted per target, each connection sending its next GET as soon as "
        f"the previous answer is complete; {t['connections']} connections, then {t['many']['connections']} (many "
        "function processes against one extension, as on Managed Instances).",
        "",
        "| target | connections | requests/s | requests | non-200 | p50 under load | p99 under load | server CPU "
        "| load generator CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [("raw floor responder", t["floor"]), ("the extension (uvloop)", t["extension"]),
            ("the same extension on asyncio's own loop", t.get("extension_asyncio_loop")),
            ("raw floor responder", t["many"].get("floor")), ("the extension (uvloop)", t["many"].get("extension"))]
    for label, row in rows:
        if row is None:
            continue
        lines.append(f"| {label} | {row['connections']} | {row['requests_per_s']:,.0f} | {row['requests']:,} | "
                     f"{row['errors']} | {fmt(row['p50_ms'], '.3f', ' ms')} | {fmt(row['p99_ms'], '.3f', ' ms')} | "
                     f"{row['server_cpu_percent']:.0f}% | {row['generator_cpu_percent']:.0f}% |")
    return [
        *lines, "",
        f"Over {t['connections']} connections the extension serves {t['extension_vs_floor']:.1%} of the floor's "
        "rate. The CPU columns are each process's CPU time over the run's wall time, in % of one CPU (the "
        f"extension's counts all its threads). On this {m['cpus']}-CPU machine the load generator competes with the "
        "server for the CPUs: it is a process of its own, so it shares no interpreter lock with either, but where it "
        "is near 100% it, not the server, sets the rate. That is the floor's case: the real floor is higher and the "
        "extension's share smaller than shown. A server near 100% of one CPU is the limit itself.",
        "", *loop_comparison(t)]


def startup_section(results: dict[str, Any]) -> list[str]:
    bare, sizes = results.get("bare_start"), results["startup"]["sizes"]
    runs = results["startup"]["runs"]
    lines = ["## Start-up, memory and AWS calls by configured items", ""]
    if bare:
        lines += [f"Bare interpreter start, `{bare['interpreter']} -S -E -c pass` (the python3 the layer's launcher "
                  f"runs, Python {bare['version']}), spawn to exit: **{bare['median_ms']:.1f} ms**, median of "
                  f"{bare['runs']} ({bare['min_ms']:.1f}–{bare['max_ms']:.1f}).", ""]
    lines += [
        f"Median of {runs} {'launch' if runs == 1 else 'launches'} per size (the range of the runs in brackets), each "
        "a fresh process launched from the layer tree by the Extensions API emulator exactly as Lambda launches it. "
        "Start is just before the process is spawned; register and INIT done (its first `event/next`, after the "
        "prefetch) are when the emulator received those calls. RSS is `VmRSS` of the extension's process right after "
        "INIT. AWS calls are every request moto received during the launch, by operation. The items are about 2/3 "
        "SSM parameters, 1/6 Secrets Manager secrets and 1/6 DynamoDB items; moto runs on loopback, so the "
        "prefetch's share of INIT is smaller than against AWS.",
        "",
        "| items (parameters / secrets / DynamoDB) | start → register | start → INIT done | × bare start (register / "
        "INIT done) | RSS after prefetch | AWS calls | by operation |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sizes:
        operations = ", ".join(f"{op.split('.')[-1]} {n}" for op, n in row["aws_calls_by_operation"].items())
        ratio = (f"{row['start_to_register_ms'] / bare['median_ms']:.1f}x / "
                 f"{row['start_to_init_done_ms'] / bare['median_ms']:.1f}x" if bare else "—")
        lines.append(f"| {row['items']} ({row['parameters']} / {row['secrets']} / {row['dynamodb']}) | "
                     f"{row['start_to_register_ms']:.1f} ms {spread(row['runs_start_to_register_ms'])} | "
                     f"{row['start_to_init_done_ms']:.1f} ms {spread(row['runs_start_to_init_done_ms'])} | {ratio} | "
                     f"{row['rss_after_prefetch_mib']:.1f} MiB | {row['aws_calls']} | {operations} |")
    lines += [
        "", "### Per phase: wall and CPU time of the extension's process", "",
        "CPU time is the process's (all its threads) when the emulator received register and the first `event/next`, "
        "while the extension waited for the answer: from `/proc/<pid>/stat` (utime + stime, in clock ticks of "
        "10 ms) and from `/proc/<pid>/task/*/schedstat` (time on a CPU in ns, live threads only). It includes the "
        "`/bin/sh` launcher, which execs python3 in the same process. Medians of the launches above.", "",
        "| items | start → register: wall | CPU (stat) | CPU (schedstat) | register → INIT done: wall | CPU (stat) "
        "| CPU (schedstat) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sizes:
        lines.append(f"| {row['items']} | {row['start_to_register_ms']:.1f} ms | "
                     f"{fmt(row.get('cpu_stat_to_register_ms'), '.0f', ' ms')} | "
                     f"{fmt(row.get('cpu_schedstat_to_register_ms'), '.1f', ' ms')} | "
                     f"{row['register_to_init_done_ms']:.1f} ms | "
                     f"{fmt(row.get('cpu_stat_register_to_init_ms'), '.0f', ' ms')} | "
                     f"{fmt(row.get('cpu_schedstat_register_to_init_ms'), '.1f', ' ms')} |")
    return [*lines, ""]


def imports_section(results: dict[str, Any]) -> list[str]:
    imports = results.get("imports")
    if not imports:
        return ["## Import time", "", "Not measured: the layer's launcher runs no python3 (a standalone layer).", ""]
    lines = [
        "## Import time, by package",
        "",
        f"One more launch with {imports['items']} items, the layer's launcher command with `-X importtime` added "
        "(its `-E` makes Python ignore `PYTHONPROFILEIMPORTTIME`); that launch took "
        f"{imports['start_to_register_ms']:.1f} ms to register and {imports['start_to_init_done_ms']:.1f} ms to "
        f"INIT done, importtime's own cost included. {imports['modules']} modules, "
        f"{imports['total_us'] / 1000:.1f} ms of imports in all. *Self* is the time of the package's own modules "
        "(the rows add up to the total); *cumulative* runs from entering the package until it returned, with what it "
        "imported of other packages on the way, counted at each outermost entry. Imports made on other threads (the "
        "prefetch's, while the main thread imports the HTTP stack) overlap in time and may nest under the wrong "
        "parent in importtime's output.",
        "",
        "| package | modules | self | cumulative |",
        "|---|---|---|---|",
    ]
    rest = {"modules": 0, "self_us": 0, "cumulative_us": 0, "packages": 0}
    for name, row in imports["groups"].items():
        if name not in NAMED_PACKAGES and name != "stdlib" and row["self_us"] < 1000:
            rest = {key: rest[key] + row.get(key, 1) for key in rest}  # a package under 1 ms: folded below
            continue
        label = "standard library" if name == "stdlib" else f"`{name}`"
        lines.append(f"| {label} | {row['modules']} | {row['self_us'] / 1000:.1f} ms | "
                     f"{row['cumulative_us'] / 1000:.1f} ms |")
    if rest["packages"]:
        lines.append(f"| {rest['packages']} other packages, each under 1 ms | {rest['modules']} | "
                     f"{rest['self_us'] / 1000:.1f} ms | {rest['cumulative_us'] / 1000:.1f} ms |")
    return [*lines, ""]


def memory_section(results: dict[str, Any]) -> list[str]:
    memory = results.get("memory")
    if not memory:
        return []
    sizes = {row["items"]: row for row in results["startup"]["sizes"]}
    lines = [
        "## Memory: where RSS goes",
        "",
        "`bench_programs/memory_steps.py` in a fresh interpreter started as the layer's launcher starts the extension "
        f"(`{memory['interpreter']} -E -S`, the layer's `cache-extension` directory first on `sys.path`) loads what "
        "the extension loads, in its order, and reads after each step its RSS (`VmRSS`) and, in a second run under "
        "tracemalloc, the bytes of Python allocations it traces (tracemalloc's own bookkeeping would inflate the "
        "RSS of that run). The values are fetched with the botocore clients of the step before, batched as the "
        "prefetch batches them, and kept.",
        "",
        "| step | RSS after | RSS delta | traced after | traced delta |",
        "|---|---|---|---|---|",
    ]
    for row in memory["steps"]:
        lines.append(f"| {row['step']} | {row['rss_mib']:.1f} MiB | {row['rss_delta_mib']:+.1f} MiB | "
                     f"{row['traced_mib']:.1f} MiB | {row['traced_delta_mib']:+.1f} MiB |")
    extension = ", ".join(f"{sizes[n]['rss_after_prefetch_mib']:.1f} MiB with {n} items" for n in sorted(sizes))
    lines += ["", f"The extension itself, after its prefetch (from the launches above): {extension}; the difference "
                  "to the steps is its threads, sockets, event loop and server state. "
                  f"{memory['modules']} modules loaded at the end"
              + (f"; modules that did not import alone: {', '.join(memory['failed_imports'])}"
                 if memory["failed_imports"] else "") + ".", ""]
    return lines


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"`{results['command']}`, {m['date']}, {m['cpus']} CPUs, Python {m['python']} (machine and command at the "
        "end; the same numbers, machine-readable: [benchmarks.json](benchmarks.json)). Generated: run the command "
        "again rather than editing this page.",
        "",
        *targets_section(results),
        "",
        "Everything here ran on one machine in one run, so compare the ratios (to the bare interpreter, to the floor, "
        "to the direct call) rather than the absolute times, which move with the machine and its load. The targets "
        "are issue 13's; they are reported here, never asserted by a test.",
        "",
        "![latency, throughput, start-up, memory and layer size](benchmarks.png)",
        "",
        *near_cache_section(results),
        *http_latency_section(results),
        *throughput_section(results),
        *startup_section(results),
        *imports_section(results),
        *memory_section(results),
        "## Layer size",
        "",
        "| architecture | Python | zipped | unzipped | measured from |",
        "|---|---|---|---|---|",
    ]
    for row in results["layer"]["zips"]:
        lines.append(f"| {row['arch']} | {row['python']} | {fmt(row['zip_mib'], '.2f', ' MiB')} | "
                     f"{fmt(row['unzipped_mib'], '.2f', ' MiB')} | {row['source']} |")
    lines += [
        "",
        "## Machine",
        "",
        f"- CPUs: {m['cpus']} ({m['cpu_model']}), {m['machine']}; load average at start {m['load_average_at_start']}",
        f"- OS: {m['platform']}",
        f"- Python {m['python']}, Node.js {m['node'] or 'not installed'}, Java {m['java'] or 'not installed'}",
        f"- date: {m['date']}; whole run: {results['run_seconds']:.0f} s",
        "",
        "## Command",
        "",
        "```sh",
        results["command"],
        "```",
        "",
        "`scripts/bench --help` lists the options (`--quick` for a short run, `--count`, `--near-count`, `--runs`, "
        "`--bare-runs`, `--duration`, `--no-build`, `--layer`, `--out`). Without `--no-build` it first rebuilds "
        "`dist/layer` from the sources.",
        "",
    ]
    return "\n".join(lines)
