"""Measures the extension from the built layer, side by side in one run, and writes docs/benchmarks.md (with the
chart docs/benchmarks.png) and docs/benchmarks.json.

What it measures, on this machine, in this run (so ratios matter more than absolute times):
- cache-hit latency p50/p99 through each client (Python, Node.js, Java) on a keep-alive connection, and with a
  new connection per call (a bare socket, and a fresh Python CacheClient per call); next to the floor, a
  minimal raw-socket responder (bench_programs/raw_responder.py, another process) answering the very bytes the
  extension answers, and next to a direct boto3 GetParameter against the same moto server;
- throughput over 10 concurrent keep-alive connections, against the extension and against the same floor
  responder: wrk where installed, else bench_programs/load.py in a process of its own;
- process start -> register and start -> INIT done (event/next), RSS after prefetch (VmRSS of the extension's
  process) and the AWS API calls a prefetch makes (counted at moto), for 3, 50 and 500 configured items;
- the layer's zip size per architecture, zipped and unzipped;
and judges each against the issue's targets (reported, never asserted). Latency rows run with client and
server pinned to one CPU, so that no row pays a cross-CPU wake-up the others do not (two rows show that cost).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

from . import layer
from .aws import SAMPLE_PARAMETER, MotoServer, create_sample_resources, free_port, lambda_environment
from .extensions_api import ExtensionsApiEmulator

REGION = "us-west-2"
TOKEN = "bench-session-token"
TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"
PROGRAMS = Path(__file__).resolve().parent / "bench_programs"
NAME = SAMPLE_PARAMETER[0]
PATH = f"/parameters?name={NAME}"
SIZES = (3, 50, 500)
CONNECTIONS = 10
BULK_TABLE = "BenchTable"
MIB = 1024 * 1024

# Latency rows as the chart names them.
SHORT_LABELS = {
    "floor_keepalive": "floor: socket → responder", "raw_keepalive": "socket → extension",
    "python_keepalive": "Python client → extension", "python_keepalive_floor": "Python client → responder",
    "node_keepalive": "Node.js client → extension", "java_keepalive": "Java client → extension",
    "floor_new": "floor: socket → responder", "raw_new": "socket → extension",
    "python_new": "new CacheClient → extension", "python_new_floor": "new CacheClient → responder",
    "direct_boto3": "direct boto3 → moto", "floor_keepalive_cross": "floor, server on other CPU",
    "python_keepalive_cross": "Python client → ext., other CPU",
}

# The targets: (id, what, comparison, bound, unit). Reported as measured vs target, never asserted.
TARGETS = (
    ("python_p50_vs_floor", "cache-hit p50 through the Python client, as a multiple of the raw floor's p50",
     "<=", 1.3, "x"),
    ("python_speedup_vs_direct", "cache-hit p50 through the Python client, times faster than a direct boto3 call",
     ">=", 20.0, "x"),
    ("throughput_vs_floor", f"throughput over {CONNECTIONS} connections, share of the raw floor's", ">=", 0.5, "share"),
    ("start_to_register", "process start -> register (every size)", "<=", 60.0, "ms"),
    ("start_to_init_done_3", "process start -> INIT done, 3 items", "<=", 600.0, "ms"),
    ("rss_after_prefetch", "RSS after prefetch (every size)", "<=", 40.0, "MiB"),
    ("layer_zip", "layer zip, per architecture", "<=", 10.0, "MiB"),
)


def shown(path: Path) -> str:
    """A path as the report shows it: relative to the repository when inside it."""
    try:
        return str(path.relative_to(layer.ROOT))
    except ValueError:
        return str(path)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- statistics -----------------------------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of unsorted samples."""
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def summary_ms(samples: list[float]) -> dict[str, float]:
    return {"samples": len(samples), "p50_ms": round(percentile(samples, 0.5) * 1000, 4),
            "p99_ms": round(percentile(samples, 0.99) * 1000, 4), "mean_ms": round(statistics.fmean(samples) * 1000, 4)}


# -- latency: one GET at a time -------------------------------------------------------------------------------


def request_bytes(port: int) -> bytes:
    return f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{TOKEN_HEADER}: {TOKEN}\r\n\r\n".encode()


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} bytes")
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            if len(body) >= length:
                return data


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def capture_response(port: int) -> bytes:
    """The bytes the extension answers for a cache hit, exactly: what the floor responder will send."""
    with connect(port) as sock:
        sock.sendall(request_bytes(port))
        response = read_response(sock)
    if not response.startswith(b"HTTP/1.1 200"):
        status_line = response.split(b"\r\n", 1)[0]
        raise RuntimeError(f"the extension did not answer 200: {status_line!r}")
    return response


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
    sys.path.insert(0, str(tree / "python"))
    from cache_extension_client import CacheClient

    return CacheClient


def python_keepalive(client_class: Any, port: int, count: int, warmup: int) -> list[float]:
    """The layer's Python client, one CacheClient (one keep-alive connection) for every read."""
    client = client_class(port=port, token=TOKEN)
    samples = []
    for i in range(warmup + count):
        started = time.perf_counter()
        client.get_parameter(NAME)
        if i >= warmup:
            samples.append(time.perf_counter() - started)
    client.close()
    return samples


