"""Connection handling against the real extension (built layer, the project's emulator, moto as AWS):
a freeze of the environment between invokes, connection floods at Lambda's 1,024 open files, the event
loop (uvloop), and SHUTDOWN with work in flight.

Every socket operation has a timeout and every loop a bound. The numbers the issue asks for are printed
(run with -s): failures per client after a freeze, fresh requests answered under a flood and the log it
wrote, exit times after SIGTERM.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import ROOT, close_and_check, launch
from local_lambda.fault_proxy import FaultProxy
from local_lambda.layer import JAVA_CLIENT_JAR
from test_clients import node_env, run, tool

TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"
PARAMETER = ("CacheExtensions_Parameter1", "MyParameter")  # created by the session's moto fixture
PROBES = ROOT / "tests" / "connections"
FREEZE = 7.0  # seconds the extension is stopped
TRIES = 20  # connections per client kept across the freeze
FLOOD = 1500  # idle connections against a 1,024-file extension
FRESH = 5
FLOOD_LOG_LIMIT = 64 * 1024


def request_bytes(port: int, token: str, path: str = f"/parameters?name={PARAMETER[0]}") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{TOKEN_HEADER}: {token}\r\n\r\n".encode()


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    response = http.client.HTTPResponse(sock, method="GET")
    response.begin()
    return response.status, response.read()


def raw_get(sock: socket.socket, port: int, token: str) -> str | None:
    """One keep-alive request on an open socket: None when answered 200, else what went wrong."""
    try:
        sock.sendall(request_bytes(port, token))
        status, body = read_response(sock)
        return None if (status, body) == (200, PARAMETER[1].encode()) else f"status {status}"
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


@pytest.fixture(scope="module")
def java_probe(layer_dir, tmp_path_factory) -> str:
    jar = layer_dir / "java" / "lib" / JAVA_CLIENT_JAR
    classes = tmp_path_factory.mktemp("freeze-probe")
    run([tool("javac"), "--release", "11", "-cp", str(jar), "-d", str(classes), str(PROBES / "FreezeProbe.java")],
        os.environ.copy())
    return f"{jar}{os.pathsep}{classes}"


# --- item 1: a freeze between invokes -------------------------------------------------------------------


def test_kept_alive_connections_survive_a_freeze(start_extension, layer_dir, python_client_module, java_probe):
    """SIGSTOP the extension FREEZE s, SIGCONT, then reuse every connection: TRIES raw keep-alive sockets,
    TRIES Python clients, TRIES Node.js keep-alive agents (http.get) and clients, TRIES Java clients."""
    ext = start_extension()
    pid = ext.extension.process.pid
    env = {"CACHE_EXTENSION_PORT": str(ext.port), "AWS_SESSION_TOKEN": ext.token}
    node = subprocess.Popen([tool("node"), str(PROBES / "freeze_probe.js"), str(ext.port), PARAMETER[0], str(TRIES)],
                            env=node_env(layer_dir, env), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    java = subprocess.Popen([tool("java"), "-cp", java_probe, "FreezeProbe", str(ext.port), PARAMETER[0], str(TRIES)],
                            env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    sockets = [socket.create_connection(("127.0.0.1", ext.port), timeout=10) for _ in range(TRIES)]
    clients = [python_client_module.CacheClient(port=ext.port, token=ext.token, timeout=5, near_cache=False)
               for _ in range(TRIES)]  # near cache off: every read goes over the kept-alive connection
    try:
        assert [raw_get(s, ext.port, ext.token) for s in sockets] == [None] * TRIES
        for client in clients:
            assert client.get_parameter(PARAMETER[0]) == PARAMETER[1]
        first_sockets = [client._connection.sock for client in clients]
        node_first = json.loads(node.stdout.readline())
        assert node_first["raw"] == [None] * TRIES and node_first["client"] == [None] * TRIES, node_first
        assert java.stdout.readline().strip() == "round 0 failed"

        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(FREEZE)
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.3)  # the thaw: the extension's loop wakes up before the function calls it

        failures: dict[str, int] = {}
        failures["raw socket"] = sum(raw_get(s, ext.port, ext.token) is not None for s in sockets)
        python_failed = 0
        for client in clients:
            try:
                assert client.get_parameter(PARAMETER[0]) == PARAMETER[1]
            except Exception:
                python_failed += 1
        python_reconnected = sum(c._connection is None or c._connection.sock is not s
                                 for c, s in zip(clients, first_sockets))
        failures["python client"] = python_failed
        node.stdin.write("go\n")
        node.stdin.flush()
        java.stdin.write("go\n")
        java.stdin.flush()
        node_after = json.loads(node.stdout.readline())
        failures["node http.get keep-alive"] = sum(e is not None for e in node_after["raw"])
        failures["node client"] = sum(e is not None for e in node_after["client"])
        java_line = java.stdout.readline().strip()
        java_errors = []
        while java_line.startswith("error "):
            java_errors.append(java_line)
            java_line = java.stdout.readline().strip()
        failures["java client"] = len(java_errors)
        assert java_line.startswith("round "), java_line
        print(f"\nafter a {FREEZE:.0f} s freeze, failures in {TRIES} tries each: "
              + ", ".join(f"{k} {v}" for k, v in failures.items())
              + f"; python connections reopened {python_reconnected}, node raw sockets reused {node_after['reused']}")
        assert failures == dict.fromkeys(failures, 0), (failures, node_after["raw"][:3], java_errors[:3])
        # The very connections were reused: the clients did not hide a reset by reconnecting.
        assert python_reconnected == 0
        assert node_after["reused"] == TRIES
    finally:
        for proc in (node, java):
            proc.kill()
            proc.wait(timeout=10)
        for s in sockets:
            s.close()
        for client in clients:
            client.close()


def test_a_request_arriving_across_a_freeze_is_not_cut_off(start_extension):
    """The slow-client limit counts time the extension was awake: half a request, a freeze longer than
    HEADER_TIMEOUT, then the rest is answered."""
    from cache_extension.http_server import HEADER_TIMEOUT

    ext = start_extension()
    pid = ext.extension.process.pid
    data = request_bytes(ext.port, ext.token)
    with socket.create_connection(("127.0.0.1", ext.port), timeout=10) as sock:
        sock.sendall(data[:20])
        time.sleep(0.5)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(FREEZE)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert FREEZE > HEADER_TIMEOUT
        time.sleep(0.3)
        sock.sendall(data[20:])
        status, body = read_response(sock)
    assert (status, body) == (200, PARAMETER[1].encode())


def test_an_idle_connection_has_no_time_limit_but_a_started_request_has(start_extension):
    from cache_extension.http_server import HEADER_TIMEOUT

    ext = start_extension()
    idle = socket.create_connection(("127.0.0.1", ext.port), timeout=10)  # opened, nothing sent
    kept = socket.create_connection(("127.0.0.1", ext.port), timeout=10)  # one request, then idle
    slow = socket.create_connection(("127.0.0.1", ext.port), timeout=10)  # half a request, then nothing
    try:
        assert raw_get(kept, ext.port, ext.token) is None
        slow.sendall(b"GET /parameters?na")
        started = time.monotonic()
        slow.settimeout(HEADER_TIMEOUT + 5)
        assert slow.recv(100) == b""  # closed by the extension
        cut = time.monotonic() - started
        time.sleep(1.0)
        assert raw_get(idle, ext.port, ext.token) is None
        assert raw_get(kept, ext.port, ext.token) is None
        print(f"\nhalf a request cut off after {cut:.2f} s; idle connections answered after {time.monotonic() - started:.1f} s")
        assert HEADER_TIMEOUT - 0.5 <= cut <= HEADER_TIMEOUT + 2
    finally:
        for s in (idle, kept, slow):
            s.close()


# --- item 2: connection floods --------------------------------------------------------------------------


def test_a_flood_of_idle_connections_leaves_room_for_fresh_requests(start_extension):
    ext = start_extension()
    pid = ext.extension.process.pid
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (1024, 1024))  # Lambda's limit
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FLOOD + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= wanted, "this test needs 1,756 open files"
    log_before = len(ext.output.encode())
    flood: list[socket.socket] = []
    most_fds = fd_count(pid)
    try:
        for _ in range(FLOOD):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            code = sock.connect_ex(("127.0.0.1", ext.port))
            assert code in (0, errno.EINPROGRESS), errno.errorcode.get(code)
            flood.append(sock)
            if len(flood) % 100 == 0:
                most_fds = max(most_fds, fd_count(pid))
        settle = time.monotonic() + 3
        while time.monotonic() < settle:
            most_fds = max(most_fds, fd_count(pid))
            time.sleep(0.05)

        answered, times = 0, []
        for _ in range(FRESH):
            started = time.monotonic()
            connection = http.client.HTTPConnection("127.0.0.1", ext.port, timeout=10)
            try:
                connection.request("GET", f"/parameters?name={quote(PARAMETER[0])}", headers={TOKEN_HEADER: ext.token})
                response = connection.getresponse()
                if (response.status, response.read()) == (200, PARAMETER[1].encode()):
                    answered += 1
            except (OSError, http.client.HTTPException):
                pass
            finally:
                connection.close()
            times.append(time.monotonic() - started)
            most_fds = max(most_fds, fd_count(pid))
        log_bytes = len(ext.output.encode()) - log_before
        print(f"\nflood of {FLOOD} idle connections at 1,024 open files: {answered}/{FRESH} fresh requests answered "
              f"(slowest {max(times):.2f} s), {log_bytes} bytes of log, at most {most_fds} open files in the extension")
        assert answered == FRESH
        assert log_bytes <= FLOOD_LOG_LIMIT
        assert ext.extension.process.poll() is None
    finally:
        for sock in flood:
            sock.close()
    assert "Traceback" not in ext.output


def test_the_listen_backlog_is_the_sockets_own(start_extension):
    """The event loop's create_server must not replace the backlog the extension chose (asyncio's default is
    100; ss shows a listening socket's backlog as its Send-Q)."""
    import cache_extension.runner

    expected = getattr(cache_extension.runner, "LISTEN_BACKLOG", 512)  # 512: the socket's before
    ext = start_extension()
    listing = subprocess.run(["ss", "-ltnH", f"sport = :{ext.port}"], capture_output=True, text=True, timeout=10)
    backlogs = [int(line.split()[2]) for line in listing.stdout.splitlines() if line.startswith("LISTEN")]
    assert backlogs and set(backlogs) == {expected}, backlogs


