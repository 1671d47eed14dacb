"""Parts of the local Lambda emulator's lifecycle: a runtime's environment, an invoke's result, shutdown.

RIE's shutdown (classic rapid/shutdown.go; Managed Instances the same with a fixed runtime grace): the
runtime gets SIGTERM and a share of the budget, then SIGKILL (SIGKILL at once when no extension is
registered); extensions subscribed to SHUTDOWN get the event, whose deadlineMs is the start plus the
whole budget, and are killed at that deadline; the others are killed at once.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from . import runtime_api

from .emulator_model import (
    ACCOUNT_ID,
    MANAGED_INSTANCES,
    MI_RUNTIME_SHUTDOWN,
    ON_DEMAND,
    RUNTIME_SHUTDOWN_SHARE,
    epoch_ms,
    kill,
)

from .runtime_api import Invocation, InvokeError, InvokeResult

if TYPE_CHECKING:
    from .extensions_api import LambdaEmulator


def common_environment(self: LambdaEmulator, env: dict[str, str], *, runtime: bool = False) -> dict[str, str]:
    """`env` plus what Lambda (as the pinned RIE was seen to, tests/test_parity.py) sets for the runtime and
    the extensions, unless `env` has it: the function's name, version and memory size; the log group and
    stream (for the runtime only on Managed Instances); on Managed Instances also the account id, the
    default region and the log format, and always the initialization type and AWS_LAMBDA_MAX_CONCURRENCY."""
    defaults = {"AWS_LAMBDA_FUNCTION_NAME": self.function_name, "AWS_LAMBDA_FUNCTION_VERSION": self.function_version,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_size)}
    if runtime or not self.managed_instances:
        defaults.update({"AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.function_name}",
                         "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream})
    if self.managed_instances:
        defaults.update({"AWS_ACCOUNT_ID": ACCOUNT_ID, "AWS_DEFAULT_REGION": self.region, "AWS_LAMBDA_LOG_FORMAT": "json"})
    full_env = {**defaults, **env}
    if self.managed_instances:
        full_env["AWS_LAMBDA_INITIALIZATION_TYPE"] = MANAGED_INSTANCES
        full_env["AWS_LAMBDA_MAX_CONCURRENCY"] = str(self.max_concurrency)
    return full_env


def runtime_environment(self: LambdaEmulator, env: dict[str, str], cwd: str | None) -> dict[str, str]:
    """`env` plus what Lambda sets for every runtime, unless `env` has it (see launch_runtime)."""
    defaults = {
        "_HANDLER": self.handler,
        "LAMBDA_TASK_ROOT": os.path.abspath(cwd or os.getcwd()),
        "AWS_REGION": self.region,
        "AWS_DEFAULT_REGION": self.region,
        "AWS_LAMBDA_INITIALIZATION_TYPE": ON_DEMAND,
    }
    return common_environment(self, {**defaults, **env}, runtime=True)


def stop_environment(self: LambdaEmulator, reason: str, timeout: float) -> dict[str, float | None]:
    """Shut the environment down as RIE does (see LambdaEmulator.shutdown); exit times by extension."""
    started = time.monotonic()
    deadline = started + timeout
    event = {"eventType": "SHUTDOWN", "deadlineMs": epoch_ms() + int(timeout * 1000), "shutdownReason": reason}
    with self._cond:
        runtime = self.runtime
        registered = any(e.identifier for e in self.extensions)
    if runtime is not None and not runtime._exited.is_set():
        grace = min(MI_RUNTIME_SHUTDOWN, timeout) if self.managed_instances else RUNTIME_SHUTDOWN_SHARE * timeout
        if registered:
            kill(runtime, signal.SIGTERM)
        if not registered or runtime.wait_exit(grace) is None:
            kill(runtime)
        runtime.wait_exit(2.0)
    sent = time.monotonic()
    with self._cond:
        live = [e for e in self.extensions if not e._exited.is_set()]
        subscribers = [e for e in live if "SHUTDOWN" in e.events]
        for ext in subscribers:
            ext._queue.append(event)
        self._cond.notify_all()
    for ext in live:
        if ext not in subscribers:
            kill(ext)
    for ext in subscribers:
        ext._exited.wait(max(0.0, deadline - time.monotonic()))
    result: dict[str, float | None] = {}
    for ext in self.extensions:
        if ext not in live:
            result[ext.name] = 0.0
        elif ext in subscribers and ext._exited.is_set() and ext.exited_at is not None:
            result[ext.name] = max(0.0, ext.exited_at - sent)
        else:
            result[ext.name] = None  # killed
        kill(ext)  # also ends anything left in its process group
    for ext in self.extensions:
        ext.wait_exit(2.0)
    return result


def invoke_result(self: LambdaEmulator, request_id: str, invocation: Invocation | None, error: InvokeError | None,
            ext_event: dict[str, Any], payload: bytes | None = None) -> InvokeResult:
    """(Lock held) the InvokeResult; the first result after an INIT carries its duration."""
    if payload is None:
        assert invocation is not None
        if invocation.response is not None:
            payload = invocation.response  # the function's response, or its error document as posted
        else:
            assert invocation.error is not None  # the runtime exited, or its response was too large
            payload = json.dumps({"errorType": invocation.error.error_type,
                                  "errorMessage": invocation.error.message}).encode()
    now = time.monotonic()
    delivered = invocation.delivered_at if invocation and invocation.delivered_at is not None else now
    answered = invocation.answered_at if invocation and invocation.answered_at is not None else now
    targets = [e for e in self.extensions if "INVOKE" in e.events]
    done_at = max([answered, *(e._last_next_at or 0.0 for e in targets)])
    init_duration = None
    if not self._init_reported and invocation is not None:
        init_duration, self._init_reported = self.init_duration, True
    return InvokeResult(
        request_id=request_id,
        payload=payload,
        response=runtime_api.parse_json(payload),
        error=error,
        duration=max(0.0, answered - delivered),
        init_duration=init_duration,
        post_runtime_duration=max(0.0, done_at - answered) if error is None or not error.error_type.startswith("Sandbox.") else 0.0,
        event=ext_event,
    )


def stop_serving(server, lock, connections: set) -> None:
    """The API stops: no more connections accepted, and open ones (blocked event/next and invocation/next calls)
    shut with no answer, as when the container goes away under the processes (which run on: close() kills them
    first). Keep-alive connections would otherwise keep their handler threads alive."""
    if server is None:
        return
    server.shutdown()
    server.server_close()
    with lock:
        open_connections = list(connections)
    for conn in open_connections:
        try:
            conn.shutdown(2)  # socket.SHUT_RDWR
        except OSError:
            pass
