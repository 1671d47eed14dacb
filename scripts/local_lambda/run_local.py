"""The local run: the example config served by the extension from the built layer, against moto.

Everything is real but AWS itself: the layer is built as for Lambda, the extension is launched from it
under the Extensions API emulator, and it reaches moto's HTTP server through AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from . import layer
from .aws import SAMPLE_PARAMETER, MotoServer, create_sample_resources, lambda_environment
from .extensions_api import EmulatorError, ExtensionsApiEmulator

REGION = "us-west-2"
TOKEN = "local-session-token"  # stands in for AWS_SESSION_TOKEN; the HTTP API requires it
EXAMPLE_READS = [
    ("parameters", "CacheExtensions_Parameter1"),
    ("parameters", "/aws/reference/secretsmanager/secret_info"),
    ("dynamodb", "DynamoDbTable-pKey1-sKey1"),
    ("secrets", "secret_info"),
]
SECRET_SOURCES = {"secrets", "/aws/reference/secretsmanager/"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/run-local", description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="exit after the example reads instead of serving until Ctrl-C")
    parser.add_argument("--port", type=int, default=4000, help="port the extension serves on (default: %(default)s)")
    parser.add_argument("--config", type=Path, default=layer.ROOT / "config.yaml", help="config file (default: the example)")
    parser.add_argument("--no-build", action="store_true", help="use dist/layer as it is instead of rebuilding it")
    args = parser.parse_args(argv)

    tree = layer.ROOT / "dist" / "layer"
    if not (args.no_build and (tree / "extensions" / "cache-extension").exists()):
        layer.build(layer.machine_arch(), f"{sys.version_info.major}.{sys.version_info.minor}", tree)
    with MotoServer() as moto, ExtensionsApiEmulator(region=REGION, echo=True) as emulator, \
            tempfile.TemporaryDirectory(prefix="task-") as task_root:
        create_sample_resources(moto, REGION)
        moto.reset_calls()
        print(f"moto (AWS emulator) on {moto.endpoint}; Extensions API emulator on {emulator.address}")
        env = lambda_environment(endpoint=moto.endpoint, region=REGION, token=TOKEN, task_root=task_root, extra={
            "PATH": f"{Path(sys.base_prefix) / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "CACHE_EXTENSION_CONFIG": str(args.config.resolve()),
            "CACHE_EXTENSION_PORT": str(args.port),
        })
        extension = emulator.launch(str(tree / "extensions" / "cache-extension"), env)
        try:
            emulator.wait_init(timeout=20)
        except (EmulatorError, TimeoutError) as exc:
            print(f"INIT failed: {exc}", file=sys.stderr)
            return 1
        print(f"\nstart -> register {ms(extension.registered_at - extension.launched_at)}, "
              f"start -> INIT done {ms(extension.init_done_at - extension.launched_at)}, "
              f"RSS after prefetch {rss_mib(extension.process.pid)}, AWS calls at INIT {moto.call_counts()}")
        emulator.invoke()
        ok = example_reads(args.port)
        compare_latency(args.port, moto)
        if not args.once:
            print(f"\nserving on http://localhost:{args.port} until Ctrl-C; for example:\n"
                  f"  curl -H 'X-Aws-Parameters-Secrets-Token: {TOKEN}' "
                  f"'http://localhost:{args.port}/parameters?name={SAMPLE_PARAMETER[0]}'")
            try:
                while extension.wait_exit(1.0) is None:
                    pass
            except KeyboardInterrupt:
                print()
        timings = emulator.shutdown()
        exits = ", ".join(f"{name} {ms(seconds) if seconds is not None else 'killed'}" for name, seconds in timings.items())
        print(f"SHUTDOWN -> exit: {exits}")
        return 0 if ok else 1


def example_reads(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    ok = True
    print("\nexample reads through the extension:")
    for source, name in EXAMPLE_READS:
        started = time.perf_counter()
        connection.request("GET", f"/{source}?name={quote(name, safe='')}", headers={"X-Aws-Parameters-Secrets-Token": TOKEN})
        response = connection.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        secret = source == "secrets" or name.startswith("/aws/reference/secretsmanager/")
        # Secrets are shown as their length only, as the example functions do.
        shown = f"<secret, {len(body)} bytes>" if secret and response.status == 200 else body.decode("utf-8", "replace")
        print(f"  {response.status} X-Cache={response.getheader('X-Cache')} {ms(elapsed):>9}  /{source}?name={name}  {shown}")
        ok = ok and response.status == 200
    connection.close()
    return ok


def compare_latency(port: int, moto: MotoServer, samples: int = 200) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    path = f"/parameters?name={SAMPLE_PARAMETER[0]}"
    cached = []
    for _ in range(samples):
        started = time.perf_counter()
        connection.request("GET", path, headers={"X-Aws-Parameters-Secrets-Token": TOKEN})
        connection.getresponse().read()
        cached.append(time.perf_counter() - started)
    connection.close()
    ssm = moto.client("ssm", REGION)
    ssm.get_parameter(Name=SAMPLE_PARAMETER[0])  # warm the client's connection pool
    direct = []
    for _ in range(samples // 4):
        started = time.perf_counter()
        ssm.get_parameter(Name=SAMPLE_PARAMETER[0])
        direct.append(time.perf_counter() - started)
    hit, call = statistics.median(cached), statistics.median(direct)
    print(f"\ncache hit p50 {ms(hit)} (keep-alive, {samples} reads) vs direct boto3 GetParameter p50 {ms(call)} "
          f"against the same moto server: {call / hit:.0f}x faster")


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.2f} ms"


def rss_mib(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return f"{int(line.split()[1]) / 1024:.1f} MiB"
    except OSError:
        pass
    return "n/a"


if __name__ == "__main__":
    sys.exit(main())