def python_new_client(client_class: Any, port: int, count: int, warmup: int) -> list[float]:
    """A fresh CacheClient per read (a new connection each time), closed after it."""
    samples = []
    for i in range(warmup + count):
        started = time.perf_counter()
        client = client_class(port=port, token=TOKEN)
        client.get_parameter(NAME)
        client.close()
        if i >= warmup:
            samples.append(time.perf_counter() - started)
    return samples


def node_client(tree: Path, port: int, count: int) -> list[float] | None:
    if not shutil.which("node"):
        return None
    env = {**os.environ, "NODE_PATH": str(tree / "nodejs" / "node_modules"), "CACHE_EXTENSION_PORT": str(port),
           "AWS_SESSION_TOKEN": TOKEN}
    out = subprocess.run(["node", str(PROGRAMS / "client_bench.mjs"), NAME, str(count)], env=env,
                         capture_output=True, text=True, check=True)
    return [ms / 1000 for ms in json.loads(out.stdout)]


def java_client(tree: Path, port: int, count: int) -> list[float] | None:
    jar = tree / "java" / "lib" / layer.JAVA_CLIENT_JAR
    if not (shutil.which("javac") and shutil.which("java") and jar.exists()):
        return None
    with tempfile.TemporaryDirectory() as classes:
        subprocess.run(["javac", "--release", "11", "-cp", str(jar), "-d", classes, str(PROGRAMS / "ClientBench.java")],
                       check=True)
        env = {**os.environ, "CACHE_EXTENSION_PORT": str(port), "AWS_SESSION_TOKEN": TOKEN}
        out = subprocess.run(["java", "-cp", f"{jar}{os.pathsep}{classes}", "ClientBench", NAME, str(count)],
                             env=env, capture_output=True, text=True, check=True)
    return [ms / 1000 for ms in json.loads(out.stdout)]


def direct_boto3(moto: MotoServer, count: int, warmup: int) -> list[float]:
    """GetParameter with boto3 against the same moto server (boto3 keeps its connection alive too)."""
    ssm = moto.client("ssm", REGION)
    samples = []
    for i in range(warmup + count):
        started = time.perf_counter()
        ssm.get_parameter(Name=NAME)
        if i >= warmup:
            samples.append(time.perf_counter() - started)
    return samples


# -- throughput -----------------------------------------------------------------------------------------------


def throughput(port: int, duration: float, server_pid: int) -> dict[str, Any]:
    """Requests per second over CONNECTIONS keep-alive connections: wrk if installed, else load.py. Also the CPU
    the server and the load generator each used meanwhile, in % of one CPU, to show which of them was the limit."""
    server_before, children_before, started = cpu_seconds(server_pid), children_cpu_seconds(), time.monotonic()
    if shutil.which("wrk"):
        result = run_wrk(port, duration)
    else:
        command = [sys.executable, str(PROGRAMS / "load.py"), str(port), PATH, "--header", f"{TOKEN_HEADER}: {TOKEN}",
                   "--connections", str(CONNECTIONS), "--duration", str(duration)]
        out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=duration + 60)
        result = json.loads(out.stdout)
    wall = time.monotonic() - started
    result["server_cpu_percent"] = round((cpu_seconds(server_pid) - server_before) / wall * 100, 1)
    result["generator_cpu_percent"] = round((children_cpu_seconds() - children_before) / wall * 100, 1)
    return result


UVLOOP_LINE = "loop = uvloop.new_event_loop()"


def asyncio_loop_variant(tree: Path, workdir: Path) -> Path | None:
    """A copy of the layer tree whose extension runs on asyncio's own event loop instead of uvloop (the one line
    of runner.py that makes the loop switched), to measure what uvloop changes. None where that line is not
    found (a standalone tree, whose runner.py is compiled into the executable)."""
    variant = workdir / "asyncio-loop-layer"
    shutil.copytree(tree, variant, symlinks=True)
    for runner in variant.rglob("cache_extension/runner.py"):
        text = runner.read_text()
        if UVLOOP_LINE in text:
            runner.write_text(text.replace(UVLOOP_LINE, "loop = asyncio.new_event_loop()"))
            for cached in runner.parent.glob("__pycache__/runner.*.pyc"):
                cached.unlink()
            return variant
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def children_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(port: int, duration: float) -> dict[str, Any]:
    seconds = max(1, round(duration))
    command = ["wrk", "-t", str(min(2, os.cpu_count() or 1)), "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--latency",
               "-H", f"{TOKEN_HEADER}: {TOKEN}", f"http://127.0.0.1:{port}{PATH}"]
    text = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    errors = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)

    def latency(label: str) -> float | None:
        found = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not found:
            return None
        return round(float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)], 4)

    return {"tool": "wrk", "connections": CONNECTIONS, "duration_s": seconds, "requests": requests,
            "requests_per_s": float(re.search(r"Requests/sec:\s*([\d.]+)", text).group(1)),
            "errors": int(errors.group(1)) if errors else 0, "connections_closed": 0,
            "p50_ms": latency("50"), "p99_ms": latency("99")}


