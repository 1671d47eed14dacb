"""Read latency, one read at a time: the HTTP rows (a bare socket, each client with its near cache off, a direct
boto3 call, next to the raw floor responder) and the near-cache rows (each client's repeated read of one name
answered from process memory, next to Powertools Parameters' cached get_parameter)."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from . import layer
from .aws import MotoServer
from .bench_common import (NAME, NEAR_CACHE_VARIABLE, PROGRAMS, REGION, TOKEN, Responder, connect, cpus, log, pin,
                           read_response, request_bytes, summary_ms)

# -- the HTTP rows --------------------------------------------------------------------------------------------


def raw_keepalive(port: int, count: int, warmup: int) -> list[float]:
    """A bare socket sending the GET and reading the answer, on one keep-alive connection."""
    request = request_bytes(port)
    samples = []
    with connect(port) as sock:
        for i in range(warmup + count):
            started = time.perf_counter()
            sock.sendall(request)
            read_response(sock)
            if i >= warmup:
                samples.append(time.perf_counter() - started)
    return samples


def raw_new_connection(port: int, count: int, warmup: int) -> list[float]:
    """A bare socket per request: connect, send, read the answer, close (what curl does)."""
    request = request_bytes(port)
    samples = []
    for i in range(warmup + count):
        started = time.perf_counter()
        with connect(port) as sock:
            sock.sendall(request)
            read_response(sock)
        if i >= warmup:
            samples.append(time.perf_counter() - started)
    return samples


def python_client_class(tree: Path) -> Any:
    import sys

    sys.path.insert(0, str(tree / "python"))
    from cache_extension_client import CacheClient

    return CacheClient


def make_client(client_class: Any, port: int, *, near_cache: bool) -> Any:
    """A CacheClient with its near cache on (the default) or off: the constructor option where the client has it,
    else CACHE_EXTENSION_CLIENT_CACHE=off while it is built."""
    if not near_cache and "near_cache" in inspect.signature(client_class).parameters:
        return client_class(port=port, token=TOKEN, near_cache=False)
    saved = os.environ.pop(NEAR_CACHE_VARIABLE, None)
    if not near_cache:
        os.environ[NEAR_CACHE_VARIABLE] = "off"
    try:
        return client_class(port=port, token=TOKEN)
    finally:
        os.environ.pop(NEAR_CACHE_VARIABLE, None)
        if saved is not None:
            os.environ[NEAR_CACHE_VARIABLE] = saved


def timed_reads(read: Callable[[], Any], count: int, warmup: int) -> list[float]:
    clock = time.perf_counter
    samples = []
    for i in range(warmup + count):
        started = clock()
        read()
        if i >= warmup:
            samples.append(clock() - started)
    return samples


def python_keepalive(client_class: Any, port: int, count: int, warmup: int, *, near_cache: bool = False) -> list[float]:
    """The layer's Python client, one CacheClient (one keep-alive connection) for every read."""
    client = make_client(client_class, port, near_cache=near_cache)
    try:
        return timed_reads(lambda: client.get_parameter(NAME), count, warmup)
    finally:
        client.close()


def python_new_client(client_class: Any, port: int, count: int, warmup: int) -> list[float]:
    """A fresh CacheClient per read (a new connection each time, near cache off), closed after it."""
    samples = []
    for i in range(warmup + count):
        started = time.perf_counter()
        client = make_client(client_class, port, near_cache=False)
        client.get_parameter(NAME)
        client.close()
        if i >= warmup:
            samples.append(time.perf_counter() - started)
    return samples


def client_env(port: int, near_cache: bool, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **(extra or {}), "CACHE_EXTENSION_PORT": str(port), "AWS_SESSION_TOKEN": TOKEN}
    env.pop(NEAR_CACHE_VARIABLE, None)
    if not near_cache:  # besides the constructor option, for a client that does not have it yet
        env[NEAR_CACHE_VARIABLE] = "off"
    return env


def node_client(tree: Path, port: int, count: int, *, near_cache: bool = False) -> list[float] | None:
    if not shutil.which("node"):
        return None
    env = client_env(port, near_cache, {"NODE_PATH": str(tree / "nodejs" / "node_modules")})
    out = subprocess.run(["node", str(PROGRAMS / "client_bench.mjs"), NAME, str(count), "near" if near_cache else "http"],
                         env=env, capture_output=True, text=True, check=True, timeout=300)
    return [ms / 1000 for ms in json.loads(out.stdout)]


