"""The local run: an example function invoked as Lambda would, reading through the extension from the built layer.

Everything is real but AWS itself and Lambda's managed runtimes: the layer is built as for Lambda, the
extension is launched from it and the function's runtime is started under the local Lambda emulator
(Extensions API and Runtime API on one address), and both reach moto's HTTP server through
AWS_ENDPOINT_URL. The Python function runs under AWS's own runtime interface client (awslambdaric);
Node.js and Java run under small local bootstraps (scripts/local_lambda/runtimes/) that stand in for
Lambda's managed runtimes. For Python, the same reads made directly with boto3 (direct.py, no
extension) run in an environment of their own against the same moto server, for comparison.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from . import layer, run_local_items, run_local_modes
from .aws import SAMPLE_PARAMETER, MotoServer, create_sample_resources, free_port, lambda_environment
from .credentials_endpoint import CredentialsEndpoint
from .extensions_api import EmulatorError, InitFailed, LambdaEmulator
from .resources import ResourcesError, load_resources, seed
from .run_local_items import plural
from .run_local_modes import MODES, Mode
from .runtime_api import InvokeResult

REGION = "us-west-2"
TOKEN = "local-session-token"  # stands in for AWS_SESSION_TOKEN; the HTTP API requires it
FUNCTION_NAME = "cache-extension-example"
EXAMPLES = layer.ROOT / "function-example"
RUNTIMES = Path(__file__).resolve().parent / "runtimes"
INVOKE_TIMEOUT = 15.0  # the function's timeout, in seconds
INIT_TIMEOUT = 20.0
SHELL_SETTINGS = "CACHE_EXTENSION_"  # passed from the shell to the extension (and the function), as Lambda's env
SHELL_EXTRAS = ("AWS_LAMBDA_LOG_FORMAT",)
SETTINGS_HELP = (
    "The extension's settings come from your shell: CACHE_EXTENSION_* (TTL, INIT_STARTUP, LOG_LEVEL, TOKEN, ...) "
    "and AWS_LAMBDA_LOG_FORMAT are passed through to the extension and the function, as a function's environment "
    "variables on Lambda; nothing else from the shell reaches them (no AWS credentials). --port and --config win "
    "over CACHE_EXTENSION_PORT and CACHE_EXTENSION_CONFIG. For example: "
    "CACHE_EXTENSION_TTL=30s AWS_LAMBDA_LOG_FORMAT=JSON scripts/run-local --once"
)


@dataclass
class Function:
    """How to start one example function's runtime, as Lambda would for its runtime."""

    label: str
    handler: str
    command: list[str]
    task_root: Path
    env: dict[str, str] = field(default_factory=dict)  # what the runtime's own bootstrap would set


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/run-local", description=__doc__.split("\n\n")[0],
                                     epilog=SETTINGS_HELP)
    parser.add_argument("--function", choices=("python", "nodejs", "java"), default="python",
                        help="which example function to invoke (default: %(default)s)")
    parser.add_argument("--event", type=Path, help="JSON file with the event to invoke it with (default: {})")
    parser.add_argument("--warm", type=int, default=5, help="warm invokes after the cold one (default: %(default)s)")
    parser.add_argument("--once", action="store_true",
                        help="exit after the invocations instead of serving until Ctrl-C")
    parser.add_argument("--port", type=int,
                        help="port the extension serves on; 0 picks a free one "
                             "(default: $CACHE_EXTENSION_PORT, else 4000)")
    parser.add_argument("--config", type=Path,
                        help="config file (default: $CACHE_EXTENSION_CONFIG, else the example's config.yaml)")
    parser.add_argument("--resources", type=Path,
                        help="YAML or JSON file of SSM parameters, secrets and DynamoDB tables with items to put into "
                             "the local AWS besides the sample's (format: scripts/local_lambda/resources.py, "
                             "example: function-example/resources.example.yaml); with it, or with a --config other "
                             "than the sample's, the function reads every configured item and prints one row each")
    parser.add_argument("--mode", choices=tuple(MODES), default="on-demand",
                        help="the Lambda mode to run in, with the environment Lambda sets in it (default: %(default)s)")
    parser.add_argument("--no-build", action="store_true", help="use dist/layer as it is instead of rebuilding it")
    parser.add_argument("--layer", type=Path, help="use this built layer tree (laid out as /opt) as it is; implies --no-build")
    args = parser.parse_args(argv)

    try:
        event = json.loads(args.event.read_text()) if args.event else {}
    except (OSError, ValueError) as exc:
        parser.error(f"--event {args.event}: {exc}")
    if args.warm < 0:
        parser.error("--warm must be 0 or more")
    resources = None
    if args.resources is not None:
        try:
            resources = load_resources(args.resources)
        except ResourcesError as exc:
            parser.error(f"--resources {exc}")
    mode = MODES[args.mode]
    if refusal := mode.check(args.function):
        parser.error(refusal)
    shell = shell_settings()
    if args.config is None:
        args.config = Path(shell["CACHE_EXTENSION_CONFIG"]) if shell.get("CACHE_EXTENSION_CONFIG") else layer.ROOT / "config.yaml"
    config = run_local_items.read_config(args.config, REGION)  # None if invalid: the extension says why at INIT
    own = resources is not None or not run_local_items.is_sample(config, REGION)
    if own and args.function != "python":
        parser.error(f"--function {args.function} reads the sample's names; with --resources or your own --config "
                     "run-local reads every configured item through the Python client: leave out --function")
    if own and args.event is not None:
        parser.error("--event is for the example function; with --resources or your own --config the function "
                     "reads every configured item")
    items = run_local_items.items_to_read(config, run_local_items.shown_parameters(resources)) if own else None

    if args.layer is not None:
        tree = args.layer.resolve()
        if not (tree / "extensions" / "cache-extension").exists():
            parser.error(f"--layer {args.layer}: no extensions/cache-extension in it")
    else:
        tree = layer.ROOT / "dist" / "layer"
        if not (args.no_build and (tree / "extensions" / "cache-extension").exists()):
            layer.build(layer.machine_arch(), f"{sys.version_info.major}.{sys.version_info.minor}", tree)
    if unfit := layer.unfit_here(tree):  # before anything starts: a foreign C extension fails only at import
        remedy = ("pass one built for this machine (scripts/build-layer makes dist/layer)" if args.layer
                  else "rebuild without --no-build, or scripts/build-layer")
        print(f"run-local: {unfit}: {remedy}", file=sys.stderr)
        return 1
    if args.port is not None:
        port: int | str = args.port or free_port()
    else:
        port = shell.get("CACHE_EXTENSION_PORT") or 4000  # a bad value goes on to the extension, which names it
    if isinstance(port, int) or port.isdigit():
        if port_taken(int(port)):
            print(port_taken_message(port), file=sys.stderr)
            return 1

    with tempfile.TemporaryDirectory(prefix="run-local-") as work:
        try:
            function = python_function(tree, "read_every_item.handler", RUNTIMES) if own else prepare(args.function, tree, Path(work))
        except RuntimeError as exc:
            print(f"cannot run the {args.function} example: {exc}", file=sys.stderr)
            return 1
        with MotoServer() as moto:
            create_sample_resources(moto, REGION)
            if resources is not None:
                seed(moto, resources, REGION)
            items = run_local_items.expand_listings(items, config, moto, REGION,
                                                    run_local_items.shown_parameters(resources))
            moto.reset_calls()
            endpoint = CredentialsEndpoint(run_local_modes.CONTAINER_TOKEN) if mode.name == "snap-start" else None
            try:
                return run(args, function, tree, port, moto, event, mode, endpoint, items,
                           run_local_items.allow_line(config) if own else None)
            finally:
                if endpoint is not None:
                    endpoint.close()


