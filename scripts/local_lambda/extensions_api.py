"""A local emulator of Lambda's Extensions API (``/2020-01-01/extension``) and Runtime API
(``/2018-06-01/runtime``), both served on the one address in AWS_LAMBDA_RUNTIME_API, as Lambda does.

Written from AWS's published API reference and kept in line with AWS's Runtime Interface Emulator
(RIE; see emulator_model). It launches extension executables as real subprocesses, as Lambda does from
``/opt/extensions``, optionally the function's runtime process too, and drives them through the
Init -> Invoke -> Shutdown lifecycle. Every wait is bounded so a misbehaving extension or runtime can
fail a test but never hang it.

Modes, as RIE has them:
- on-demand (the default, RIE's classic tree): one invoke at a time; a function timeout resets the
  environment (SHUTDOWN ``Timeout``, every process killed) and the next invoke runs a new INIT.
- Lambda Managed Instances (``max_concurrency=N``): the runtime gets AWS_LAMBDA_MAX_CONCURRENCY=N, the
  runtime and extensions AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances; extensions may
  register for SHUTDOWN only and get no INVOKE; invoke() may run from up to N threads at once; a
  timeout fails that invoke only.

INIT starts when launch() / launch_runtime() start the processes. RIE starts it at its own start in
Managed Instances mode and on the first invoke in classic mode; that only moves when the processes
start, and the first invoke's result carries the Init duration either way.

Without a runtime (``launch_runtime`` never called) the emulator drives extensions alone: the
Runtime API paths answer 404 and ``invoke()`` only delivers INVOKE to the extensions.

The parts: emulator_model (modes, errors), emulator_processes (launched processes), emulator_http (the
server), emulator_requests (what each API call does); this module holds the lifecycle.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import deque
from typing import Any, Callable

from . import runtime_api
from .emulator_http import ROUTES, Server
from .emulator_model import (
    ACCOUNT_ID,
    BASE_PATH,
    MANAGED_INSTANCES,
    ON_DEMAND,
    RUNTIME_ONLY_ENV,
    SANDBOX_TERMINATED,
    SHUTDOWN_TIMEOUT,
    SPINDOWN,
    TIMEOUT,
    ApiCall,
    EmulatorError,
    ExtensionCrashed,
    InitFailed,
    InvokeTimedOut,
    RuntimeExited,
    epoch_ms,
    extension_env,
    kill,
    new_trace_id,
)
from .emulator_processes import Extension, Process, Runtime, follow, outputs, popen
from .emulator_requests import ApiRequests
from .emulator_lifecycle import (common_environment, invoke_result, runtime_environment, stop_environment,
                                 stop_serving)
from .runtime_api import Invocation, InvokeError, InvokeResult

__all__ = [
    "ACCOUNT_ID", "BASE_PATH", "ROUTES", "RUNTIME_ONLY_ENV", "ApiCall", "EmulatorError", "Extension",
    "ExtensionCrashed", "ExtensionsApiEmulator", "InitFailed", "InvokeTimedOut", "LambdaEmulator", "Runtime",
    "InvokeResult", "RuntimeExited", "new_trace_id",
]


class LambdaEmulator(ApiRequests):
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

    Processes from before a reset stay readable in ``retired`` (extensions) and ``retired_runtimes``.
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
        max_concurrency: int | None = None,
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError("max_concurrency must be 1 or more")
        self.function_name = function_name
        self.function_version = function_version
        self.handler = handler
        self.region = region or os.environ.get("AWS_REGION") or "us-east-1"
        self.memory_size = memory_size
        self.echo = echo
        # Holds register answers back, so tests can catch an extension before its port is open.
        self.register_delay = register_delay
        # Managed Instances mode when set (as RIE switches on AWS_LAMBDA_MAX_CONCURRENCY).
        self.max_concurrency = max_concurrency
        # One log stream per environment, named as Lambda names them; the runtime and the extensions see it.
        self.log_stream = time.strftime("%Y/%m/%d/", time.gmtime()) + f"[{function_version}]{uuid.uuid4().hex}"
        self.initialization_type = ON_DEMAND if max_concurrency is None else MANAGED_INSTANCES
        self.extensions: list[Extension] = []
        self.runtime: Runtime | None = None
        self.retired: list[Extension] = []
        self.retired_runtimes: list[Runtime] = []
        self.resets: list[str] = []  # the reason of each environment reset, in order
        self.calls: list[ApiCall] = []
        # One condition guards all lifecycle state; waits release it, so a blocked
        # event/next never stalls other requests.
        self._cond = threading.Condition()
        self._closed = False
        self._failing_events = False  # fail_events(): event/next answers 500, as Lambda does when an extension must exit
        self._shut_down = False
        self._needs_init = False  # after a reset: the next invoke runs a new INIT first
        self._init_reported = False  # the current INIT's duration went out with an invoke's result
        self._in_flight = 0
        self._runtime_queue: deque[Invocation] = deque()
        self._invocations: dict[str, Invocation] = {}
        # What launch() and launch_runtime() were given, to start the same processes after a reset.
        self._extension_specs: list[tuple[str, dict[str, str], str | None, bool]] = []
        self._runtime_spec: tuple[list[str], dict[str, str], str | None, str, bool] | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[Any] = set()

    @property
    def managed_instances(self) -> bool:
        return self.initialization_type == MANAGED_INSTANCES

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
        self._server = Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="lambda-api", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()  # wakes blocked event/next and invocation/next calls
        processes: list[Process] = [*self.extensions, *([self.runtime] if self.runtime else [])]
        for proc in processes:
            kill(proc)
        for proc in processes:
            proc.wait_exit(2.0)
        stop_serving(self._server, self._cond, self._connections)
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def go_away(self) -> None:
        """The API vanishes under the processes (a container removed right after an invoke): see stop_serving."""
        stop_serving(self._server, self._cond, self._connections)

    def __enter__(self) -> LambdaEmulator:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- Init ------------------------------------------------------------------------

    def launch(self, executable: str, env: dict[str, str], *, capture_output: bool = True,
               cwd: str | None = None) -> Extension:
        """Start an extension executable with `env` as RIE would pass it on, plus AWS_LAMBDA_RUNTIME_API.

        As RIE builds an extension's environment from the variables common to the runtime and the
        extensions, the runtime-only ones in `env` are dropped (RUNTIME_ONLY_ENV, "_"-prefixed names) and
        the common ones added (common_environment). Point it at its files with CACHE_EXTENSION_CONFIG, say.
        """
        name = os.path.basename(executable)
        full_env = common_environment(self, extension_env(env))
        with self._cond:
            if self._closed:
                raise RuntimeError("emulator is closed")
            if self.runtime is not None:
                raise RuntimeError("extensions start before the runtime, as on Lambda: launch them first")
            if any(e.name == name for e in self.extensions):
                # /opt/extensions can't hold two files of the same name either.
                raise ValueError(f"an extension named {name!r} was already launched")
        ext = self._start_extension(executable, full_env, cwd, capture_output)
        self._extension_specs.append((executable, full_env, cwd, capture_output))
        return ext

    def _start_extension(self, executable: str, env: dict[str, str], cwd: str | None,
                         capture_output: bool) -> Extension:
        ext = Extension(os.path.basename(executable), time.monotonic())
        with self._cond:
            self.extensions.append(ext)  # listed before Popen so that a very fast register finds it
        try:
            ext.process = popen([executable], {**env, "AWS_LAMBDA_RUNTIME_API": self.address}, cwd, capture_output)
        except BaseException:
            with self._cond:
                self.extensions.remove(ext)
            raise
        follow(ext, capture_output, self.echo, self._on_exit)
        return ext

    def launch_runtime(self, command: list[str], env: dict[str, str], *, cwd: str | None = None,
                       name: str = "runtime", capture_output: bool = True, register_timeout: float = 10.0) -> Runtime:
        """Start the function's runtime process, as Lambda starts its runtime's bootstrap.

        Lambda starts the runtime once every extension has registered (Extension init, then Runtime
        init): this waits for that, up to `register_timeout` seconds (an extension that failed or
        exited does not hold it back; wait_init() reports it). The process gets `env` plus what Lambda
        sets for every runtime, unless `env` already has it: AWS_LAMBDA_RUNTIME_API (always this
        emulator), _HANDLER, LAMBDA_TASK_ROOT (`cwd`), AWS_LAMBDA_FUNCTION_NAME / _VERSION /
        _MEMORY_SIZE, AWS_REGION, AWS_DEFAULT_REGION, AWS_LAMBDA_LOG_GROUP_NAME / _STREAM_NAME,
        AWS_LAMBDA_INITIALIZATION_TYPE; on Managed Instances always AWS_LAMBDA_MAX_CONCURRENCY and
        AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances. Build `env` with
        local_lambda.aws.lambda_environment for the rest (credentials, AWS_SESSION_TOKEN, TZ, LANG, the
        AWS endpoint).
        """
        full_env = runtime_environment(self, env, cwd)
        with self._cond:
            if self._closed or self._shut_down:
                raise RuntimeError("emulator is closed or already shut down")
            if self.runtime is not None:
                raise RuntimeError("a runtime was already launched: one per execution environment")
        runtime = self._start_runtime(list(command), full_env, cwd, name, capture_output, register_timeout)
        self._runtime_spec = (list(command), full_env, cwd, name, capture_output)
        return runtime

    def _start_runtime(self, command: list[str], env: dict[str, str], cwd: str | None, name: str,
                       capture_output: bool, register_timeout: float) -> Runtime:
        deadline = time.monotonic() + register_timeout
        with self._cond:
            self._wait_for(lambda: [e for e in self.extensions if e.identifier is None and not e.init_settled],
                           deadline, f"extensions not registered after {register_timeout:.1f}s: ")
            runtime = Runtime(name, command, time.monotonic())
            self.runtime = runtime  # before Popen, so that a very fast invocation/next finds it
        try:
            runtime.process = popen(command, {**env, "AWS_LAMBDA_RUNTIME_API": self.address}, cwd, capture_output)
        except BaseException:
            with self._cond:
                self.runtime = None
            raise
        follow(runtime, capture_output, self.echo, self._on_exit)
        return runtime

    def wait_init(self, timeout: float = 10.0) -> None:
        """Block until every extension (and the runtime, if launched) finished Init, failed it, or exited."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._wait_for(lambda: [p for p in [*self.extensions, self.runtime] if p is not None and not p.init_settled],
                           deadline, f"Init not finished after {timeout:.1f}s, waiting for: ")
            failed: list[Process] = [p for p in [*self.extensions, self.runtime]
                                     if p is not None and (p.init_errors or p.init_done_at is None)]
        if not failed:
            return
        errors: list[dict[str, Any]] = []
        for proc in failed:
            key = "runtime" if isinstance(proc, Runtime) else "extension"
            for err in proc.init_errors:
                errors.append({key: proc.name, **err})
            # An extension that reported init/error and then exited did what Lambda asks: one error, its own.
            if proc.init_done_at is None and proc._exited.is_set() and not proc.init_errors:
                code = proc.wait_exit(0)  # also drains its output
                errors.append({key: proc.name, "error_type": "Runtime.ExitError" if key == "runtime" else "Extension.Crash",
                               "body": f"exited with code {code} before Init finished"})
        summary = "; ".join(f"{e.get('extension') or e.get('runtime')}: {e['error_type']}" for e in errors)
        raise InitFailed(f"Init failed: {summary}" + outputs(self.echo, failed), errors)

    @property
    def init_duration(self) -> float | None:
        """Seconds from the first launch to the end of the current Init (None while Init is not over)."""
        processes: list[Any] = [*self.extensions, *([self.runtime] if self.runtime else [])]
        if not processes or any(p.init_done_at is None for p in processes):
            return None
        return max(p.init_done_at for p in processes) - min(p.launched_at for p in processes)

    def _reinit(self, timeout: float) -> None:
        """After a reset: start the same extensions and runtime again (a new INIT) and wait for it."""
        with self._cond:
            if not self._needs_init:
                return
            self._needs_init = False
            self._init_reported = False
            self.retired.extend(self.extensions)
            self.extensions = []
            if self.runtime is not None:
                self.retired_runtimes.append(self.runtime)
                self.runtime = None
            self._runtime_queue.clear()
        deadline = time.monotonic() + timeout
        for executable, env, cwd, capture_output in self._extension_specs:
            self._start_extension(executable, env, cwd, capture_output)
        if self._runtime_spec is not None:
            command, env, cwd, name, capture_output = self._runtime_spec
            self._start_runtime(command, env, cwd, name, capture_output, max(0.0, deadline - time.monotonic()))
        self.wait_init(max(0.0, deadline - time.monotonic()))

    # -- Invoke -----------------------------------------------------------------------

    def invoke(self, event: Any = None, *, request_id: str | None = None, timeout: float = 10.0,
               trace_id: str | None = None, init_timeout: float = 10.0) -> Any:
        """One invocation, with `timeout` as the function's timeout (every wait is bounded by it).

        With a runtime: `event` (a dict, list, ... sent as JSON; bytes sent as they are; None is
        ``{}``) goes to the runtime and INVOKE to the subscribed extensions, with the same request id.
        Returns an InvokeResult once the runtime has answered and every subscriber is back in
        event/next. A function error is a result with `error` set.

        `trace_id` (an X-Amzn-Trace-Id value, e.g. new_trace_id()) is what RIE takes from the invoke's
        X-Amzn-Trace-Id header: without one, as RIE, INVOKE has no ``tracing`` and invocation/next no
        Lambda-Runtime-Trace-Id.

        A timeout (the runtime's answer, or an extension's next event/next, later than `timeout`) is
        reported as RIE reports it, a result and not an exception: ``result.timed_out``, error type
        Sandbox.Timedout, payload RIE's body (``Task timed out after N.NN seconds``; on Managed
        Instances the JSON error document). In on-demand mode the environment is reset first, as RIE
        does: SHUTDOWN with reason ``Timeout`` (2 s), every process killed; the next invoke starts the
        same extensions and runtime again and waits up to `init_timeout` for their INIT.

        Without a runtime: sends INVOKE to the subscribed extensions, waits until each is back in
        event/next, and returns the INVOKE event (a dict); a timeout resets the same way and raises
        InvokeTimedOut (a TimeoutError). A str as first argument is taken as the request id
        (``invoke("req-1")``), as before the Runtime API existed.
        """
        if isinstance(event, str):
            request_id, event = event, None
        if self._needs_init:
            self._reinit(init_timeout)
        request_id = request_id or runtime_api.new_request_id()
        deadline_ms = epoch_ms() + int(timeout * 1000)
        ext_event: dict[str, Any] = {"eventType": "INVOKE", "deadlineMs": deadline_ms, "requestId": request_id,
                                     "invokedFunctionArn": self.function_arn}
        if trace_id:
            ext_event["tracing"] = {"type": "X-Amzn-Trace-Id", "value": trace_id}
        deadline = time.monotonic() + timeout
        with self._cond:
            runtime = self._check_ready(request_id)
            if self.managed_instances and self._in_flight >= (self.max_concurrency or 1):
                # RIE routes an invoke to an idle runtime worker or fails it at once: never more than N in flight.
                message = f"no idle runtime: {self._in_flight} invokes in flight (max concurrency {self.max_concurrency})"
                error = InvokeError("Runtime.Unavailable", message, {"errorType": "Runtime.Unavailable", "errorMessage": message})
                return invoke_result(self, request_id, None, error, ext_event, json.dumps(error.body).encode())
            targets = [e for e in self.extensions if "INVOKE" in e.events]
            for ext in targets:
                ext._queue.append(ext_event)
            self._cond.notify_all()
            if runtime is None:
                if self._wait_idle(targets, deadline):
                    return ext_event
                invocation = None
            else:
                invocation = Invocation(request_id, runtime_api.encode_event(event), deadline_ms, self.function_arn, trace_id)
                self._invocations[request_id] = invocation
                self._runtime_queue.append(invocation)
                self._in_flight += 1
                try:
                    answered = self._wait_answer(runtime, invocation, deadline) and self._wait_idle(targets, deadline)
                finally:
                    self._in_flight -= 1
                if answered:
                    return invoke_result(self, request_id, invocation, invocation.error, ext_event)
                invocation.timed_out = True
                if invocation in self._runtime_queue:
                    self._runtime_queue.remove(invocation)
        # Timed out: the lock is released, the reset waits for processes.
        if not self.managed_instances:
            self._reset(TIMEOUT)
        if invocation is None:
            raise InvokeTimedOut(f"invoke {request_id}: not every extension was back in event/next after {timeout:.1f}s")
        payload, error = runtime_api.timeout_error(timeout, self.managed_instances)
        with self._cond:
            return invoke_result(self, request_id, invocation, error, ext_event, payload)

    def _check_ready(self, request_id: str) -> Runtime | None:
        """(Lock held) raise unless an invoke may start now; the runtime, if any."""
        if self._closed or self._shut_down:
            raise RuntimeError("emulator is closed or already shut down")
        runtime = self.runtime
        not_ready = [p.name for p in [*self.extensions, runtime] if p is not None and p.init_done_at is None]
        if not_ready:
            raise RuntimeError(f"Init not finished for {not_ready}; call wait_init() first")
        self._raise_if_crashed()
        if runtime is not None and runtime._exited.is_set():
            raise RuntimeExited(f"runtime exited (code {runtime.process and runtime.process.returncode})"
                                + outputs(self.echo, [runtime]))
        if runtime is not None and request_id in self._invocations:
            raise ValueError(f"request id {request_id!r} was already used")
        return runtime

    def _wait_answer(self, runtime: Runtime, invocation: Invocation, deadline: float) -> bool:
        """(Lock held) wait for the runtime's answer; False at the deadline."""
        while invocation.answered_at is None:
            if runtime._exited.is_set():
                # Lambda answers Runtime.ExitError and throws the environment away.
                invocation.error = runtime_api.exit_error(invocation.request_id,
                                                          runtime.process and runtime.process.returncode)
                invocation.answered_at = runtime.exited_at or time.monotonic()
                if invocation.delivered_at is None:
                    invocation.delivered_at = invocation.answered_at
                return True
            self._raise_if_crashed()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._cond.wait(min(remaining, 1.0))
        return True

    def _wait_idle(self, targets: list[Extension], deadline: float) -> bool:
        """(Lock held) wait until every target extension is back in event/next; False at the deadline."""
        while True:
            self._raise_if_crashed()
            if all(e.idle for e in targets):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._cond.wait(min(remaining, 1.0))

    def fail_events(self) -> None:
        """From now on event/next answers 500 (blocked calls included): the API's "you must exit" answer."""
        with self._cond:
            self._failing_events = True
            self._cond.notify_all()

    # -- Shutdown ----------------------------------------------------------------------

    def shutdown(self, reason: str | None = None, *, timeout: float = SHUTDOWN_TIMEOUT) -> dict[str, float | None]:
        """Stop the runtime, send SHUTDOWN, give extensions until `timeout` seconds from now, kill the rest.

        As RIE does on SIGTERM: the reason is ``SandboxTerminated`` (``spindown`` on Managed Instances);
        the SHUTDOWN event's deadlineMs is now + `timeout`. The runtime goes first: SIGTERM, then SIGKILL
        after 30% of `timeout` (0.6 s on Managed Instances), or SIGKILL at once when no extension is
        registered (its exit time is in ``runtime.exited_at``). Extensions not subscribed to SHUTDOWN
        are killed at once. Returns seconds from SHUTDOWN to each extension's exit (0.0 if it had already
        exited), or None for those that had to be killed.
        """
        with self._cond:
            self._shut_down = True
        if reason is None:
            reason = SPINDOWN if self.managed_instances else SANDBOX_TERMINATED
        return stop_environment(self, reason, timeout)

    def _reset(self, reason: str) -> None:
        """Throw the environment away as RIE's reset does; the next invoke runs a new INIT."""
        with self._cond:
            self.resets.append(reason)
            self._needs_init = True
        stop_environment(self, reason, SHUTDOWN_TIMEOUT)

    # -- helpers -----------------------------------------------------------------------

    def _record(self, call: str, extension: str | None, status: int) -> None:
        with self._cond:
            self.calls.append(ApiCall(time.monotonic(), extension, call, status))

    def _track_connection(self, conn: Any, *, add: bool) -> None:
        with self._cond:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _on_exit(self, proc: Process) -> None:
        with self._cond:
            proc.exited_at = time.monotonic()
            proc._exited.set()
            self._cond.notify_all()

    def _raise_if_crashed(self) -> None:
        crashed = [e for e in self.extensions if e._exited.is_set()]
        if crashed:
            details = ", ".join(f"{e.name} (exit {e.process and e.process.returncode})" for e in crashed)
            raise ExtensionCrashed(f"extension exited: {details}" + outputs(self.echo, crashed))

    def _wait_for(self, pending: Callable[[], list[Any]], deadline: float, message: str) -> None:
        """With the condition held: wait until pending() is empty, else TimeoutError naming what still is."""
        while waiting := pending():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(message + ", ".join(p.name for p in waiting) + outputs(self.echo, waiting))
            self._cond.wait(remaining)


# The emulator's name from when it served the Extensions API only; existing callers keep using it.
ExtensionsApiEmulator = LambdaEmulator
