"""Cache-hit latency through each client, next to the floor, against the extension from the built layer.

Measured in one run, on one machine (so ratios matter more than absolute times):
- raw floor: a bare keep-alive socket sending the same GET to a minimal raw-socket responder (a separate
  process) that answers the same bytes: the cost of a loopback HTTP round trip and nothing else;
- raw socket -> extension: the same bare socket against the extension itself;
- each client (Python, Node.js, Java) from the layer tree, on its keep-alive connection;
- a direct boto3 GetParameter against the same moto server, for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import layer
from .aws import SAMPLE_PARAMETER, MotoServer, create_sample_resources, free_port, lambda_environment
from .extensions_api import ExtensionsApiEmulator

REGION = "us-west-2"
TOKEN = "bench-session-token"
PROGRAMS = Path(__file__).resolve().parent / "bench_programs"
NAME = SAMPLE_PARAMETER[0]


def raw_round_trips(port: int, count: int) -> list[float]:
    request = (f"GET /parameters?name={NAME} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"X-Aws-Parameters-Secrets-Token: {TOKEN}\r\n\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples = []
    for i in range(count + 200):
        started = time.perf_counter()
        sock.sendall(request)
        data = b""
        while True:
            data += sock.recv(65536)
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
                if len(body) >= length:
                    break
        if i >= 200:  # warm-up first
            samples.append(time.perf_counter() - started)
    sock.close()
    return samples


def python_client(tree: Path, port: int, count: int) -> list[float]:
    sys.path.insert(0, str(tree / "python"))
    from cache_extension_client import CacheClient

    client = CacheClient(port=port, token=TOKEN)
    for _ in range(200):
        client.get_parameter(NAME)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        client.get_parameter(NAME)
        samples.append(time.perf_counter() - started)
    client.close()
    return samples


def node_client(tree: Path, port: int, count: int) -> list[float] | None:
    if not shutil.which("node"):
        return None
    env = {**os.environ, "NODE_PATH": str(tree / "nodejs" / "node_modules"), "CACHE_EXTENSION_PORT": str(port), "AWS_SESSION_TOKEN": TOKEN}
    out = subprocess.run(["node", str(PROGRAMS / "client_bench.mjs"), NAME, str(count)], env=env, capture_output=True, text=True, check=True)
    return [ms / 1000 for ms in json.loads(out.stdout)]


def java_client(tree: Path, port: int, count: int) -> list[float] | None:
    jar = tree / "java" / "lib" / layer.JAVA_CLIENT_JAR
    if not (shutil.which("javac") and jar.exists()):
        return None
    with tempfile.TemporaryDirectory() as classes:
        subprocess.run(["javac", "--release", "11", "-cp", str(jar), "-d", classes, str(PROGRAMS / "ClientBench.java")], check=True)
        env = {**os.environ, "CACHE_EXTENSION_PORT": str(port), "AWS_SESSION_TOKEN": TOKEN}
        out = subprocess.run(["java", "-cp", f"{jar}{os.pathsep}{classes}", "ClientBench", NAME, str(count)],
                             env=env, capture_output=True, text=True, check=True)
    return [ms / 1000 for ms in json.loads(out.stdout)]


def direct_boto3(moto: MotoServer, count: int) -> list[float]:
    ssm = moto.client("ssm", REGION)
    ssm.get_parameter(Name=NAME)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        ssm.get_parameter(Name=NAME)
        samples.append(time.perf_counter() - started)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="timed reads per measurement (default: %(default)s)")
    parser.add_argument("--no-build", action="store_true", help="use the layer tree as it is")
    parser.add_argument("--layer", type=Path, default=layer.ROOT / "dist" / "layer", help="layer tree (default: %(default)s)")
    args = parser.parse_args(argv)
    tree = args.layer.resolve()
    if not (args.no_build and tree.exists()):
        layer.build(layer.machine_arch(), f"{sys.version_info.major}.{sys.version_info.minor}", tree)
    floor_port = free_port()
    responder = subprocess.Popen([sys.executable, str(PROGRAMS / "raw_responder.py"), str(floor_port), SAMPLE_PARAMETER[1]])
    try:
        with MotoServer() as moto, ExtensionsApiEmulator(region=REGION) as emulator, tempfile.TemporaryDirectory() as task_root:
            create_sample_resources(moto, REGION)
            port = free_port()
            env = lambda_environment(endpoint=moto.endpoint, region=REGION, token=TOKEN, task_root=task_root, extra={
                "PATH": f"{Path(sys.base_prefix) / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                "CACHE_EXTENSION_CONFIG": str(layer.ROOT / "config.yaml"), "CACHE_EXTENSION_PORT": str(port)})
            emulator.launch(str(tree / "extensions" / "cache-extension"), env)
            emulator.wait_init(timeout=20)
            emulator.invoke()
            results = {
                "raw floor (bare socket -> raw responder)": raw_round_trips(floor_port, args.count),
                "bare socket -> extension": raw_round_trips(port, args.count),
                "Python client": python_client(tree, port, args.count),
                "Node.js client": node_client(tree, port, args.count),
                "Java client": java_client(tree, port, args.count),
                "direct boto3 GetParameter (moto)": direct_boto3(moto, max(args.count // 10, 50)),
            }
            emulator.shutdown()
    finally:
        responder.kill()
    floor = statistics.median(results["raw floor (bare socket -> raw responder)"])
    print(f"\ncache-hit latency, {args.count} sequential reads each, keep-alive:\n")
    print(f"| path | p50 | p99 | p50 / floor |\n|---|---|---|---|")
    for label, samples in results.items():
        if not samples:
            print(f"| {label} | not measured (runtime missing) | | |")
            continue
        ordered = sorted(samples)
        p50, p99 = statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]
        print(f"| {label} | {p50 * 1000:.3f} ms | {p99 * 1000:.3f} ms | {p50 / floor:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
