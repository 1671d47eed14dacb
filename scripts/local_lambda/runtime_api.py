"""The Runtime API half of the local Lambda emulator (``/2018-06-01/runtime``).

Written from AWS's published API reference. The emulator in ``extensions_api`` serves this API and the
Extensions API on one address, as Lambda does; this module holds what is specific to the Runtime API:
its routes, one invocation's bookkeeping, and what ``invoke()`` returns.

    GET  /2018-06-01/runtime/invocation/next                 blocks; 200, the event and its headers
    POST /2018-06-01/runtime/invocation/{requestId}/response 202
    POST /2018-06-01/runtime/invocation/{requestId}/error    202 (Lambda-Runtime-Function-Error-Type)
    POST /2018-06-01/runtime/init/error                      202, during Init only
    GET  /2018-06-01/runtime/restore/next                    200 at once (SnapStart: the restore follows the snapshot)

Answers this emulator chose where the reference is silent: a request id that was never delivered is
400 ``InvalidRequestID``; a second answer for the same invocation is 403 ``InvalidStateTransition``;
a response over Lambda's 6 MB limit is 413 and fails the invocation with
``Function.ResponseSizeTooLarge``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

BASE_PATH = "/2018-06-01/runtime"
MAX_RESPONSE_BYTES = 6 * 1024 * 1024  # Lambda's synchronous response limit

# Names used for the calls in the emulator's call log (ApiCall.call).
NEXT = "runtime/invocation/next"
RESPONSE = "runtime/invocation/response"
ERROR = "runtime/invocation/error"
INIT_ERROR = "runtime/init/error"
RESTORE_NEXT = "runtime/restore/next"  # SnapStart runtimes (awslambdaric) call it at the end of INIT

ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"


def match(path: str) -> tuple[str, str | None, str] | None:
    """(call, request id or None, the one method allowed) for a Runtime API path, or None."""
    if not path.startswith(BASE_PATH + "/"):
        return None
    parts = path[len(BASE_PATH) + 1 :].split("/")
    if parts == ["invocation", "next"]:
        return NEXT, None, "GET"
    if parts == ["init", "error"]:
        return INIT_ERROR, None, "POST"
    if parts == ["restore", "next"]:
        return RESTORE_NEXT, None, "GET"
    if len(parts) == 3 and parts[0] == "invocation" and parts[1] and parts[2] in ("response", "error"):
        return (RESPONSE if parts[2] == "response" else ERROR), unquote(parts[1]), "POST"
    return None


@dataclass
class InvokeError:
    """A failed invocation: the function's error document, as Lambda's Invoke API returns it."""

    error_type: str  # errorType from the document, else the Lambda-Runtime-Function-Error-Type header
    message: str
    body: Any = None  # the parsed error document (or its text)


@dataclass
class InvokeResult:
    """What one invoke() with a runtime returns.

    Durations are in seconds. ``duration`` runs from the event's delivery to the runtime (its
    invocation/next returning) to the runtime's response or error: Lambda's reported Duration.
    ``post_runtime_duration`` is the extensions' time after that, until the last one is back in
    event/next (Lambda's PostRuntimeExtensionsDuration). ``init_duration`` is set on the first invoke
    only: from the first process launched to the end of Init (every extension in event/next and the
    runtime in its first invocation/next).
    """

    request_id: str
    payload: bytes  # the response body, or the error document on failure
    response: Any  # payload parsed as JSON, None if it is not JSON
    error: InvokeError | None
    duration: float
    init_duration: float | None
    post_runtime_duration: float
    event: dict[str, Any] = field(default_factory=dict)  # the INVOKE event the extensions got

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def timed_out(self) -> bool:
        """The function ran past its timeout (error type Sandbox.Timedout)."""
        return self.error is not None and self.error.error_type == TIMED_OUT


TIMED_OUT = "Sandbox.Timedout"


def timeout_error(timeout: float, managed_instances: bool) -> tuple[bytes, InvokeError]:
    """What RIE answers the invoker when the function times out: (payload, error).

    Classic RIE answers 200 with the text ``Task timed out after N.00 seconds``; Managed Instances RIE
    answers 200 with header ``Error-Type: Sandbox.Timedout`` and the JSON error document.
    """
    message = f"Task timed out after {timeout:.2f} seconds"
    document = {"errorType": TIMED_OUT, "errorMessage": message}
    payload = json.dumps(document, separators=(",", ":")).encode() if managed_instances else message.encode()
    return payload, InvokeError(TIMED_OUT, message, document)


class Invocation:
    """One event on its way through the runtime (state guarded by the emulator's lock)."""

    def __init__(self, request_id: str, payload: bytes, deadline_ms: int, function_arn: str,
                 trace_id: str | None) -> None:
        self.request_id = request_id
        self.payload = payload
        self.deadline_ms = deadline_ms
        self.function_arn = function_arn
        self.trace_id = trace_id
        self.queued_at = time.monotonic()
        self.delivered_at: float | None = None
        self.answered_at: float | None = None
        self.response: bytes | None = None  # the body posted to .../response, or to .../error
        self.error: InvokeError | None = None
        self.timed_out = False  # the invoke gave up on it: a late answer is refused

    def next_headers(self) -> dict[str, str]:
        """The headers invocation/next answers with (RIE leaves out Lambda-Runtime-Trace-Id when empty)."""
        headers = {
            "Lambda-Runtime-Aws-Request-Id": self.request_id,
            "Lambda-Runtime-Deadline-Ms": str(self.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": self.function_arn,
        }
        if self.trace_id:
            headers["Lambda-Runtime-Trace-Id"] = self.trace_id
        return headers


def encode_event(event: Any) -> bytes:
    """The invocation payload: bytes as they are, anything else as JSON (None is the empty object)."""
    if isinstance(event, (bytes, bytearray)):
        return bytes(event)
    return json.dumps({} if event is None else event).encode()


def parse_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def invoke_error(header_type: str | None, body: bytes) -> InvokeError:
    """An InvokeError from an invocation/error (or init/error) request."""
    document = parse_json(body)
    if isinstance(document, dict):
        error_type = document.get("errorType") or header_type or "Unhandled"
        message = document.get("errorMessage") or ""
        return InvokeError(str(error_type), str(message), document)
    text = body.decode("utf-8", errors="replace")
    return InvokeError(header_type or "Unhandled", text, text if text else None)


def exit_error(request_id: str, code: int | None) -> InvokeError:
    """What Lambda answers when the runtime process dies during an invoke."""
    message = f"RequestId: {request_id} Error: Runtime exited with error: exit status {code}"
    return InvokeError("Runtime.ExitError", message, {"errorType": "Runtime.ExitError", "errorMessage": message})


def new_request_id() -> str:
    return str(uuid.uuid4())
