"""A local emulator of Lambda's Extensions API (``/2020-01-01/extension``) and Runtime API
(``/2018-06-01/runtime``), both served on the one address in AWS_LAMBDA_RUNTIME_API, as Lambda does.

Written from AWS's published API reference. It launches extension executables as real subprocesses,
as Lambda does from ``/opt/extensions``, optionally the function's runtime process too, and drives
them through the Init -> Invoke -> Shutdown lifecycle. Every wait is bounded so a misbehaving
extension or runtime can fail a test but never hang it.

Without a runtime (``launch_runtime`` never called) the emulator drives extensions alone: the
Runtime API paths answer 404 and ``invoke()`` only delivers INVOKE to the extensions.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, NamedTuple

from . import runtime_api
from .runtime_api import Invocation, InvokeError, InvokeResult

BASE_PATH = "/2020-01-01/extension"
ACCOUNT_ID = "123456789012"
VALID_EVENTS = frozenset({"INVOKE", "SHUTDOWN"})

# path -> the one method Lambda accepts on it
ROUTES = {
    f"{BASE_PATH}/register": "POST",
    f"{BASE_PATH}/event/next": "GET",
    f"{BASE_PATH}/init/error": "POST",
    f"{BASE_PATH}/exit/error": "POST",
}

_print_lock = threading.Lock()


class EmulatorError(Exception):
    """Base class for lifecycle failures the emulator detects."""


class InitFailed(EmulatorError):
    """Init failed: an extension posted init/error or exited before calling event/next."""

    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.errors = errors


class ExtensionCrashed(EmulatorError):
    """An extension process exited after Init (Lambda would reset the environment)."""


class RuntimeExited(EmulatorError):
    """invoke() was called but the runtime process has exited (Lambda would start a new environment)."""


class ApiCall(NamedTuple):
    """One request to the API, recorded in arrival order (for ordering assertions)."""

    at: float  # time.monotonic() when the request arrived
    extension: str | None  # extension name, when the request could be attributed (None for the runtime)
    # "register", "event/next", "init/error", "exit/error", "runtime/invocation/next",
    # "runtime/invocation/response", "runtime/invocation/error", "runtime/init/error" or the raw path
    call: str
    status: int


class _Process:
    """A process the emulator launched: its output and its exit."""

    def __init__(self, name: str, launched_at: float) -> None:
        self.name = name
        self.process: subprocess.Popen[str] | None = None  # set right after Popen
        self.launched_at = launched_at
        self.exited_at: float | None = None
        self._exited = threading.Event()
        self._output: list[str] = []
        self._output_lock = threading.Lock()
        self._reader: threading.Thread | None = None

    @property
    def output(self) -> str:
        with self._output_lock:
            return "".join(self._output)

    def wait_exit(self, timeout: float) -> int | None:
        """Wait for the process to exit; its return code, or None if still running."""
        if not self._exited.wait(timeout):
            return None
        if self._reader is not None:
            # Let the reader drain the pipe so `output` is complete (bounded: a
            # grandchild could keep the pipe open).
            self._reader.join(timeout=1.0)
        assert self.process is not None
        return self.process.returncode

    def _append_output(self, line: str) -> None:
        with self._output_lock:
            self._output.append(line)


class Extension(_Process):
    """One launched extension process, as the emulator sees it.

    Mutable lifecycle fields are written under the emulator's lock; reading them from a
    test is fine once the relevant wait_* call has returned.
    """

    def __init__(self, name: str, launched_at: float) -> None:
        super().__init__(name, launched_at)
        self.identifier: str | None = None
        self.events: list[str] = []
        self.registered_at: float | None = None
        self.init_done_at: float | None = None
        self.init_errors: list[dict[str, Any]] = []
        self.exit_errors: list[dict[str, Any]] = []
        # Event delivery: events wait in the queue until an event/next call takes them.
        # `idle` (waiting in event/next with nothing queued) is what Lambda waits for
        # before freezing, so count next calls and remember which call took the last event.
        self._queue: deque[dict[str, Any]] = deque()
        self._next_calls = 0
        self._delivered_on = 0
        self._last_next_at: float | None = None

    @property
    def idle(self) -> bool:
        return not self._queue and self._next_calls > self._delivered_on

    def __repr__(self) -> str:
        pid = self.process.pid if self.process else None
        return f"<Extension {self.name} pid={pid} events={self.events}>"


class Runtime(_Process):
    """The function's runtime process: it speaks the Runtime API.

    Its Init ends with its first invocation/next (``init_done_at``); ``init_errors`` holds what it
    posted to init/error, as ``{"error_type", "body"}``.
    """

    def __init__(self, name: str, command: list[str], launched_at: float) -> None:
        super().__init__(name, launched_at)
        self.command = command
        self.init_done_at: float | None = None
        self.init_errors: list[dict[str, Any]] = []
        self.current: Invocation | None = None  # the invocation it holds, from next to its answer
        self._next_calls = 0

    def __repr__(self) -> str:
        pid = self.process.pid if self.process else None
        return f"<Runtime {self.name} pid={pid} command={self.command}>"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, emulator: LambdaEmulator) -> None:
        self.emulator = emulator
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A process killed while holding a keep-alive connection resets it: that is no server error.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive, like Lambda; every response carries Content-Length.
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # silent by default: tests and run-local print what matters themselves

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without TCP_NODELAY the body waits for the peer's
        # delayed ACK (40 ms on Linux), which would show up in every invoke's Duration.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.emulator._track_connection(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.emulator._track_connection(self.connection, add=False)

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def do_DELETE(self) -> None:
        self._route()

    def do_PATCH(self) -> None:
        self._route()

    def _route(self) -> None:
        body = self._read_body()
        path = self.path.split("?", 1)[0]
        if path.startswith(runtime_api.BASE_PATH + "/"):
            self._route_runtime(path, body)
            return
        method = ROUTES.get(path)
        emulator = self.server.emulator
        if method is None:
            self._error(HTTPStatus.NOT_FOUND, "InvalidRequest", f"unknown path {path}", call=path)
        elif method != self.command:
            self._error(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "InvalidRequest",
                f"{self.command} not allowed on {path}",
                call=path,
                headers={"Allow": method},
            )
        else:
            call = path[len(BASE_PATH) + 1 :]
            try:
                status, headers, payload, name = emulator._handle(call, self.headers, body)
            except _Closed:
                status, headers, name = HTTPStatus.INTERNAL_SERVER_ERROR, {}, None
                payload = {"errorMessage": "emulator is closing", "errorType": "Extension.Closed"}
            self._send(status, payload, headers, call=call, extension=name)

    def _route_runtime(self, path: str, body: bytes) -> None:
        emulator = self.server.emulator
        route = runtime_api.match(path)
        if emulator.runtime is None:
            # Extensions-only mode: nothing would ever deliver an event to a caller of invocation/next.
            self._error(HTTPStatus.NOT_FOUND, "InvalidRequest", "no runtime launched: the Runtime API is off", call=path)
            return
        if route is None:
            self._error(HTTPStatus.NOT_FOUND, "InvalidRequest", f"unknown path {path}", call=path)
            return
        call, request_id, method = route
        if method != self.command:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, "InvalidRequest", f"{self.command} not allowed on {path}",
                        call=path, headers={"Allow": method})
            return
        try:
            status, headers, data = emulator._handle_runtime(call, request_id, self.headers, body)
        except _Closed:
            status, headers = HTTPStatus.INTERNAL_SERVER_ERROR, {}
            data = json.dumps({"errorMessage": "emulator is closing", "errorType": "Runtime.Closed"}).encode()
        except _Reply as reply:
            status, headers = reply.status, {}
            data = json.dumps({"errorMessage": str(reply), "errorType": reply.error_type}).encode()
        self._send_bytes(status, data, headers, call=call, extension=None)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers end with an empty line
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _error(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        call: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = {"errorMessage": message, "errorType": error_type}
        self._send(status, payload, headers or {}, call=call, extension=None)

    def _send(
        self,
        status: int,
        payload: dict[str, Any],
        headers: dict[str, str],
        *,
        call: str,
        extension: str | None,
    ) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), headers, call=call, extension=extension)

    def _send_bytes(
        self,
        status: int,
        data: bytes,
        headers: dict[str, str],
        *,
        call: str,
        extension: str | None,
    ) -> None:
        self.server.emulator._record(call, extension, int(status))
        try:
            self.send_response(int(status))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the extension went away mid-request


class _Closed(Exception):
    """Raised inside a blocked event/next when the emulator closes."""


class _Reply(Exception):
    """An API error response, raised from deep inside request handling."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