# -- the floor responder --------------------------------------------------------------------------------------


class Responder:
    """bench_programs/raw_responder.py in its own process, answering `response` to every request."""

    def __init__(self, response: bytes, workdir: Path) -> None:
        self.port = free_port()
        response_file = workdir / "floor-response.bin"
        response_file.write_bytes(response)
        self.process = subprocess.Popen([sys.executable, str(PROGRAMS / "raw_responder.py"), str(self.port),
                                         str(response_file)])
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("the floor responder did not start") from None
                time.sleep(0.02)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5)


# -- the extension under the emulator -------------------------------------------------------------------------


def extension_path() -> str:
    """The extension's PATH: the bare interpreter (no virtualenv), as the tests give it; a standalone layer
    needs none."""
    return f"{Path(sys.base_prefix) / 'bin'}:/usr/bin:/bin"


def start_extension(tree: Path, moto: MotoServer, task_root: Path,
                    config_text: str) -> tuple[ExtensionsApiEmulator, Any, int]:
    """The extension launched from the layer tree as Lambda would, with config_text as its config.yaml; returns
    once its INIT is done (it called event/next)."""
    task_root.mkdir(parents=True, exist_ok=True)
    (task_root / "config.yaml").write_text(config_text)
    port = free_port()
    env = lambda_environment(endpoint=moto.endpoint, region=REGION, token=TOKEN, config=str(task_root / "config.yaml"),
                             extra={"PATH": extension_path(), "CACHE_EXTENSION_PORT": str(port)})
    emulator = ExtensionsApiEmulator(region=REGION).start()
    try:
        extension = emulator.launch(str(tree / "extensions" / "cache-extension"), env)
        emulator.wait_init(timeout=60)
    except BaseException:
        emulator.close()
        raise
    return emulator, extension, port