def java_client(tree: Path, port: int, count: int, *, near_cache: bool = False,
                classes: list[str] | None = None) -> list[float] | None:
    jar = tree / "java" / "lib" / layer.JAVA_CLIENT_JAR
    if not (shutil.which("javac") and shutil.which("java") and jar.exists()):
        return None
    with tempfile.TemporaryDirectory() as compiled:
        subprocess.run(["javac", "--release", "11", "-cp", str(jar), "-d", compiled, str(PROGRAMS / "ClientBench.java")],
                       check=True, timeout=300)
        out = subprocess.run(["java", "-cp", f"{jar}{os.pathsep}{compiled}", "ClientBench", NAME, str(count),
                              "near" if near_cache else "http"],
                             env=client_env(port, near_cache), capture_output=True, text=True, check=True, timeout=300)
    return [ms / 1000 for ms in json.loads(out.stdout)]


def direct_boto3(moto: MotoServer, count: int, warmup: int) -> list[float]:
    """GetParameter with boto3 against the same moto server (boto3 keeps its connection alive too)."""
    ssm = moto.client("ssm", REGION)
    return timed_reads(lambda: ssm.get_parameter(Name=NAME), count, warmup)


def measure_latency(tree: Path, moto: MotoServer, port: int, extension_pid: int, responder: Responder, count: int,
                    warmup: int, direct_count: int) -> list[dict[str, Any]]:
    """Every HTTP row with client and server pinned to one CPU; then the floor and the Python client again
    with the server on the other CPU. On a VM, waking a process on another CPU costs about 0.1 ms, and without
    pinning the scheduler decides row by row whether a row pays it: the ratios would measure the scheduler."""
    client_class = python_client_class(tree)
    floor_port = responder.port
    available = cpus()
    same = "same CPU" if len(available) > 1 else "one CPU"
    # (id, label, connection, kind, measure)
    plan: list[tuple[str, str, str, str, Callable[[], list[float] | None]]] = [
        ("floor_keepalive", "raw floor: bare socket → raw responder", "keep-alive", "floor",
         lambda: raw_keepalive(floor_port, count, warmup)),
        ("raw_keepalive", "bare socket → extension", "keep-alive", "extension",
         lambda: raw_keepalive(port, count, warmup)),
        ("python_keepalive", "Python client, near cache off → extension", "keep-alive", "extension",
         lambda: python_keepalive(client_class, port, count, warmup)),
        ("python_keepalive_floor", "Python client, near cache off → raw responder", "keep-alive", "floor",
         lambda: python_keepalive(client_class, floor_port, count, warmup)),
        ("node_keepalive", "Node.js client, near cache off → extension", "keep-alive", "extension",
         lambda: node_client(tree, port, count)),
        ("java_keepalive", "Java client, near cache off → extension", "keep-alive", "extension",
         lambda: java_client(tree, port, count)),
        ("floor_new", "raw floor: bare socket → raw responder", "new connection", "floor",
         lambda: raw_new_connection(floor_port, count, warmup)),
        ("raw_new", "bare socket → extension", "new connection", "extension",
         lambda: raw_new_connection(port, count, warmup)),
        ("python_new", "Python client, a fresh CacheClient per call → extension", "new connection", "extension",
         lambda: python_new_client(client_class, port, count, warmup)),
        ("python_new_floor", "Python client, a fresh CacheClient per call → raw responder", "new connection", "floor",
         lambda: python_new_client(client_class, floor_port, count, warmup)),
        ("direct_boto3", "direct boto3 GetParameter → moto", "keep-alive", "direct",
         lambda: direct_boto3(moto, direct_count, min(warmup, 20))),
    ]
    cross_plan = [
        ("floor_keepalive_cross", "raw floor: bare socket → raw responder", "keep-alive", "floor",
         lambda: raw_keepalive(floor_port, count, warmup)),
        ("python_keepalive_cross", "Python client, near cache off → extension", "keep-alive", "extension",
         lambda: python_keepalive(client_class, port, count, warmup)),
    ]
    rows = []

    def run(steps: list, placement: str) -> None:
        for row_id, label, connection, kind, measure in steps:
            samples = measure()
            row: dict[str, Any] = {"id": row_id, "label": label, "connection": connection, "placement": placement,
                                   "kind": kind}
            if samples:
                row.update(summary_ms(samples))
                log(f"  {label} ({connection}, {placement}): p50 {row['p50_ms']:.3f} ms, p99 {row['p99_ms']:.3f} ms")
            else:
                row.update({"samples": 0, "p50_ms": None, "p99_ms": None, "mean_ms": None,
                            "note": "runtime not installed"})
                log(f"  {label}: not measured (runtime not installed)")
            rows.append(row)

    processes = (os.getpid(), extension_pid, responder.process.pid)
    try:
        for pid in processes:
            pin(pid, set(available[:1]))
        run(plan, same)
        if len(available) > 1:
            for pid in processes[1:]:
                pin(pid, {available[1]})
            run(cross_plan, "different CPUs")
    finally:
        for pid in processes:
            pin(pid, set(available))
    floor_ids = ("floor_keepalive", "floor_new", "floor_keepalive_cross")
    floors = {(r["connection"], r["placement"]): r["p50_ms"] for r in rows if r["id"] in floor_ids}
    direct = next(r for r in rows if r["id"] == "direct_boto3")["p50_ms"]
    for row in rows:
        measured = row["p50_ms"] is not None
        floor = floors[row["connection"], row["placement"]]
        row["p50_vs_floor"] = round(row["p50_ms"] / floor, 3) if measured else None
        row["speedup_vs_direct"] = round(direct / row["p50_ms"], 3) if measured else None
    return rows