class LambdaEmulator:
    """Serves Lambda's Extensions API and Runtime API on 127.0.0.1, and launches processes against them.

    Lifecycle, as on Lambda:
    - Init: ``launch()`` each extension, then ``launch_runtime()`` (it starts the runtime once every
      extension has registered); ``wait_init()`` returns when every extension has called event/next
      and the runtime has called invocation/next for the first time.
    - Invoke: ``invoke(event)`` sends INVOKE to the subscribed extensions and the event to the runtime
      with the same request id, and returns once the runtime has answered and every extension is
      back in event/next. Without a runtime it only drives the extensions (and returns their event).
    - Shutdown: ``shutdown()`` stops the runtime (SIGTERM, then SIGKILL), sends SHUTDOWN to the
      extensions and kills whatever is left; ``close()`` kills everything at once.
    """

    def __init__(
        self,
        *,
        function_name: str = "cache-extension-example",
        function_version: str = "$LATEST",
        handler: str = "app.handler",
        region: str | None = None,
        memory_size: int = 128,
        echo: bool = False,
        register_delay: float = 0.0,
    ) -> None:
        self.function_name = function_name
        self.function_version = function_version
        self.handler = handler
        self.region = region or os.environ.get("AWS_REGION") or "us-east-1"
        self.memory_size = memory_size
        self.echo = echo
        # Holds register answers back, so tests can catch an extension before its port is open.
        self.register_delay = register_delay
        self.extensions: list[Extension] = []
        self.runtime: Runtime | None = None
        self.calls: list[ApiCall] = []
        # One condition guards all lifecycle state; waits release it, so a blocked
        # event/next never stalls other requests.
        self._cond = threading.Condition()
        self._closed = False
        self._failing_events = False  # fail_events(): event/next answers 500, as Lambda does when an extension must exit
        self._shut_down = False
        self._runtime_queue: deque[Invocation] = deque()
        self._invocations: dict[str, Invocation] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[Any] = set()

    @property
    def function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.function_name}"

    # -- lifecycle of the emulator itself ---------------------------------------------

    @property
    def address(self) -> str:
        """host:port, the value for AWS_LAMBDA_RUNTIME_API."""
        if self._server is None:
            raise RuntimeError("emulator not started")
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> LambdaEmulator:
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="lambda-api",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()  # wakes blocked event/next and invocation/next calls
        processes: list[_Process] = [*self.extensions, *([self.runtime] if self.runtime else [])]
        for proc in processes:
            _kill(proc)
        for proc in processes:
            proc.wait_exit(2.0)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            # Keep-alive connections would otherwise keep their handler threads alive.
            with self._cond:
                connections = list(self._connections)
            for conn in connections:
                try:
                    conn.shutdown(2)  # socket.SHUT_RDWR
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def __enter__(self) -> LambdaEmulator:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- driving the lifecycle ---------------------------------------------------------

    def launch(
        self,
        executable: str,
        env: dict[str, str],
        *,
        capture_output: bool = True,
        cwd: str | None = None,
    ) -> Extension:
        """Start an extension executable with exactly `env` (+ AWS_LAMBDA_RUNTIME_API)."""
        name = os.path.basename(executable)
        full_env = dict(env)
        full_env["AWS_LAMBDA_RUNTIME_API"] = self.address
        with self._cond:
            if self._closed:
                raise RuntimeError("emulator is closed")
            if self.runtime is not None:
                raise RuntimeError("extensions start before the runtime, as on Lambda: launch them first")
            if any(e.name == name for e in self.extensions):
                # /opt/extensions can't hold two files of the same name either.
                raise ValueError(f"an extension named {name!r} was already launched")
            ext = Extension(name, time.monotonic())
            # Listed before Popen so that a very fast register finds it.
            self.extensions.append(ext)
        try:
            ext.process = self._popen([executable], full_env, cwd, capture_output)
        except BaseException:
            with self._cond:
                self.extensions.remove(ext)
            raise
        self._follow(ext, capture_output)
        return ext

    def launch_runtime(
        self,
        command: list[str],
        env: dict[str, str],
        *,
        cwd: str | None = None,
        name: str = "runtime",
        capture_output: bool = True,
        register_timeout: float = 10.0,
    ) -> Runtime:
        """Start the function's runtime process, as Lambda starts its runtime's bootstrap.

        Lambda starts the runtime once every extension has registered (Extension init, then Runtime
        init): this waits for that, up to `register_timeout` seconds (an extension that failed or
        exited does not hold it back; wait_init() reports it). The process gets `env` plus what Lambda
        sets for every runtime, unless `env` already has it: AWS_LAMBDA_RUNTIME_API (always this
        emulator), _HANDLER, LAMBDA_TASK_ROOT (`cwd`), AWS_LAMBDA_FUNCTION_NAME / _VERSION /
        _MEMORY_SIZE, AWS_REGION, AWS_DEFAULT_REGION, AWS_LAMBDA_LOG_GROUP_NAME / _STREAM_NAME,
        AWS_LAMBDA_INITIALIZATION_TYPE. Build `env` with local_lambda.aws.lambda_environment for the
        rest (credentials, AWS_SESSION_TOKEN, TZ, LANG, the AWS endpoint).
        """
        full_env = dict(env)
        defaults = {
            "_HANDLER": self.handler,
            "LAMBDA_TASK_ROOT": os.path.abspath(cwd or os.getcwd()),
            "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": self.function_version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_size),
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": time.strftime("%Y/%m/%d/", time.gmtime())
            + f"[{self.function_version}]{uuid.uuid4().hex}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        }
        for key, value in defaults.items():
            full_env.setdefault(key, value)
        full_env["AWS_LAMBDA_RUNTIME_API"] = self.address
        deadline = time.monotonic() + register_timeout
        with self._cond:
            if self._closed or self._shut_down:
                raise RuntimeError("emulator is closed or already shut down")
            if self.runtime is not None:
                raise RuntimeError("a runtime was already launched: one per execution environment")
            self._wait_for(lambda: [e for e in self.extensions if e.identifier is None and not _init_settled(e)],
                           deadline, f"extensions not registered after {register_timeout:.1f}s: ")
            runtime = Runtime(name, list(command), time.monotonic())
            self.runtime = runtime  # before Popen, so that a very fast invocation/next finds it
        try:
            runtime.process = self._popen(list(command), full_env, cwd, capture_output)
        except BaseException:
            with self._cond:
                self.runtime = None
            raise
        self._follow(runtime, capture_output)
        return runtime

    def wait_init(self, timeout: float = 10.0) -> None:
        """Block until every extension (and the runtime, if launched) finished Init, failed it, or exited."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._wait_for(lambda: [p for p in [*self.extensions, self.runtime]
                                    if p is not None and not _init_settled(p)],
                           deadline, f"Init not finished after {timeout:.1f}s, waiting for: ")
            failed: list[_Process] = [e for e in self.extensions if e.init_errors or e.init_done_at is None]
            runtime = self.runtime
            if runtime is not None and (runtime.init_errors or runtime.init_done_at is None):
                failed.append(runtime)
        if not failed:
            return
        errors: list[dict[str, Any]] = []
        for proc in failed:
            key = "runtime" if isinstance(proc, Runtime) else "extension"
            for err in proc.init_errors:  # type: ignore[attr-defined]
                errors.append({key: proc.name, **err})
            if proc.init_done_at is None and proc._exited.is_set():  # type: ignore[attr-defined]
                code = proc.wait_exit(0)  # also drains its output
                errors.append(
                    {
                        key: proc.name,
                        "error_type": "Runtime.ExitError" if key == "runtime" else "Extension.Crash",
                        "body": f"exited with code {code} before Init finished",
                    }
                )
        summary = "; ".join(f"{e.get('extension') or e.get('runtime')}: {e['error_type']}" for e in errors)
        raise InitFailed(f"Init failed: {summary}" + self._outputs(failed), errors)

    @property
    def init_duration(self) -> float | None:
        """Seconds from the first launch to the end of Init (None while Init is not over)."""
        processes: list[Any] = [*self.extensions, *([self.runtime] if self.runtime else [])]
        if not processes or any(p.init_done_at is None for p in processes):
            return None
        return max(p.init_done_at for p in processes) - min(p.launched_at for p in processes)

    def invoke(
        self,
        event: Any = None,
        *,
        request_id: str | None = None,
        timeout: float = 10.0,
    ) -> Any:
        """One invocation, with `timeout` as the function's timeout (every wait is bounded by it).

        With a runtime: `event` (a dict, list, ... sent as JSON; bytes sent as they are; None is
        ``{}``) goes to the runtime and INVOKE to the subscribed extensions, with the same request id.
        Returns an InvokeResult once the runtime has answered and every subscriber is back in
        event/next. A function error is a result with `error` set; a timeout raises TimeoutError.

        Without a runtime: sends INVOKE to the subscribed extensions, waits until each is back in
        event/next, and returns the INVOKE event (a dict). A str as first argument is taken as the
        request id (``invoke("req-1")``), as before the Runtime API existed.
        """
        if isinstance(event, str):
            request_id, event = event, None
        request_id = request_id or runtime_api.new_request_id()
        deadline_ms = _epoch_ms() + int(timeout * 1000)
        trace = _trace_id()
        ext_event = {
            "eventType": "INVOKE",
            "deadlineMs": deadline_ms,
            "requestId": request_id,
            "invokedFunctionArn": self.function_arn,
            "tracing": {"type": "X-Amzn-Trace-Id", "value": trace},
        }
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._closed or self._shut_down:
                raise RuntimeError("emulator is closed or already shut down")
            not_ready = [e.name for e in self.extensions if e.init_done_at is None]
            runtime = self.runtime
            if runtime is not None and runtime.init_done_at is None:
                not_ready.append(runtime.name)
            if not_ready:
                raise RuntimeError(f"Init not finished for {not_ready}; call wait_init() first")
            self._raise_if_crashed()
            if runtime is not None and runtime._exited.is_set():
                raise RuntimeExited(
                    f"runtime exited (code {runtime.process and runtime.process.returncode})" + self._outputs([runtime])
                )
            if runtime is not None and request_id in self._invocations:
                raise ValueError(f"request id {request_id!r} was already used")
            targets = [e for e in self.extensions if "INVOKE" in e.events]
            for ext in targets:
                ext._queue.append(ext_event)
            if runtime is None:
                self._cond.notify_all()
                self._wait_idle(targets, request_id, deadline, timeout)
                return ext_event
            first = not self._invocations
            invocation = Invocation(request_id, runtime_api.encode_event(event), deadline_ms, self.function_arn, trace)
            self._invocations[request_id] = invocation
            self._runtime_queue.append(invocation)
            self._cond.notify_all()
            while invocation.answered_at is None:
                if runtime._exited.is_set():
                    # Lambda answers Runtime.ExitError and throws the environment away.
                    invocation.error = runtime_api.exit_error(request_id, runtime.process and runtime.process.returncode)
                    invocation.answered_at = runtime.exited_at or time.monotonic()
                    if invocation.delivered_at is None:
                        invocation.delivered_at = invocation.answered_at
                    break
                self._raise_if_crashed()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    state = "was not taken by invocation/next" if invocation.delivered_at is None else "got no response"
                    raise TimeoutError(
                        f"invoke {request_id}: the event {state} within {timeout:.1f}s (Task timed out)"
                        + self._outputs([runtime])
                    )
                self._cond.wait(min(remaining, 1.0))
            self._wait_idle(targets, request_id, deadline, timeout)
            assert invocation.delivered_at is not None
            done_at = max([invocation.answered_at, *(e._last_next_at or 0.0 for e in targets)])
            if invocation.response is not None:
                payload = invocation.response  # the function's response, or its error document as posted
            else:
                assert invocation.error is not None  # the runtime exited, or its response was too large
                payload = json.dumps({"errorType": invocation.error.error_type,
                                      "errorMessage": invocation.error.message}).encode()
            return InvokeResult(
                request_id=request_id,
                payload=payload,
                response=runtime_api.parse_json(payload),
                error=invocation.error,
                duration=max(0.0, invocation.answered_at - invocation.delivered_at),
                init_duration=self.init_duration if first else None,
                post_runtime_duration=max(0.0, done_at - invocation.answered_at),
                event=ext_event,
            )

    def _wait_idle(self, targets: list[Extension], request_id: str, deadline: float, timeout: float) -> None:
        """Wait (lock held) until every target extension is back in event/next with nothing queued."""
        while True:
            self._raise_if_crashed()
            busy = [e for e in targets if not e.idle]
            if not busy:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                names = ", ".join(e.name for e in busy)
                raise TimeoutError(f"invoke {request_id}: no event/next after {timeout:.1f}s from {names}")
            self._cond.wait(remaining)

    def fail_events(self) -> None:
        """From now on event/next answers 500 (blocked calls included): the API's "you must exit" answer."""
        with self._cond:
            self._failing_events = True
            self._cond.notify_all()

    def shutdown(self, reason: str = "spindown", *, timeout: float = 2.0) -> dict[str, float | None]:
        """Stop the runtime, send SHUTDOWN, give extensions `timeout` seconds to exit, then kill the rest.

        As on Lambda, the runtime goes first: SIGTERM, then SIGKILL after 0.5 s (its exit time is in
        ``runtime.exited_at``). Returns seconds from SHUTDOWN to each extension's exit (0.0 if it had
        already exited), or None for those that had to be killed.
        """
        with self._cond:
            self._shut_down = True
            runtime = self.runtime
        if runtime is not None and not runtime._exited.is_set():
            _kill(runtime, signal.SIGTERM)
            if runtime.wait_exit(0.5) is None:
                _kill(runtime)
                runtime.wait_exit(2.0)
        sent = time.monotonic()
        event = {
            "eventType": "SHUTDOWN",
            "shutdownReason": reason,
            "deadlineMs": _epoch_ms() + int(timeout * 1000),
        }
        with self._cond:
            subscribers = [
                e for e in self.extensions if "SHUTDOWN" in e.events and not e._exited.is_set()
            ]
            for ext in subscribers:
                ext._queue.append(event)
            self._cond.notify_all()
        deadline = sent + timeout
        for ext in subscribers:
            ext._exited.wait(max(0.0, deadline - time.monotonic()))
        result: dict[str, float | None] = {}
        killed = []
        for ext in self.extensions:
            if ext._exited.is_set():
                assert ext.exited_at is not None
                result[ext.name] = max(0.0, ext.exited_at - sent)
            else:
                result[ext.name] = None
                killed.append(ext)
            _kill(ext)  # also ends anything left in its process group
        for ext in killed:
            ext.wait_exit(2.0)
        return result

    # -- processes ---------------------------------------------------------------------

    @staticmethod
    def _popen(command: list[str], env: dict[str, str], cwd: str | None, capture_output: bool) -> subprocess.Popen[str]:
        return subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_output else None,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            # Own process group, so kill reaches whatever it spawned.
            start_new_session=True,
        )

    def _follow(self, proc: _Process, capture_output: bool) -> None:
        if capture_output:
            proc._reader = threading.Thread(
                target=self._read_output, args=(proc,), name=f"output-{proc.name}", daemon=True
            )
            proc._reader.start()
        threading.Thread(
            target=self._watch_exit, args=(proc,), name=f"wait-{proc.name}", daemon=True
        ).start()

    # -- request handling (called from server threads) ---------------------------------

    def _handle(
        self, call: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any], str | None]:
        """Returns (status, extra headers, JSON payload, extension name)."""
        if call == "register":
            time.sleep(self.register_delay)
            return self._register(headers, body)
        with self._cond:
            ext = self._by_identifier(headers.get("Lambda-Extension-Identifier"))
        name = ext.name if ext else None
        try:
            if ext is None:
                raise _Reply(
                    HTTPStatus.FORBIDDEN,
                    "Extension.UnknownExtensionIdentifier",
                    "missing or unknown Lambda-Extension-Identifier",
                )
            if call == "event/next":
                event = self._next_event(ext)
                headers_out = {"Lambda-Extension-Event-Identifier": str(uuid.uuid4())}
                return HTTPStatus.OK, headers_out, event, name
            self._report_error(ext, call, headers, body)
            return HTTPStatus.ACCEPTED, {}, {"status": "OK"}, name
        except _Reply as reply:
            payload = {"errorMessage": str(reply), "errorType": reply.error_type}
            return reply.status, {}, payload, name

    def _register(
        self, headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any], str | None]:
        name = headers.get("Lambda-Extension-Name")
        try:
            with self._cond:
                ext = next((e for e in self.extensions if e.name == name), None)
                if not name or ext is None:
                    raise _Reply(
                        HTTPStatus.FORBIDDEN,
                        "Extension.InvalidExtensionName",
                        f"Lambda-Extension-Name {name!r} is not a launched extension",
                    )
                if ext.identifier is not None:
                    # Also covers "after Init": event/next needs an identifier.
                    raise _Reply(
                        HTTPStatus.FORBIDDEN,
                        "Extension.AlreadyRegistered",
                        f"extension {name!r} already registered; register is only allowed during Init",
                    )
                events = _parse_events(body)
                ext.identifier = str(uuid.uuid4())
                ext.events = events
                ext.registered_at = time.monotonic()
                self._cond.notify_all()
        except _Reply as reply:
            payload = {"errorMessage": str(reply), "errorType": reply.error_type}
            return reply.status, {}, payload, name
        payload: dict[str, Any] = {
            "functionName": self.function_name,
            "functionVersion": self.function_version,
            "handler": self.handler,
        }
        features = headers.get("Lambda-Extension-Accept-Feature") or ""
        if "accountId" in [f.strip() for f in features.split(",")]:
            payload["accountId"] = ACCOUNT_ID
        return HTTPStatus.OK, {"Lambda-Extension-Identifier": ext.identifier}, payload, name

    def _next_event(self, ext: Extension) -> dict[str, Any]:
        with self._cond:
            ext._next_calls += 1
            ext._last_next_at = time.monotonic()
            call_number = ext._next_calls
            if ext.init_done_at is None:
                ext.init_done_at = time.monotonic()
            self._cond.notify_all()  # init done / back to idle: wake waiters
            while not ext._queue:
                if self._closed:
                    raise _Closed()
                if self._failing_events:
                    raise _Reply(HTTPStatus.INTERNAL_SERVER_ERROR, "Extension.Unknown", "injected Extensions API failure")
                # Bounded wait; close() also notifies, this is belt and braces.
                self._cond.wait(1.0)
            ext._delivered_on = call_number
            return ext._queue.popleft()

    def _report_error(self, ext: Extension, call: str, headers: Any, body: bytes) -> None:
        error_type = headers.get("Lambda-Extension-Function-Error-Type")
        if not error_type:
            raise _Reply(
                HTTPStatus.BAD_REQUEST,
                "Extension.MissingHeader",
                "missing Lambda-Extension-Function-Error-Type header",
            )
        record = {"error_type": error_type, "body": _parse_body(body)}
        with self._cond:
            if call == "init/error":
                if ext.init_done_at is not None:
                    raise _Reply(
                        HTTPStatus.FORBIDDEN,
                        "Extension.InvalidState",
                        "init/error is only allowed during Init",
                    )
                ext.init_errors.append(record)
            else:
                ext.exit_errors.append(record)
            self._cond.notify_all()

    def _handle_runtime(
        self, call: str, request_id: str | None, headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """A Runtime API request: (status, extra headers, body). Raises _Reply for API errors."""
        arrived = time.monotonic()
        runtime = self.runtime
        assert runtime is not None
        if call == runtime_api.NEXT:
            invocation = self._runtime_next(runtime)
            return HTTPStatus.OK, invocation.next_headers(), invocation.payload
        error_type = headers.get(runtime_api.ERROR_TYPE_HEADER)
        with self._cond:
            if call == runtime_api.INIT_ERROR:
                if runtime.init_done_at is not None:
                    raise _Reply(HTTPStatus.FORBIDDEN, "InvalidStateTransition", "init/error is only allowed during Init")
                error = runtime_api.invoke_error(error_type, body)
                runtime.init_errors.append({"error_type": error_type or error.error_type, "body": _parse_body(body)})
            else:
                invocation = self._invocations.get(request_id or "")
                if invocation is None or invocation.delivered_at is None:
                    raise _Reply(HTTPStatus.BAD_REQUEST, "InvalidRequestID", f"no invocation {request_id!r} in progress")
                if invocation.answered_at is not None:
                    raise _Reply(HTTPStatus.FORBIDDEN, "InvalidStateTransition",
                                 f"invocation {request_id!r} was already answered")
                invocation.answered_at = arrived
                if call == runtime_api.ERROR:
                    invocation.error = runtime_api.invoke_error(error_type, body)
                    invocation.response = body
                elif len(body) > runtime_api.MAX_RESPONSE_BYTES:
                    message = f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload size"
                    invocation.error = InvokeError("Function.ResponseSizeTooLarge", message,
                                                   {"errorType": "Function.ResponseSizeTooLarge", "errorMessage": message})
                    self._cond.notify_all()
                    raise _Reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "RequestEntityTooLarge", message)
                else:
                    invocation.response = body
                if runtime.current is invocation:
                    runtime.current = None
            self._cond.notify_all()
        return HTTPStatus.ACCEPTED, {}, b'{"status":"OK"}'

    def _runtime_next(self, runtime: Runtime) -> Invocation:
        with self._cond:
            if runtime.init_errors and runtime.init_done_at is None:
                raise _Reply(HTTPStatus.FORBIDDEN, "InvalidStateTransition", "Init failed: the runtime posted init/error")
            runtime._next_calls += 1
            if runtime.init_done_at is None:
                runtime.init_done_at = time.monotonic()
                self._cond.notify_all()  # Init may be over: wake wait_init
            while not self._runtime_queue:
                # Shutdown leaves the call pending, as Lambda does: the runtime gets SIGTERM, not an answer.
                if self._closed or runtime._exited.is_set():
                    raise _Closed()
                self._cond.wait(1.0)  # bounded; close() and the runtime's exit also notify
            invocation = self._runtime_queue.popleft()
            invocation.delivered_at = time.monotonic()
            runtime.current = invocation
            self._cond.notify_all()
            return invocation

    # -- helpers -----------------------------------------------------------------------

    def _by_identifier(self, identifier: str | None) -> Extension | None:
        if not identifier:
            return None
        return next((e for e in self.extensions if e.identifier == identifier), None)

    def _record(self, call: str, extension: str | None, status: int) -> None:
        with self._cond:
            self.calls.append(ApiCall(time.monotonic(), extension, call, status))

    def _track_connection(self, conn: Any, *, add: bool) -> None:
        with self._cond:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _raise_if_crashed(self) -> None:
        crashed = [e for e in self.extensions if e._exited.is_set()]
        if crashed:
            details = ", ".join(f"{e.name} (exit {e.process and e.process.returncode})" for e in crashed)
            raise ExtensionCrashed(f"extension exited: {details}" + self._outputs(crashed))

    def _read_output(self, ext: _Process) -> None:
        assert ext.process is not None and ext.process.stdout is not None
        for line in ext.process.stdout:
            ext._append_output(line)
            if self.echo:
                with _print_lock:
                    print(f"[{ext.name}] {line}", end="" if line.endswith("\n") else "\n", flush=True)
        ext.process.stdout.close()

    def _watch_exit(self, ext: _Process) -> None:
        assert ext.process is not None
        ext.process.wait()
        with self._cond:
            ext.exited_at = time.monotonic()
            ext._exited.set()
            self._cond.notify_all()

    def _wait_for(self, pending: Callable[[], list[Any]], deadline: float, message: str) -> None:
        """With the condition held: wait until pending() is empty, else TimeoutError naming what still is."""
        while waiting := pending():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(message + ", ".join(p.name for p in waiting) + self._outputs(waiting))
            self._cond.wait(remaining)

    @staticmethod
    def _outputs(extensions: list[Any], limit: int = 4000) -> str:
        parts = []
        for ext in extensions:
            text = ext.output
            if len(text) > limit:
                text = "..." + text[-limit:]
            parts.append(f"\n--- output of {ext.name} ---\n{text.rstrip()}")
        return "".join(parts)


