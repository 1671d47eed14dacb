"""What the local Lambda emulator's parts share: its modes, constants, errors and small helpers.

The emulator follows AWS's Runtime Interface Emulator (aws/aws-lambda-runtime-interface-emulator, "RIE")
where it can be observed from inside the environment: the classic tree (internal/lambda) for on-demand
functions, the Managed Instances tree (internal/lambda-managed-instances) when a maximum concurrency is set.
"""

from __future__ import annotations

import json
import signal
import os
import time
import uuid
from http import HTTPStatus
from typing import Any, NamedTuple

BASE_PATH = "/2020-01-01/extension"
ACCOUNT_ID = "123456789012"

ON_DEMAND = "on-demand"
# RIE's interop.InitializationType in the Managed Instances tree, set for the runtime and every extension.
MANAGED_INSTANCES = "lambda-managed-instances"

# SHUTDOWN reasons as RIE sends them. Classic: SIGTERM to RIE resets with "SandboxTerminated", a function
# timeout with "Timeout". Managed Instances: "spindown" on SIGTERM, "failure" after a crash.
SANDBOX_TERMINATED = "SandboxTerminated"
TIMEOUT = "Timeout"
SPINDOWN = "spindown"
SHUTDOWN_TIMEOUT = 2.0  # RIE's reset / shutdown budget (resetDefaultTimeoutMs, defaultShutdownTimeout)
RUNTIME_SHUTDOWN_SHARE = 0.3  # classic: the runtime's share of that budget between SIGTERM and SIGKILL
MI_RUNTIME_SHUTDOWN = 0.6  # Managed Instances: the runtime's fixed grace (defaultRuntimeShutdownTimeout)

# Never in an extension's environment (rapidcore/env in both RIE trees: the runtime-only variables, the
# X-Ray ones, extensionExcludedKeys), nor any variable whose name starts with "_". The pinned RIE was seen
# (tests/test_parity.py) to give extensions the log group and stream names, and AWS_LAMBDA_MAX_CONCURRENCY
# on Managed Instances, although the source's comments list them as runtime-only: they are passed on.
RUNTIME_ONLY_ENV = frozenset({
    "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "_HANDLER", "AWS_EXECUTION_ENV",
    "AWS_XRAY_DAEMON_ADDRESS", "AWS_XRAY_CONTEXT_MISSING", "_AWS_XRAY_DAEMON_ADDRESS", "_AWS_XRAY_DAEMON_PORT",
    "_LAMBDA_TELEMETRY_LOG_FD", "_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET",
})


def extension_env(env: dict[str, str]) -> dict[str, str]:
    """`env` without what RIE keeps from extensions (RUNTIME_ONLY_ENV and every "_"-prefixed name)."""
    return {k: v for k, v in env.items() if k not in RUNTIME_ONLY_ENV and not k.startswith("_")}


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


class InvokeTimedOut(EmulatorError, TimeoutError):
    """An invoke without a runtime ran past its timeout; the environment was reset as on a timeout."""


class ApiCall(NamedTuple):
    """One request to the API, recorded in arrival order (for ordering assertions)."""

    at: float  # time.monotonic() when the request arrived
    extension: str | None  # extension name, when the request could be attributed (None for the runtime)
    # "register", "event/next", "init/error", "exit/error", "runtime/invocation/next",
    # "runtime/invocation/response", "runtime/invocation/error", "runtime/init/error" or the raw path
    call: str
    status: int


class Closed(Exception):
    """Raised inside a blocked next call when the emulator closes or the caller's process is gone."""


class Reply(Exception):
    """An API error response, raised from deep inside request handling."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type

    @property
    def payload(self) -> dict[str, str]:
        return {"errorMessage": str(self), "errorType": self.error_type}


def forbidden(error_type: str, message: str) -> Reply:
    """RIE answers almost every Extensions API error with 403 and a JSON error document."""
    return Reply(HTTPStatus.FORBIDDEN, error_type, message)


def state_error(state: str, target: str, name: str) -> Reply:
    """RIE's failed agent state transition, with its message."""
    return forbidden("Extension.InvalidExtensionState",
                     f"State transition from {state} to {target} failed for extension {name}. "
                     "Error: State transition is not allowed")


def parse_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")


def kill(proc: Any, sig: int = signal.SIGKILL) -> None:
    """Signal a launched process's whole group (SIGKILL by default, as Lambda ends the sandbox)."""
    if proc.process is None:
        return
    try:
        os.killpg(proc.process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def epoch_ms() -> int:
    return int(time.time() * 1000)


def new_trace_id() -> str:
    """An X-Ray trace header, for callers that want invoke(trace_id=...) to look like Lambda's."""
    root = f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    return f"Root={root};Parent={uuid.uuid4().hex[:16]};Sampled=0"