def test_binding_the_port_imports_no_http_stack():
    """The port is bound before the prefetch starts; the HTTP server, uvloop and httptools are imported while
    the prefetch runs (runner.py), so binding must not pull them in."""
    code = ("import sys; from cache_extension import runner; runner.listen(0); "
            "print(sorted(m for m in ('httptools', 'uvloop', 'cache_extension.app', 'cache_extension.http_server', "
            "'cache_extension.http_protocol', 'uvicorn', 'starlette') if m in sys.modules))")
    extension = ROOT / "extension"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                         env={"PYTHONPATH": str(extension), "PATH": os.environ.get("PATH", "")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --- item 3: uvloop -------------------------------------------------------------------------------------


def test_the_server_runs_on_uvloop(start_extension):
    ext = start_extension()
    maps = Path(f"/proc/{ext.extension.process.pid}/maps").read_text()
    assert "uvloop" in maps and "loop.cpython" in maps
    assert ext.read("parameters", PARAMETER[0]).status == 200


# --- item 10: shutdown ------------------------------------------------------------------------------------


@pytest.fixture
def slow_proxy(moto):
    with FaultProxy(moto.endpoint) as proxy:
        proxy.delay(3.0)
        yield proxy


def test_sigterm_during_prefetch_exits_within_a_second(layer_dir, moto, slow_proxy, tmp_path):
    times = []
    for attempt in range(3):
        handle = launch(layer_dir, moto, tmp_path / f"task{attempt}", SAMPLE_CONFIG_TEXT,
                        env={"AWS_ENDPOINT_URL": slow_proxy.endpoint}, wait=False)
        try:
            deadline = time.monotonic() + 15
            while slow_proxy.calls() == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert slow_proxy.calls() > 0, "the prefetch never started"
            time.sleep(0.3)
            sent = time.monotonic()
            handle.extension.process.send_signal(signal.SIGTERM)
            code = handle.extension.wait_exit(3.0)
            times.append(time.monotonic() - sent)
            assert code == 0, handle.output
            assert "Traceback" not in handle.output
        finally:
            close_and_check(handle)
    print(f"\nSIGTERM during prefetch: exit after {', '.join(f'{t:.3f}' for t in times)} s")
    assert max(times) < 1.0


def test_a_request_in_flight_at_shutdown_gets_a_json_503(start_extension, slow_proxy):
    ext = start_extension(env={"AWS_ENDPOINT_URL": slow_proxy.endpoint, "CACHE_EXTENSION_INIT_STARTUP": "false"})
    connection = http.client.HTTPConnection("127.0.0.1", ext.port, timeout=10)
    try:
        connection.request("GET", f"/parameters?name={quote(PARAMETER[0])}", headers={TOKEN_HEADER: ext.token})
        deadline = time.monotonic() + 10
        while slow_proxy.calls() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert slow_proxy.calls() > 0, "the read did not reach AWS"
        timings = ext.emulator.shutdown()
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()
    print(f"\nSHUTDOWN with a read in flight: {response.status} {body.get('error')}, exit after {timings['cache-extension']} s")
    assert response.status == 503 and body["error"] == "ShuttingDown"
    assert response.getheader("Content-Type") == "application/json"
    assert timings["cache-extension"] is not None and timings["cache-extension"] < 1.0
    assert ext.extension.process.returncode == 0
    for text in ("Traceback", "CancelledError", "Exception in ASGI application"):
        assert text not in ext.output, text


SAMPLE_CONFIG_TEXT = (ROOT / "config.yaml").read_text()


@pytest.fixture(scope="module")
def python_client_module(layer_dir):
    """cache_extension_client imported from the layer tree."""
    import importlib

    sys.path.insert(0, str(layer_dir / "python"))
    sys.modules.pop("cache_extension_client", None)
    module = importlib.import_module("cache_extension_client")
    yield module
    sys.path.remove(str(layer_dir / "python"))
    sys.modules.pop("cache_extension_client", None)


def test_a_flood_is_logged_once_per_interval_with_a_count(monkeypatch, caplog):
    """In process, with the interval shortened: the first eviction logs one line, the rest of the interval is
    summed into one line with the counts; the longest idle connection is the one closed."""
    import asyncio
    import logging

    from cache_extension import http_server

    monkeypatch.setattr(http_server, "MAX_CONNECTIONS", 3)
    monkeypatch.setattr(http_server, "FLOOD_LOG_INTERVAL", 0.2)

    class Transport:
        def __init__(self) -> None:
            self.aborted = False

        def abort(self) -> None:
            self.aborted = True

    class Connection:
        def __init__(self) -> None:
            self.transport = Transport()

    async def flood() -> list[Connection]:
        guard = http_server.Connections(asyncio.get_running_loop())
        opened = []
        for _ in range(1000):
            connection = Connection()
            opened.append(connection)
            guard.idle[connection] = None
            assert guard.admit(connection, len(guard.idle))
        await asyncio.sleep(0.5)
        return opened

    with caplog.at_level(logging.WARNING, logger="cache_extension.http"):
        opened = asyncio.run(flood())
    lines = [r.getMessage() for r in caplog.records]
    print("\n" + "\n".join(lines))
    assert len(lines) == 2, lines
    assert "997 idle connection(s) closed, 0 new one(s) refused" in lines[1]
    assert [c.transport.aborted for c in opened] == [True] * 997 + [False] * 3