def _init_settled(ext: Extension | Runtime) -> bool:
    return ext.init_done_at is not None or bool(ext.init_errors) or ext._exited.is_set()


def _parse_events(body: bytes) -> list[str]:
    try:
        data = json.loads(body or b"null")
    except ValueError:
        raise _Reply(HTTPStatus.BAD_REQUEST, "InvalidRequestFormat", "body is not JSON") from None
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise _Reply(
            HTTPStatus.BAD_REQUEST,
            "InvalidRequestFormat",
            'body must be {"events": [...]}',
        )
    invalid = [e for e in events if e not in VALID_EVENTS]
    if invalid:
        raise _Reply(
            HTTPStatus.BAD_REQUEST,
            "Extension.InvalidEventType",
            f"invalid events {invalid}; allowed: {sorted(VALID_EVENTS)}",
        )
    return events


def _parse_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")


def _kill(ext: _Process, sig: int = signal.SIGKILL) -> None:
    """Signal the process's whole group (SIGKILL by default, as Lambda ends the sandbox)."""
    if ext.process is None:
        return
    try:
        os.killpg(ext.process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _epoch_ms() -> int:
    return int(time.time() * 1000)


def _trace_id() -> str:
    root = f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    return f"Root={root};Parent={uuid.uuid4().hex[:16]};Sampled=0"


# The emulator's name from when it served the Extensions API only; existing callers keep using it.
ExtensionsApiEmulator = LambdaEmulator