def rss_mib(pid: int) -> float:
    """VmRSS of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no VmRSS for pid {pid}")


def get(port: int, path: str) -> tuple[int, dict[str, str]]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={TOKEN_HEADER: TOKEN})
        response = connection.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


# -- start-up, memory and AWS calls by configured items -------------------------------------------------------


def split(items: int) -> tuple[int, int, int]:
    """(parameters, secrets, dynamodb items) for a config of `items`: about 2/3, 1/6, 1/6, at least one of each."""
    secrets = dynamodb = max(1, round(items / 6))
    return items - secrets - dynamodb, secrets, dynamodb


def parameter_name(i: int) -> str:
    return f"/bench/app/parameter-{i:04d}"


def secret_name(i: int) -> str:
    return f"bench/secret-{i:04d}"


def create_bulk_resources(moto: MotoServer, items: int) -> None:
    """Parameters, secrets and DynamoDB items for the largest config; smaller configs list the first of each."""
    parameters, secrets, dynamodb_items = split(items)
    ssm = moto.client("ssm", REGION)
    for i in range(parameters):
        ssm.put_parameter(Name=parameter_name(i), Value=f"value-{i:04d}-" + "x" * 48, Type="String", Overwrite=True)
    secretsmanager = moto.client("secretsmanager", REGION)
    for i in range(secrets):
        value = json.dumps({"username": f"user{i}", "password": f"bench-password-{i:04d}"})
        try:
            secretsmanager.create_secret(Name=secret_name(i), SecretString=value)
        except secretsmanager.exceptions.ResourceExistsException:
            secretsmanager.put_secret_value(SecretId=secret_name(i), SecretString=value)
    dynamodb = moto.client("dynamodb", REGION)
    try:
        dynamodb.create_table(TableName=BULK_TABLE, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                              BillingMode="PAY_PER_REQUEST")
    except dynamodb.exceptions.ResourceInUseException:
        pass
    rows = [{"PutRequest": {"Item": {"pk": {"S": f"item-{i:04d}"}, "Data": {"S": f"data {i}"}, "Count": {"N": str(i)},
                                     "Enabled": {"BOOL": i % 2 == 0}}}} for i in range(dynamodb_items)]
    for start in range(0, len(rows), 25):
        dynamodb.batch_write_item(RequestItems={BULK_TABLE: rows[start:start + 25]})


def bulk_config(items: int) -> str:
    parameters, secrets, dynamodb_items = split(items)
    lines = ["parameters:", "  - names:"]
    lines += [f"      - {parameter_name(i)}" for i in range(parameters)]
    lines += ["secrets:", "  - names:"]
    lines += [f"      - {secret_name(i)}" for i in range(secrets)]
    lines += ["dynamodb:"]
    for i in range(dynamodb_items):
        lines += [f"  - table: {BULK_TABLE}", "    hashkey: pk", "    hashkeytype: S",
                  f"    hashkeyvalue: item-{i:04d}"]
    return "\n".join(lines) + "\n"


def startup(tree: Path, moto: MotoServer, workdir: Path, runs: int) -> list[dict[str, Any]]:
    rows = []
    for items in SIZES:
        parameters, secrets, dynamodb_items = split(items)
        config = bulk_config(items)
        register, init_done, rss, calls = [], [], [], []
        for run in range(runs):
            moto.reset_calls()
            emulator, extension, port = start_extension(tree, moto, workdir / f"startup-{items}-{run}", config)
            try:
                rss.append(rss_mib(extension.process.pid))
                register.append((extension.registered_at - extension.launched_at) * 1000)
                init_done.append((extension.init_done_at - extension.launched_at) * 1000)
                calls.append(moto.call_counts())
                if run == 0:  # the prefetch really got everything: the last item of each source is a hit
                    for path in (f"/parameters?name={parameter_name(parameters - 1)}",
                                 f"/secrets?name={secret_name(secrets - 1)}",
                                 f"/dynamodb?name={BULK_TABLE}-item-{dynamodb_items - 1:04d}"):
                        status, headers = get(port, path)
                        if status != 200 or headers.get("x-cache") != "hit":
                            raise RuntimeError(f"{items} items: {path} answered {status} {headers.get('x-cache')}, "
                                               f"not a cache hit\n{extension.output[-3000:]}")
            finally:
                emulator.close()
        by_operation = calls[0]
        rows.append({
            "items": items, "parameters": parameters, "secrets": secrets, "dynamodb": dynamodb_items, "runs": runs,
            "start_to_register_ms": round(statistics.median(register), 2),
            "start_to_init_done_ms": round(statistics.median(init_done), 2),
            "rss_after_prefetch_mib": round(statistics.median(rss), 2),
            "aws_calls": sum(by_operation.values()), "aws_calls_by_operation": dict(sorted(by_operation.items())),
            "runs_start_to_register_ms": [round(v, 2) for v in register],
            "runs_start_to_init_done_ms": [round(v, 2) for v in init_done],
            "runs_rss_after_prefetch_mib": [round(v, 2) for v in rss],
            "runs_aws_calls": [sum(c.values()) for c in calls],
        })
        row = rows[-1]
        log(f"  {items} items: start -> register {row['start_to_register_ms']:.1f} ms, start -> INIT done "
            f"{row['start_to_init_done_ms']:.1f} ms, RSS {row['rss_after_prefetch_mib']:.1f} MiB, "
            f"{row['aws_calls']} AWS calls (median of {runs})")
    return rows


# -- layer size -----------------------------------------------------------------------------------------------


def zip_row(zip_path: Path, arch: str, python: str, source: str) -> dict[str, Any]:
    with zipfile.ZipFile(zip_path) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    return {"arch": arch, "python": python, "zip_mib": round(zip_path.stat().st_size / MIB, 2),
            "unzipped_mib": round(unzipped / MIB, 2), "source": source}


def layer_sizes(tree: Path, workdir: Path, *, build_missing: bool) -> list[dict[str, Any]]:
    """One row per architecture for this Python: the layer under test zipped (this machine's architecture), a
    zip in dist/ when there is one, else a build into a temporary directory (unless build_missing is false).
    Zips in dist/ for other Python versions are listed too."""
    python = layer.this_python()
    dist = layer.ROOT / "dist"
    jar = tree / "java" / "lib" / layer.JAVA_CLIENT_JAR
    rows = []
    for arch in layer.TARGET_ARCHES:
        in_dist = dist / layer.zip_name(arch, python)
        if arch == layer.machine_arch() and not layer.is_standalone(tree):
            zip_path = workdir / layer.zip_name(arch, python)
            layer.write_zip(tree, zip_path)
            rows.append(zip_row(zip_path, arch, python, f"the layer under test ({shown(tree)}), zipped"))
        elif in_dist.exists():
            rows.append(zip_row(in_dist, arch, python, f"dist/{in_dist.name}"))
        elif build_missing:
            log(f"  building the {arch} layer for Python {python} to measure it")
            out = workdir / f"layer-{arch}"
            try:
                zip_path = layer.build(arch, python, out, log=lambda *_: None,
                                       zip_path=workdir / layer.zip_name(arch, python),
                                       java_jar=jar if jar.exists() else None)
            except (subprocess.CalledProcessError, layer.BuildError) as error:
                log(f"  could not build the {arch} layer: {error}")
                rows.append({"arch": arch, "python": python, "zip_mib": None, "unzipped_mib": None,
                             "source": f"build failed: {error}"})
            else:
                rows.append(zip_row(zip_path, arch, python, "built by scripts/bench with layer.build"))
        else:
            rows.append({"arch": arch, "python": python, "zip_mib": None, "unzipped_mib": None,
                         "source": "not built (--quick) and not in dist/"})
    for other in sorted(dist.glob("cache-extension-layer-*-python*.zip")):
        found = re.fullmatch(r"cache-extension-layer-(x86_64|arm64)-python(\d+\.\d+)\.zip", other.name)
        if found and found.group(2) != python:
            rows.append(zip_row(other, found.group(1), found.group(2), f"dist/{other.name}"))
    return rows


# -- targets --------------------------------------------------------------------------------------------------


def python_vs_floor_text(rows: dict[str, dict[str, Any]]) -> str:
    floor, python = rows["floor_keepalive"], rows["python_keepalive"]
    text = f"{python['p50_ms'] / floor['p50_ms']:.1f}x ({python['p50_ms']:.3f} ms vs {floor['p50_ms']:.3f} ms"
    text += ", client and server on one CPU)" if "floor_keepalive_cross" in rows else ")"
    if rows.get("floor_keepalive_cross", {}).get("p50_ms") and rows.get("python_keepalive_cross", {}).get("p50_ms"):
        cross = rows["python_keepalive_cross"]["p50_ms"] / rows["floor_keepalive_cross"]["p50_ms"]
        text += f"; {cross:.1f}x with the server on the other CPU"
    if rows.get("python_keepalive_floor", {}).get("p50_ms"):
        text += (f"; {python['p50_ms'] / rows['python_keepalive_floor']['p50_ms']:.1f}x the same client "
                 f"against the raw responder ({rows['python_keepalive_floor']['p50_ms']:.3f} ms)")
    return text


def judge(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of TARGETS with the value measured, its text for the headline table, and whether it is met.
    Targets that name no size are judged at every size (the largest value counts)."""
    rows = {row["id"]: row for row in results["latency"]["rows"]}
    python_ms, floor_ms, direct_ms = (rows[row_id]["p50_ms"]
                                      for row_id in ("python_keepalive", "floor_keepalive", "direct_boto3"))
    through = results["throughput"]
    sizes = results["startup"]["sizes"]
    layers = [row for row in results["layer"]["zips"] if row["zip_mib"] is not None]

    def by_size(key: str, unit: str) -> tuple[float, str]:
        return (max(row[key] for row in sizes),
                ", ".join(f"{row[key]:.1f} {unit} ({row['items']} items)" for row in sizes))

    three = sizes[0]
    measured: dict[str, tuple[float | None, str]] = {
        "python_p50_vs_floor": (python_ms / floor_ms, python_vs_floor_text(rows)),
        "python_speedup_vs_direct": (direct_ms / python_ms,
                                     f"{direct_ms / python_ms:.1f}x ({python_ms:.3f} ms vs {direct_ms:.3f} ms, "
                                     "boto3 against moto on loopback)"),
        "throughput_vs_floor": (through["extension_vs_floor"],
                                f"{through['extension_vs_floor']:.1%} "
                                f"({through['extension']['requests_per_s']:,.0f} vs "
                                f"{through['floor']['requests_per_s']:,.0f} requests/s)"),
        "start_to_register": by_size("start_to_register_ms", "ms"),
        "start_to_init_done_3": (three["start_to_init_done_ms"], f"{three['start_to_init_done_ms']:.1f} ms "
                                 f"{spread(three['runs_start_to_init_done_ms'])}".strip()),
        "rss_after_prefetch": by_size("rss_after_prefetch_mib", "MiB"),
        "layer_zip": (max(row["zip_mib"] for row in layers) if layers else None,
                      ", ".join(f"{row['zip_mib']:.1f} MiB ({row['arch']}, Python {row['python']})" for row in layers)
                      or "not measured"),
    }
    out = []
    for target_id, what, comparison, bound, unit in TARGETS:
        value, text = measured[target_id]
        met = None if value is None else (value <= bound if comparison == "<=" else value >= bound)
        bound_text = f"{bound:.0%}" if unit == "share" else f"{bound:g}{unit}" if unit == "x" else f"{bound:g} {unit}"
        out.append({"id": target_id, "what": what, "target": f"{'≤' if comparison == '<=' else '≥'} {bound_text}",
                    "comparison": comparison, "bound": bound, "unit": unit,
                    "measured": None if value is None else round(value, 4), "measured_text": text, "met": met})
    return out


# -- the report -----------------------------------------------------------------------------------------------


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


def spread(values: list[float]) -> str:
    return f"({min(values):.0f}–{max(values):.0f})" if len(values) > 1 else ""


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
        "The extension runs on uvloop. The last row is the same layer with the one line of `runner.py` that makes "
        "the loop switched to asyncio's own: on uvloop the rate is "
        f"{uv['requests_per_s'] / aio['requests_per_s']:.2f}x asyncio's ({uv['requests_per_s']:,.0f} vs "
        f"{aio['requests_per_s']:,.0f} requests/s) and the server spends {cost['uv']:.0f} µs of CPU per request "
        f"against {cost['aio']:.0f} µs. Where other work shares the CPUs, the rates move from run to run and "
        "the CPU time per request is the steadier of the two.",
        "",
    ]


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"`{results['command']}`, {m['date']}, {m['cpus']} CPUs, Python {m['python']} (machine and command at the "
        "end; the same numbers, machine-readable: [benchmarks.json](benchmarks.json)). Generated: run the command "
        "again rather than editing this page.",
        "",
        "| target | measured | met? |",
        "|---|---|---|",
    ]
    for target in results["targets"]:
        met = "—" if target["met"] is None else ("yes" if target["met"] else "**no**")
        lines.append(f"| {target['what']}: {target['target']} | {target['measured_text']} | {met} |")
    latency = results["latency"]
    lines += [
        "",
        "Everything here ran on one machine in one run, so compare the ratios (to the floor, to the direct call) "
        "rather than the absolute times, which move with the machine and its load. The targets are the issue's; "
        "they are reported here, never asserted by a test.",
        "",
        "![latency, throughput, start-up, memory and layer size](benchmarks.png)",
        "",
        "## Cache-hit latency",
        "",
        f"{latency['count']} sequential reads of one cached parameter per row (after {latency['warmup']} untimed), "
        f"{latency['direct_count']} for the direct boto3 call. The floor is a bare socket sending the same GET to "
        "`bench_programs/raw_responder.py`, a minimal raw-socket responder in another process that answers the very "
        "bytes the extension answers (captured in this run): a loopback HTTP round trip and nothing else. "
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
    t = results["throughput"]
    lines += [
        "",
        "The Python, Node.js and Java clients run from the layer tree (`python/`, `nodejs/node_modules/`, "
        "`java/lib/`). The Python client is also timed against the floor responder, which splits its cost into "
        "the client's own share and the extension's. The direct call is boto3's `get_parameter` against the same "
        "moto server the extension prefetched from; moto on loopback answers far faster than SSM does over a "
        "network, so the real gap is wider.",
        "",
        f"## Throughput, {t['connections']} concurrent keep-alive connections",
        "",
        f"{t['tool']}, {t['duration_s']:g} s counted per target, each connection sending its next GET as soon as "
        "the previous answer is complete.",
        "",
        "| target | requests/s | requests | non-200 | p50 under load | p99 under load | server CPU "
        "| load generator CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, label in (("floor", "raw floor responder"), ("extension", "the extension (uvloop)"),
                       ("extension_asyncio_loop", "the same extension on asyncio's own loop")):
        row = t.get(key)
        if row is None:
            continue
        lines.append(f"| {label} | {row['requests_per_s']:,.0f} | {row['requests']:,} | {row['errors']} | "
                     f"{fmt(row['p50_ms'], '.3f', ' ms')} | {fmt(row['p99_ms'], '.3f', ' ms')} | "
                     f"{row['server_cpu_percent']:.0f}% | {row['generator_cpu_percent']:.0f}% |")
    lines += [
        "",
        f"The extension serves {t['extension_vs_floor']:.1%} of the floor's rate. The CPU columns are each "
        "process's CPU time over the run's wall time, in % of one CPU (the extension's counts all its threads). On "
        f"this {m['cpus']}-CPU machine the load generator competes with the server for the CPUs: it is a process of "
        "its own, so it shares no interpreter lock with either, but where it is near 100% it, not the server, "
        "sets the rate. That is the floor's case: the real floor is higher and the extension's share smaller than "
        "shown. A server near 100% of one CPU is the limit itself.",
        "",
        *loop_comparison(t),
        "## Start-up, memory and AWS calls by configured items",
        "",
        f"Median of {results['startup']['runs']} {'launch' if results['startup']['runs'] == 1 else 'launches'} "
        "per size "
        "(the range of the runs in brackets), each a fresh process launched from the layer tree "
        "by the Extensions API emulator exactly as Lambda launches it. Start is just before the process is spawned; "
        "register and INIT done (its first `event/next`, after the prefetch) are when the emulator received those "
        "calls. RSS is `VmRSS` of the extension's process right after INIT. AWS calls are every request moto "
        "received during the launch, by operation. The items are about 2/3 SSM parameters, 1/6 Secrets Manager "
        "secrets and 1/6 DynamoDB items; moto runs on loopback, so the prefetch's share of INIT is smaller than "
        "against AWS.",
        "",
        "| items (parameters / secrets / DynamoDB) | start → register | start → INIT done | RSS after prefetch "
        "| AWS calls | by operation |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["startup"]["sizes"]:
        operations = ", ".join(f"{op.split('.')[-1]} {n}" for op, n in row["aws_calls_by_operation"].items())
        lines.append(f"| {row['items']} ({row['parameters']} / {row['secrets']} / {row['dynamodb']}) | "
                     f"{row['start_to_register_ms']:.1f} ms {spread(row['runs_start_to_register_ms'])} | "
                     f"{row['start_to_init_done_ms']:.1f} ms {spread(row['runs_start_to_init_done_ms'])} | "
                     f"{row['rss_after_prefetch_mib']:.1f} MiB | {row['aws_calls']} | {operations} |")
    lines += [
        "",
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
        "`scripts/bench --help` lists the options (`--quick` for a short run, `--count`, `--runs`, `--duration`, "
        "`--no-build`, `--layer`, `--out`). Without `--no-build` it first rebuilds `dist/layer` from the sources.",
        "",
    ]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, axes = plt.subplots(2, 3, figsize=(18, 10), gridspec_kw={"width_ratios": [1.3, 1.3, 1]})
    figure.suptitle(f"Lambda cache extension: {results['command']}  ({results['machine']['cpus']} CPUs, "
                    f"Python {results['machine']['python']}, {results['machine']['date']})", fontsize=11)
    colours = {"floor": "#9e9e9e", "extension": "#1f77b4", "direct": "#d62728"}

    def latency_panel(ax: Any, connection: str, title: str) -> None:
        rows = [r for r in results["latency"]["rows"] if r["connection"] == connection and r.get("p50_ms") is not None]
        labels = [SHORT_LABELS.get(r["id"], r["label"]) for r in rows][::-1]
        p50 = [r["p50_ms"] for r in rows][::-1]
        p99 = [r["p99_ms"] for r in rows][::-1]
        colour = [colours[r["kind"]] for r in rows][::-1]
        y = range(len(rows))
        ax.barh([i + 0.2 for i in y], p50, height=0.4, color=colour, label="p50")
        ax.barh([i - 0.2 for i in y], p99, height=0.4, color=colour, alpha=0.4, label="p99")
        for i, (a, b) in enumerate(zip(p50, p99)):
            ax.text(a, i + 0.2, f" {a:.3f}", va="center", fontsize=7)
            ax.text(b, i - 0.2, f" {b:.3f}", va="center", fontsize=7)
        ax.set_yticks(list(y), labels, fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlim(right=max(p99) * 3)
        ax.set_xlabel("ms (log scale); dark p50, light p99")
        ax.set_title(title, fontsize=10)

    latency_panel(axes[0][0], "keep-alive", "cache-hit latency, keep-alive")
    latency_panel(axes[0][1], "new connection", "cache-hit latency, new connection per call")

    t = results["throughput"]
    ax = axes[0][2]
    values = [t["floor"]["requests_per_s"], t["extension"]["requests_per_s"]]
    ax.bar(["raw floor", "extension"], values, color=[colours["floor"], colours["extension"]])
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("requests/s")
    ax.set_ylim(0, max(values) * 1.15)
    ax.set_title(f"throughput, {t['connections']} connections\n(extension: {t['extension_vs_floor']:.1%} of the floor)",
                 fontsize=10)

    sizes = results["startup"]["sizes"]
    labels = [str(r["items"]) for r in sizes]
    x = range(len(sizes))
    ax = axes[1][0]
    register = [r["start_to_register_ms"] for r in sizes]
    init = [r["start_to_init_done_ms"] for r in sizes]
    ax.bar([i - 0.2 for i in x], register, width=0.4, label="start → register", color="#2ca02c")
    ax.bar([i + 0.2 for i in x], init, width=0.4, label="start → INIT done", color=colours["extension"])
    for i in x:
        ax.text(i - 0.2, register[i], f"{register[i]:.0f}", ha="center", va="bottom", fontsize=8)
        ax.text(i + 0.2, init[i], f"{init[i]:.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), labels)
    ax.set_xlabel("configured items")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)
    ax.set_title("start-up (median)", fontsize=10)

    ax = axes[1][1]
    rss = [r["rss_after_prefetch_mib"] for r in sizes]
    calls = [r["aws_calls"] for r in sizes]
    ax.bar(list(x), rss, color=colours["extension"])
    for i in x:
        ax.text(i, rss[i], f"{rss[i]:.1f} MiB\n{calls[i]} AWS calls", ha="center", va="bottom", fontsize=8)
    ax.axhline(40, color=colours["direct"], linestyle="--", linewidth=1, label="target 40 MiB")
    ax.set_xticks(list(x), labels)
    ax.set_xlabel("configured items")
    ax.set_ylabel("MiB")
    ax.set_ylim(0, max(rss + [40]) * 1.25)
    ax.legend(fontsize=8)
    ax.set_title("RSS after prefetch, and AWS calls of the prefetch", fontsize=10)

    ax = axes[1][2]
    zips = [r for r in results["layer"]["zips"] if r["zip_mib"] is not None]
    names = [f"{r['arch']}\npy{r['python']}" for r in zips]
    ax.bar([i - 0.2 for i in range(len(zips))], [r["zip_mib"] for r in zips], width=0.4, label="zipped",
           color=colours["extension"])
    ax.bar([i + 0.2 for i in range(len(zips))], [r["unzipped_mib"] for r in zips], width=0.4, label="unzipped",
           color=colours["floor"])
    ax.axhline(10, color=colours["direct"], linestyle="--", linewidth=1, label="target 10 MiB zipped")
    ax.set_xticks(list(range(len(zips))), names, fontsize=8)
    ax.set_ylabel("MiB")
    ax.set_ylim(0, max([r["unzipped_mib"] for r in zips] + [10]) * 1.4)
    ax.legend(fontsize=8, loc="upper left", ncols=3)
    ax.set_title("layer size", fontsize=10)

    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


# -- the run --------------------------------------------------------------------------------------------------


def cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def pin(pid: int, allowed: set[int]) -> None:
    """Every thread of process `pid` onto the CPUs in `allowed` (threads it starts later inherit it)."""
    if not allowed or not hasattr(os, "sched_setaffinity"):
        return
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(task), allowed)
        except (ProcessLookupError, PermissionError):
            pass  # a thread that just ended


def measure_latency(tree: Path, moto: MotoServer, port: int, extension_pid: int, responder: Responder, count: int,
                    warmup: int, direct_count: int) -> list[dict[str, Any]]:
    """Every latency row with client and server pinned to one CPU; then the floor and the Python client again
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
        ("python_keepalive", "Python client → extension", "keep-alive", "extension",
         lambda: python_keepalive(client_class, port, count, warmup)),
        ("python_keepalive_floor", "Python client → raw responder", "keep-alive", "floor",
         lambda: python_keepalive(client_class, floor_port, count, warmup)),
        ("node_keepalive", "Node.js client → extension", "keep-alive", "extension",
         lambda: node_client(tree, port, count)),
        ("java_keepalive", "Java client → extension", "keep-alive", "extension",
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
        ("python_keepalive_cross", "Python client → extension", "keep-alive", "extension",
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="scripts/bench", formatter_class=argparse.RawDescriptionHelpFormatter, description=__doc__,
        epilog="The full run takes about a minute on a 2-CPU machine, layer builds included; --quick with --no-build "
               "about 20 s.")
    parser.add_argument("--quick", action="store_true",
                        help="a short run (200 reads per latency row, 1 s of load, 1 launch per size, no layer builds "
                             "for other architectures); the numbers are noisier")
    parser.add_argument("--count", type=int, help="timed reads per latency row (default: 2000; --quick: 200)")
    parser.add_argument("--runs", type=int,
                        help="launches per size for start-up and RSS, median taken (default: 5; --quick: 1)")
    parser.add_argument("--duration", type=float, help="seconds of load per throughput target (default: 5; --quick: 1)")
    parser.add_argument("--no-build", action="store_true", help="use the layer tree as it is")
    parser.add_argument("--layer", type=Path, default=layer.ROOT / "dist" / "layer",
                        help="layer tree (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=layer.ROOT / "docs",
                        help="where benchmarks.md, benchmarks.json and benchmarks.png go (default: %(default)s)")
    args = parser.parse_args(argv)
    count = args.count or (200 if args.quick else 2000)
    runs = args.runs or (1 if args.quick else 5)
    duration = args.duration or (1.0 if args.quick else 5.0)
    warmup = 50 if args.quick else 200
    started = time.monotonic()
    tree = args.layer.resolve()
    if not (args.no_build and tree.exists()):
        log(f"building the layer into {tree}")
        layer.build(layer.machine_arch(), layer.this_python(), tree, log=log)
    if not (tree / "extensions" / "cache-extension").exists():
        parser.error(f"{tree} holds no extensions/cache-extension: build it, or drop --no-build")
    results: dict[str, Any] = {"schema": 1, "command": shlex.join(["scripts/bench", *argv]), "quick": args.quick,
                               "machine": machine(), "layer_tree": shown(tree)}
    with tempfile.TemporaryDirectory(prefix="bench-") as temp, MotoServer() as moto:
        workdir = Path(temp)
        create_sample_resources(moto, REGION)
        log(f"creating {max(SIZES)} items in moto")
        create_bulk_resources(moto, max(SIZES))

        log("latency and throughput: the extension with the sample config.yaml")
        sample_config = (layer.ROOT / "config.yaml").read_text()
        emulator, extension, port = start_extension(tree, moto, workdir / "latency", sample_config)
        try:
            emulator.invoke()
            responder = Responder(capture_response(port), workdir)
            try:
                direct_count = max(count // 10, 50)
                results["latency"] = {"count": count, "warmup": warmup, "direct_count": direct_count,
                                      "rows": measure_latency(tree, moto, port, extension.process.pid, responder,
                                                             count, warmup, direct_count)}
                log(f"throughput: {CONNECTIONS} connections, {duration:g} s each")
                floor_rate = throughput(responder.port, duration, responder.process.pid)
                log(f"  raw floor: {floor_rate['requests_per_s']:,.0f} requests/s")
                extension_rate = throughput(port, duration, extension.process.pid)
                log(f"  extension: {extension_rate['requests_per_s']:,.0f} requests/s")
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
                asyncio_rate = throughput(port, duration, extension.process.pid)
                log(f"  extension on asyncio's loop: {asyncio_rate['requests_per_s']:,.0f} requests/s")
            finally:
                emulator.close()
        results["throughput"] = {
            "tool": extension_rate["tool"], "connections": CONNECTIONS, "duration_s": extension_rate["duration_s"],
            "floor": floor_rate, "extension": extension_rate, "extension_asyncio_loop": asyncio_rate,
            "extension_vs_floor": round(extension_rate["requests_per_s"] / floor_rate["requests_per_s"], 4)
            if floor_rate["requests_per_s"] else None,
        }

        log(f"start-up, RSS and AWS calls for {', '.join(map(str, SIZES))} items")
        sizes = startup(tree, moto, workdir, runs)
        results["startup"] = {"runs": runs, "sizes": sizes}
        results["rss"] = {"sizes": [{"items": r["items"], "rss_after_prefetch_mib": r["rss_after_prefetch_mib"]}
                                    for r in sizes]}
        results["aws_calls"] = {"sizes": [{"items": r["items"], "calls": r["aws_calls"],
                                           "by_operation": r["aws_calls_by_operation"]} for r in sizes]}

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
    headline = text.split("| target | measured | met? |", 1)[1].split("\n\n", 1)[0]
    print("| target | measured | met? |" + headline)
    print(f"\nwrote {out / 'benchmarks.md'}, {out / 'benchmarks.json'} and {out / 'benchmarks.png'} "
          f"in {results['run_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