def shell_settings() -> dict[str, str]:
    """The extension's settings in the shell's environment: CACHE_EXTENSION_* and AWS_LAMBDA_LOG_FORMAT."""
    return {name: value for name, value in os.environ.items()
            if name.startswith(SHELL_SETTINGS) or name in SHELL_EXTRAS}


def port_taken(port: int) -> bool:
    """True if something already listens on 127.0.0.1:`port` (where the extension would serve)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def port_taken_message(port: int | str) -> str:
    return (f"port {port} is taken on 127.0.0.1 (another run-local still serving?): "
            f"stop it, or pick another port with --port N (--port 0 picks a free one)")


def run(args: argparse.Namespace, function: Function, tree: Path, port: int | str, moto: MotoServer, event: Any,
        mode: Mode, endpoint: CredentialsEndpoint | None, items: list[dict] | None, allow: str | None) -> int:
    """INIT and the invokes in `mode`: the example function (compared with direct.py for Python), or with
    `items` (your own config) the reader function, one row per configured item."""
    shell = shell_settings()
    common = {
        "PATH": f"{Path(sys.base_prefix) / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        **shell,
        "CACHE_EXTENSION_PORT": str(port),
    }
    # The extension finds its config through CACHE_EXTENSION_CONFIG (extensions get no LAMBDA_TASK_ROOT);
    # the runtime gets LAMBDA_TASK_ROOT (its cwd) from launch_runtime.
    env = run_local_modes.apply(mode, lambda_environment(
        endpoint=moto.endpoint, region=REGION, token=TOKEN, config=str(args.config.resolve()),
        function_name=FUNCTION_NAME, extra=common), endpoint)
    with LambdaEmulator(function_name=FUNCTION_NAME, handler=function.handler, region=REGION, echo=True,
                        max_concurrency=mode.max_concurrency) as emulator:
        print(f"moto (AWS emulator) on {moto.endpoint}; Lambda emulator (Extensions + Runtime API) on {emulator.address}")
        print(f"mode {mode.changes}")
        passed = sorted(set(shell) - {"CACHE_EXTENSION_PORT", "CACHE_EXTENSION_CONFIG"})
        if passed:  # names only: a value may be a token
            print(f"from the shell: {', '.join(passed)}")
        extension = emulator.launch(str(tree / "extensions" / "cache-extension"), env)
        try:
            runtime = emulator.launch_runtime(function.command, {**env, **function.env}, cwd=str(function.task_root),
                                              name="function")
            emulator.wait_init(timeout=INIT_TIMEOUT)
        except (EmulatorError, TimeoutError) as exc:
            print(f"INIT failed: {str(exc).removeprefix('Init failed: ')}", file=sys.stderr)
            if isinstance(exc, InitFailed) and any(e.get("error_type") == "Extension.PortUnavailable" for e in exc.errors):
                print(port_taken_message(port), file=sys.stderr)  # taken between the check and the extension's bind
            return 1
        credentials = f", container credentials served {endpoint.served}x" if endpoint is not None else ""
        init_type = "" if mode.name == "on-demand" else f" ({mode.initialization_type})"
        print(f"\nINIT{init_type}: extension start -> register "
              f"{ms(extension.registered_at - extension.launched_at)}, "
              f"start -> event/next {ms(extension.init_done_at - extension.launched_at)}, "
              f"RSS after prefetch {rss_mib(extension.process.pid)}, AWS calls at INIT {moto.call_counts()}; "
              f"runtime start -> first invocation/next {ms(runtime.init_done_at - runtime.launched_at)}{credentials}")

        if items is not None:
            title = (f"your config ({args.config}): the function ({function.label}) reads its "
                     f"{plural(len(items), 'item')} through the cache extension")
            results, ok = invoke_series(emulator, title, {"items": items}, args.warm, moto, mode,
                                        describe=run_local_items.describe)
            ok = run_local_items.print_table(items, results, ms) and ok
            if allow:
                print(allow)
        else:
            title = f"{args.function} function ({function.label}) with the cache extension"
            cached, ok = invoke_series(emulator, title, event, args.warm, moto, mode)
            if args.function == "python":
                direct, direct_ok = run_direct(tree, moto, event, args.warm, mode, endpoint)
                ok = ok and direct_ok
                compare(cached, direct)

        if not args.once:
            token = "$CACHE_EXTENSION_TOKEN" if shell.get("CACHE_EXTENSION_TOKEN") else run_local_modes.http_token(mode, TOKEN)
            route, name = (items[0]["route"], items[0]["name"]) if items else ("parameters", SAMPLE_PARAMETER[0])
            print(f"\nthe extension serves on http://localhost:{port} until Ctrl-C; for example:\n"
                  f"  curl -H \"X-Aws-Parameters-Secrets-Token: {token}\" "
                  f"'http://localhost:{port}/{route}?name={quote(name, safe='/')}'", flush=True)
            try:
                while (code := extension.wait_exit(1.0)) is None:
                    pass
            except KeyboardInterrupt:
                print()
            else:
                how = f"killed by signal {-code}{signal_name(-code)}" if code < 0 else f"exit code {code}"
                print(f"\nthe extension exited on its own ({how}) while serving; its last output is above",
                      file=sys.stderr)
                ok = False
        timings = emulator.shutdown()
        exits = ", ".join(f"{name} {ms(seconds) if seconds is not None else 'killed'}" for name, seconds in timings.items())
        print(f"SHUTDOWN -> exit: {exits}")
        return 0 if ok else 1


def run_direct(tree: Path, moto: MotoServer, event: Any, warm: int, mode: Mode,
               endpoint: CredentialsEndpoint | None) -> tuple[list[InvokeResult], bool]:
    """direct.py in an execution environment of its own, in the same mode: no extension, the same moto server."""
    function = python_function(tree, "direct.handler")
    env = run_local_modes.apply(mode, lambda_environment(
        endpoint=moto.endpoint, region=REGION, token=TOKEN, function_name=f"{FUNCTION_NAME}-direct",
        extra={"PATH": f"{Path(sys.base_prefix) / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"}), endpoint)
    with LambdaEmulator(function_name=f"{FUNCTION_NAME}-direct", handler=function.handler, region=REGION,
                        echo=True, max_concurrency=mode.max_concurrency) as emulator:
        emulator.launch_runtime(function.command, {**env, **function.env}, cwd=str(function.task_root),
                                name="direct-function")
        try:
            emulator.wait_init(timeout=INIT_TIMEOUT)
        except (EmulatorError, TimeoutError) as exc:
            print(f"INIT of the direct function failed: {exc}", file=sys.stderr)
            return [], False
        results = invoke_series(emulator, "the same Python function reading AWS directly with boto3 "
                                f"({function.label}), no extension", event, warm, moto, mode)
        emulator.shutdown()
        return results


def invoke_series(emulator: LambdaEmulator, title: str, event: Any, warm: int, moto: MotoServer, mode: Mode,
                  describe: Callable[[InvokeResult, InvokeResult | None], str] | None = None,
                  ) -> tuple[list[InvokeResult], bool]:
    """One cold invoke and `warm` warm ones; prints each response (or `describe`'s text) and its durations.

    On Managed Instances the warm invokes go in batches of up to the maximum concurrency, all at once."""
    print(f"\n{title}:")
    moto.reset_calls()
    results: list[InvokeResult] = []
    ok = True
    batch = mode.max_concurrency or 1
    sizes = [1] + [min(batch, warm - done) for done in range(0, warm, batch)]
    for size in sizes:
        try:
            answers, overlap = invoke_batch(emulator, event, size)
        except (EmulatorError, TimeoutError) as exc:
            print(f"  invoke failed: {exc}", file=sys.stderr)
            return results, False
        if mode.max_concurrency:  # Managed Instances: say how the invokes went
            if not results:
                print(f"  the cold invoke alone, then up to {mode.max_concurrency} at once:")
            elif size == 1:
                print("  1 invoke alone:")
            else:
                print(f"  {size} invokes sent at once, {overlap} in flight together (measured):")
        for result in answers:
            kind = "cold" if not results else "warm"
            results.append(result)
            init = f"Init Duration {ms(result.init_duration):>11}  " if result.init_duration is not None else ""
            if not result.ok:
                ok = False
            if describe is not None:
                shown = describe(result, results[0] if len(results) > 1 else None)
            elif result.ok and len(results) > 1 and result.payload == results[0].payload:
                shown = "(the same response)"
            elif result.ok:
                shown = json.dumps(result.response, separators=(",", ":")) if result.response is not None else repr(result.payload)
            else:
                shown = f"ERROR {result.error.error_type}: {result.error.message}"
            print(f"  {kind}  {init:<27}Duration {ms(result.duration):>9}  {shown}")
    calls = moto.calls()
    if len(results) == 1:
        print(f"  AWS calls during 1 invoke: {calls}")
    else:
        print(f"  AWS calls during these {len(results)} invokes: {calls}"
              + (f" ({calls / len(results):g} per invoke)" if results else ""))
    return results, ok


def invoke_batch(emulator: LambdaEmulator, event: Any, size: int) -> tuple[list[InvokeResult], int]:
    """`size` invokes sent at the same moment from threads (one alone: from here). The results in the order
    they were sent, and how many were in flight together at most (measured, not assumed)."""
    if size == 1:
        return [emulator.invoke(event, timeout=INVOKE_TIMEOUT)], 1
    results: list[Any] = [None] * size
    spans: list[tuple[float, float]] = [(0.0, 0.0)] * size
    start = threading.Barrier(size)

    def one(index: int) -> None:
        start.wait(timeout=INVOKE_TIMEOUT)
        began = time.monotonic()
        try:
            results[index] = emulator.invoke(event, timeout=INVOKE_TIMEOUT)
        except (EmulatorError, TimeoutError) as exc:
            results[index] = exc
        spans[index] = (began, time.monotonic())

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(INVOKE_TIMEOUT + 5)  # bounded: each invoke is, by its timeout
    for result in results:
        if not isinstance(result, InvokeResult):
            raise result if isinstance(result, Exception) else TimeoutError("an invoke did not return")
    overlap = max(sum(1 for b, e in spans if b <= began < e) for began, _ in spans)
    return results, overlap


def compare(cached: list[InvokeResult], direct: list[InvokeResult]) -> None:
    if not cached or not direct:
        return
    rows = [("with the cache extension", cached), ("direct boto3, no extension", direct)]
    print(f"\n{'python function':<32}{'cold: Init Duration + Duration':<34}warm Duration p50")
    p50 = {}
    for label, results in rows:
        cold = results[0]
        warm = [r.duration for r in results[1:]]
        p50[label] = statistics.median(warm) if warm else None
        cold_text = f"{ms(cold.init_duration)} + {ms(cold.duration)}"
        print(f"  {label:<30}{cold_text:<34}{ms(p50[label]) if warm else 'n/a'}")
    same = cached[0].response == direct[0].response
    line = "  same response from both" if same else "  the responses differ!"
    fast, slow = p50[rows[0][0]], p50[rows[1][0]]
    if fast and slow:
        line += f"; warm invokes {slow / fast:.0f}x faster with the extension"
    print(line)


# -- the example functions' runtimes ---------------------------------------------------------


def prepare(name: str, tree: Path, work: Path) -> Function:
    if name == "python":
        return python_function(tree, "app.handler")
    if name == "nodejs":
        return node_function(tree)
    return java_function(tree, work)


def python_function(tree: Path, handler: str, task_root: Path = EXAMPLES / "python") -> Function:
    """AWS's runtime interface client, as in Lambda's Python runtimes; /opt/python on sys.path.

    The project's venv interpreter stands in for Lambda's Python runtime, which also ships boto3.
    """
    python = layer.ROOT / ".venv" / "bin" / "python"
    if not python.exists():
        python = Path(sys.executable)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return Function(
        label=handler,
        handler=handler,
        command=[str(python), "-m", "awslambdaric", handler],
        task_root=task_root,
        env={"PYTHONPATH": str(tree / "python"), "AWS_EXECUTION_ENV": f"AWS_Lambda_python{version}"},
    )


def node_function(tree: Path) -> Function:
    """node with the local bootstrap (standing in for Lambda's Node.js runtime); the layer on NODE_PATH."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH")
    major = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip().lstrip("v").split(".")[0]
    return Function(
        label="index.handler",
        handler="index.handler",
        command=[node, str(RUNTIMES / "node-bootstrap.mjs")],
        task_root=EXAMPLES / "nodejs",
        env={"NODE_PATH": str(tree / "nodejs" / "node_modules"), "AWS_EXECUTION_ENV": f"AWS_Lambda_nodejs{major}.x"},
    )


def java_function(tree: Path, work: Path) -> Function:
    """The handler and the local bootstrap (standing in for Lambda's Java runtime), compiled for Java 11.

    The class path is what Lambda's Java runtime gives a function: the task root (the function's
    classes) and the layer's java/lib jar.
    """
    java, javac = shutil.which("java"), shutil.which("javac")
    jar = tree / "java" / "lib" / layer.JAVA_CLIENT_JAR
    if java is None or javac is None:
        raise RuntimeError("java and javac must be on PATH")
    if not jar.exists():
        raise RuntimeError(f"{jar} is missing: the layer was built without a JDK")
    task_root, runtime_classes = work / "task", work / "runtime"
    sources = {
        task_root: EXAMPLES / "java" / "src" / "main" / "java" / "example" / "Handler.java",
        runtime_classes: RUNTIMES / "JavaBootstrap.java",
    }
    compilers = [subprocess.Popen([javac, "--release", "11", "-encoding", "UTF-8", "-cp", str(jar), "-d", str(out), str(source)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for out, source in sources.items()]
    for compiler in compilers:
        output, _ = compiler.communicate(timeout=120)
        if compiler.returncode != 0:
            raise RuntimeError(f"javac failed:\n{output}")
    # Lambda's Java runtimes start the JVM with tiered compilation stopped at C1, for faster cold starts.
    return Function(
        label="example.Handler::handleRequest",
        handler="example.Handler::handleRequest",
        command=[java, "-XX:+TieredCompilation", "-XX:TieredStopAtLevel=1",
                 "-cp", os.pathsep.join([str(runtime_classes), str(task_root), str(jar)]), "JavaBootstrap"],
        task_root=task_root,
        env={"AWS_EXECUTION_ENV": "AWS_Lambda_java11"},
    )


def signal_name(number: int) -> str:
    try:
        return f" ({signal.Signals(number).name})"
    except ValueError:
        return ""


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