# -- the near-cache rows --------------------------------------------------------------------------------------


def powertools_reads(moto: MotoServer, count: int, warmup: int) -> dict[str, Any] | None:
    """Powertools Parameters' get_parameter, in this process, pointed at moto through AWS_ENDPOINT_URL: its import,
    its first call (an uncached GetParameter, the boto3 client created with it) and then its cached reads
    (max_age=600, so that no read of the run finds its copy expired; the default is 5 s)."""
    variables = {"AWS_ENDPOINT_URL": moto.endpoint, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
                 "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        started = time.perf_counter()
        try:
            from aws_lambda_powertools.utilities import parameters
        except ImportError:
            return None
        imported = time.perf_counter()
        first = parameters.get_parameter(NAME, max_age=600)
        first_done = time.perf_counter()
        samples = timed_reads(lambda: parameters.get_parameter(NAME, max_age=600), count, warmup)
        import aws_lambda_powertools

        return {"version": getattr(aws_lambda_powertools, "__version__", None) or _version("aws-lambda-powertools"),
                "import_ms": round((imported - started) * 1000, 2),
                "first_call_ms": round((first_done - imported) * 1000, 3), "value_length": len(first),
                "samples": samples}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def measure_near_cache(tree: Path, moto: MotoServer, port: int, count: int, warmup: int,
                       http_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A repeated read of one name, answered from process memory: each client with its near cache on (after one
    warm read, `warmup` untimed), and Powertools' cached get_parameter. Times in µs."""
    client_class = python_client_class(tree)
    http_p50 = {row["id"]: row["p50_ms"] for row in http_rows}
    rows: list[dict[str, Any]] = []
    plan: list[tuple[str, str, str | None, Callable[[], list[float] | None]]] = [
        ("python_near", "Python client, CacheClient() default (near cache on)", "python_keepalive",
         lambda: python_keepalive(client_class, port, count, warmup, near_cache=True)),
        ("node_near", "Node.js client, near cache on", "node_keepalive",
         lambda: node_client(tree, port, count, near_cache=True)),
        ("java_near", "Java client, near cache on", "java_keepalive",
         lambda: java_client(tree, port, count, near_cache=True)),
    ]
    for row_id, label, http_id, measure in plan:
        samples = measure()
        row: dict[str, Any] = {"id": row_id, "label": label}
        if samples:
            row.update(summary_ms(samples))
            http = http_p50.get(http_id)
            row["http_p50_us"] = round(http * 1000, 3) if http else None
            # A client that does not keep values yet answers no faster than over HTTP: say so.
            row["near_cache_seen"] = bool(http and row["p50_ms"] < http / 2)
            log(f"  {label}: p50 {row['p50_us']:.2f} µs, p99 {row['p99_us']:.2f} µs"
                + ("" if row["near_cache_seen"] else " (no faster than its HTTP row: no near cache?)"))
        else:
            row.update({"samples": 0, "p50_us": None, "p99_us": None, "note": "runtime not installed"})
            log(f"  {label}: not measured (runtime not installed)")
        rows.append(row)
    powertools = powertools_reads(moto, count, warmup)
    row = {"id": "powertools_cached", "label": "Powertools Parameters get_parameter, cached (in process)"}
    if powertools is None:
        row.update({"samples": 0, "p50_us": None, "p99_us": None, "note": "aws-lambda-powertools not installed"})
        first = None
        log("  Powertools: not installed (pip install -e '.[bench]')")
    else:
        row.update(summary_ms(powertools.pop("samples")))
        row["version"] = powertools["version"]
        first = {key: powertools[key] for key in ("import_ms", "first_call_ms", "version")}
        log(f"  Powertools {powertools['version']}: cached p50 {row['p50_us']:.2f} µs, p99 {row['p99_us']:.2f} µs; "
            f"first call {powertools['first_call_ms']:.1f} ms, import {powertools['import_ms']:.0f} ms")
    rows.append(row)
    return {"count": count, "warmup": warmup, "rows": rows, "powertools_first_call": first}
