"""What every part of scripts/bench shares: constants, statistics, raw-socket HTTP, the floor responder, the
extension launched from the layer tree under the Extensions API emulator (with its CPU time read at register and
at INIT done), /proc readings and CPU pinning."""

from __future__ import annotations

import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import layer
from .aws import SAMPLE_PARAMETER, MotoServer, free_port, lambda_environment
from .extensions_api import ExtensionsApiEmulator

REGION = "us-west-2"
TOKEN = "bench-session-token"
TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"
PROGRAMS = Path(__file__).resolve().parent / "bench_programs"
NAME = SAMPLE_PARAMETER[0]
PATH = f"/parameters?name={NAME}"
SIZES = (3, 50, 500)
CONNECTIONS = 10
MANY_CONNECTIONS = 64
MIB = 1024 * 1024
NEAR_CACHE_VARIABLE = "CACHE_EXTENSION_CLIENT_CACHE"


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
    """p50/p99/mean in ms (and µs, for the rows that are measured in µs) of samples in seconds."""
    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
    return {"samples": len(samples), "p50_ms": round(p50 * 1000, 4), "p99_ms": round(p99 * 1000, 4),
            "mean_ms": round(statistics.fmean(samples) * 1000, 4),
            "p50_us": round(p50 * 1e6, 3), "p99_us": round(p99 * 1e6, 3)}


def spread(values: list[float]) -> str:
    return f"({min(values):.0f}–{max(values):.0f})" if len(values) > 1 else ""


# -- raw-socket HTTP ------------------------------------------------------------------------------------------


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


# -- /proc ----------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, from /proc/<pid>/stat (clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def run_seconds(pid: int) -> float | None:
    """Time on a CPU of a process's live threads, from /proc/<pid>/task/*/schedstat (ns): finer than the
    10 ms ticks of /proc/<pid>/stat. None where the kernel has no schedstat."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                pass  # a thread that just ended
    except FileNotFoundError:
        return None
    return total / 1e9


def cpu_reading(pid: int | None) -> dict[str, float | None] | None:
    if pid is None:
        return None
    try:
        return {"stat_s": cpu_seconds(pid), "schedstat_s": run_seconds(pid)}
    except (FileNotFoundError, ProcessLookupError):
        return None


def children_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_mib(pid: int) -> float:
    """VmRSS of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no VmRSS for pid {pid}")


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


# -- the extension under the emulator -------------------------------------------------------------------------


class TimedEmulator(ExtensionsApiEmulator):
    """The Extensions API emulator, reading the extension's CPU time when it registers and when its INIT is done
    (its first event/next), while the extension waits for the answer: `cpu_at_register`, `cpu_at_init_done`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cpu_at_register: dict[str, float | None] | None = None
        self.cpu_at_init_done: dict[str, float | None] | None = None

    def _pid(self) -> int | None:
        processes = [e.process for e in self.extensions if e.process is not None]
        return processes[0].pid if processes else None

    def _register(self, headers: Any, body: bytes) -> Any:
        answer = super()._register(headers, body)
        if self.cpu_at_register is None:
            self.cpu_at_register = cpu_reading(self._pid())
        return answer

    def _next_event(self, ext: Any) -> Any:
        if ext.init_done_at is None and self.cpu_at_init_done is None:
            self.cpu_at_init_done = cpu_reading(self._pid())
        return super()._next_event(ext)


def extension_path() -> str:
    """The extension's PATH: the bare interpreter (no virtualenv), as the tests give it; a standalone layer
    needs none."""
    return f"{Path(sys.base_prefix) / 'bin'}:/usr/bin:/bin"


def launcher_interpreter() -> str | None:
    """The python3 the layer's launcher runs: the first on the extension's PATH."""
    return shutil.which("python3", path=extension_path())


def start_extension(tree: Path, moto: MotoServer, task_root: Path, config_text: str, *,
                    launcher: Path | None = None) -> tuple[TimedEmulator, Any, int]:
    """The extension launched from the layer tree as Lambda would, with config_text as its config.yaml; returns
    once its INIT is done (it called event/next). `launcher`: another launcher than the tree's own."""
    task_root.mkdir(parents=True, exist_ok=True)
    (task_root / "config.yaml").write_text(config_text)
    port = free_port()
    env = lambda_environment(endpoint=moto.endpoint, region=REGION, token=TOKEN, config=str(task_root / "config.yaml"),
                             extra={"PATH": extension_path(), "CACHE_EXTENSION_PORT": str(port)})
    emulator = TimedEmulator(region=REGION).start()
    try:
        extension = emulator.launch(str(launcher or tree / "extensions" / layer.EXTENSION_NAME), env)
        emulator.wait_init(timeout=60)
    except BaseException:
        emulator.close()
        raise
    return emulator, extension, port


def launcher_variant(tree: Path, workdir: Path, name: str, interpreter_options: str) -> Path | None:
    """A launcher that runs the layer's own launcher command with `interpreter_options` added to the python3 it
    execs (the launcher's -E would make Python ignore PYTHON* variables such as PYTHONPROFILEIMPORTTIME). It
    sits in a tree of links to the layer's files, so that its relative paths still resolve. None for a launcher
    that execs no python3 (a standalone layer)."""
    text = (tree / "extensions" / layer.EXTENSION_NAME).read_text()
    found = re.search(r"^(\s*exec\s+)(\S*python3[\d.]*)(\s)", text, re.M)
    if not found:
        return None
    variant = workdir / name
    (variant / "extensions").mkdir(parents=True)
    for entry in tree.iterdir():
        if entry.name != "extensions":
            (variant / entry.name).symlink_to(entry)
    launcher = variant / "extensions" / layer.EXTENSION_NAME
    launcher.write_text(text[:found.end(2)] + f" {interpreter_options}" + text[found.end(2):])
    launcher.chmod(0o755)
    return launcher
