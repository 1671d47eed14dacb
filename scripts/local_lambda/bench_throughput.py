"""Throughput and latency under load: N concurrent keep-alive connections (10, and 64 as on Managed Instances,
where many function processes share one extension), each sending its next GET as soon as the previous answer is
complete; wrk where installed, else bench_programs/load.py in a process of its own. Also the one-line variant of
the layer that runs the extension on asyncio's own loop instead of uvloop."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .bench_common import (PATH, PROGRAMS, TOKEN, TOKEN_HEADER, children_cpu_seconds, cpu_seconds)


def throughput(port: int, duration: float, server_pid: int, connections: int) -> dict[str, Any]:
    """Requests per second over `connections` keep-alive connections. Also the CPU the server and the load
    generator each used meanwhile, in % of one CPU, to show which of them was the limit."""
    server_before, children_before, started = cpu_seconds(server_pid), children_cpu_seconds(), time.monotonic()
    if shutil.which("wrk"):
        result = run_wrk(port, duration, connections)
    else:
        command = [sys.executable, str(PROGRAMS / "load.py"), str(port), PATH, "--header", f"{TOKEN_HEADER}: {TOKEN}",
                   "--connections", str(connections), "--duration", str(duration)]
        out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=duration + 60)
        result = json.loads(out.stdout)
    wall = time.monotonic() - started
    result["server_cpu_percent"] = round((cpu_seconds(server_pid) - server_before) / wall * 100, 1)
    result["generator_cpu_percent"] = round((children_cpu_seconds() - children_before) / wall * 100, 1)
    return result


def run_wrk(port: int, duration: float, connections: int) -> dict[str, Any]:
    seconds = max(1, round(duration))
    command = ["wrk", "-t", str(min(2, os.cpu_count() or 1)), "-c", str(connections), "-d", f"{seconds}s", "--latency",
               "-H", f"{TOKEN_HEADER}: {TOKEN}", f"http://127.0.0.1:{port}{PATH}"]
    text = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    errors = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)

    def latency(label: str) -> float | None:
        found = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not found:
            return None
        return round(float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)], 4)

    return {"tool": "wrk", "connections": connections, "duration_s": seconds, "requests": requests,
            "requests_per_s": float(re.search(r"Requests/sec:\s*([\d.]+)", text).group(1)),
            "errors": int(errors.group(1)) if errors else 0, "connections_closed": 0,
            "p50_ms": latency("50"), "p99_ms": latency("99")}


UVLOOP_LINE = re.compile(r"uvloop\.new_event_loop\(\)")


def asyncio_loop_variant(tree: Path, workdir: Path) -> Path | None:
    """A copy of the layer tree whose extension runs on asyncio's own event loop instead of uvloop (the line of
    the extension's package that makes the loop switched), to measure what uvloop changes. None where no such
    line is found (a standalone tree, whose modules are compiled into the executable)."""
    variant = workdir / "asyncio-loop-layer"
    shutil.copytree(tree, variant, symlinks=True)
    package = variant / "cache-extension" / "cache_extension"
    for module in sorted(package.rglob("*.py")) if package.is_dir() else []:
        text = module.read_text()
        if UVLOOP_LINE.search(text):
            module.write_text(UVLOOP_LINE.sub('__import__("asyncio").new_event_loop()', text))
            for cached in module.parent.glob(f"__pycache__/{module.stem}.*.pyc"):
                cached.unlink()
            return variant
    return None
