"""What each Extensions API and Runtime API call does in the local Lambda emulator.

A mixin of LambdaEmulator (it shares the emulator's one lock and lifecycle state); the HTTP framing is in
emulator_http. Status codes and error types are RIE's where RIE's source shows them: every Extensions API
error is a 403 with a JSON ``{"errorMessage", "errorType"}`` (InvalidRequestFormat,
Extension.InvalidEventType, Extension.InvalidExtensionState, Extension.MissingHeader, ...).

Deliberate difference: a register whose Lambda-Extension-Name is no launched extension answers 403
Extension.InvalidExtensionName; RIE would register it as an "internal" extension, which this emulator
does not model (an external extension's name is its file name).
"""

from __future__ import annotations

import json
import time
import uuid
from http import HTTPStatus
from typing import Any

from . import runtime_api
from .emulator_http import document
from .emulator_model import MANAGED_INSTANCES, ACCOUNT_ID, Closed, Reply, forbidden, parse_body, state_error
from .emulator_processes import Extension, Runtime
from .runtime_api import Invocation, InvokeError

IDENTIFIER = "Lambda-Extension-Identifier"
ERROR_TYPE = "Lambda-Extension-Function-Error-Type"
SHUTDOWN_HEADERS = {"Content-Type": "text/plain; charset=utf-8"}  # RIE writes it unlabelled: Go sniffs text/plain


class ApiRequests:
    """Request handling, called from the server's threads. Expects LambdaEmulator's attributes."""

    def _handle(self, call: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes, str | None]:
        """An Extensions API request: (status, extra headers, body, extension name)."""
        if call == "register":
            time.sleep(self.register_delay)
            return self._register(headers, body)
        ext = None
        try:
            ext = self._authenticate(headers.get(IDENTIFIER))
            if call == "event/next":
                event = self._next_event(ext)
                if event["eventType"] == "SHUTDOWN":
                    return HTTPStatus.OK, dict(SHUTDOWN_HEADERS), _compact(event), ext.name
                return HTTPStatus.OK, {"Lambda-Extension-Event-Identifier": str(uuid.uuid4())}, _compact(event), ext.name
            self._report_error(ext, call, headers, body)
            return HTTPStatus.ACCEPTED, {}, document({"status": "OK"}), ext.name
        except Reply as reply:
            return reply.status, {}, document(reply.payload), ext.name if ext else None

    def _authenticate(self, identifier: str | None) -> Extension:
        if not identifier:
            raise forbidden("Extension.MissingExtensionIdentifier", f"Missing {IDENTIFIER} header")
        try:
            uuid.UUID(identifier)
        except ValueError:
            raise forbidden("Extension.InvalidExtensionIdentifier", f"Invalid {IDENTIFIER}") from None
        with self._cond:
            ext = next((e for e in self.extensions if e.identifier == identifier), None)
        if ext is None:
            raise forbidden("Extension.UnknownExtensionIdentifier", f"Unknown extension {identifier}")
        return ext

    def _register(self, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes, str | None]:
        name = headers.get("Lambda-Extension-Name")
        try:
            if not name:
                raise forbidden("Extension.InvalidExtensionName", "Empty extension name")
            events = _parse_events(body)
            with self._cond:
                ext = next((e for e in self.extensions if e.name == name), None)
                if ext is None:
                    raise forbidden("Extension.InvalidExtensionName",
                                    f"Lambda-Extension-Name {name!r} is not a launched extension")
                allowed = ("SHUTDOWN",) if self.initialization_type == MANAGED_INSTANCES else ("INVOKE", "SHUTDOWN")
                for event in events:
                    if event not in allowed:
                        raise forbidden("Extension.InvalidEventType", f"{event}: ErrorInvalidEventType")
                if ext.identifier is not None:
                    state = "Registered" if ext.init_done_at is None else ("Ready" if ext.idle else "Running")
                    raise state_error(state, "Registered", name)
                ext.identifier = str(uuid.uuid4())
                ext.events = events
                ext.registered_at = time.monotonic()
                self._cond.notify_all()
        except Reply as reply:
            return reply.status, {}, document(reply.payload), name
        payload: dict[str, Any] = {
            "functionName": self.function_name,
            "functionVersion": self.function_version,
            "handler": self.handler,
        }
        features = headers.get("Lambda-Extension-Accept-Feature") or ""
        if "accountId" in [f.strip() for f in features.split(",")]:
            payload["accountId"] = ACCOUNT_ID
        return HTTPStatus.OK, {IDENTIFIER: ext.identifier}, document(payload), name

    def _next_event(self, ext: Extension) -> dict[str, Any]:
        with self._cond:
            ext._next_calls += 1
            ext._last_next_at = time.monotonic()
            call_number = ext._next_calls
            if ext.init_done_at is None:
                ext.init_done_at = time.monotonic()
            self._cond.notify_all()  # init done / back to idle: wake waiters
            while not ext._queue:
                if self._closed or ext._exited.is_set():
                    raise Closed()
                if self._failing_events:
                    raise Reply(HTTPStatus.INTERNAL_SERVER_ERROR, "Extension.Unknown", "injected Extensions API failure")
                # Bounded wait; close() and the process's exit also notify, this is belt and braces.
                self._cond.wait(1.0)
            ext._delivered_on = call_number
            return ext._queue.popleft()

    def _report_error(self, ext: Extension, call: str, headers: Any, body: bytes) -> None:
        error_type = headers.get(ERROR_TYPE)
        if not error_type:
            raise forbidden("Extension.MissingHeader", f"{ERROR_TYPE} not found")
        record = {"error_type": error_type, "body": parse_body(body)}
        with self._cond:
            if call == "init/error":
                if ext.init_done_at is not None:
                    raise state_error("Ready" if ext.idle else "Running", "InitError", ext.identifier or ext.name)
                ext.init_errors.append(record)
            else:
                ext.exit_errors.append(record)
            self._cond.notify_all()

    def _handle_runtime(self, call: str, request_id: str | None, headers: Any,
                        body: bytes) -> tuple[int, dict[str, str], bytes]:
        """A Runtime API request: (status, extra headers, body). Raises Reply for API errors."""
        arrived = time.monotonic()
        runtime = self.runtime
        assert runtime is not None
        if call == runtime_api.NEXT:
            invocation = self._runtime_next(runtime)
            return HTTPStatus.OK, invocation.next_headers(), invocation.payload
        if call == runtime_api.RESTORE_NEXT:
            # The snapshot is "taken" and restored at once here: no time passes, and no RESTORE event goes to
            # extensions (Lambda sends none). The runtime then runs its after-restore hooks and invocation/next.
            return HTTPStatus.OK, {}, b""
        error_type = headers.get(runtime_api.ERROR_TYPE_HEADER)
        with self._cond:
            if call == runtime_api.INIT_ERROR:
                if runtime.init_done_at is not None:
                    raise Reply(HTTPStatus.FORBIDDEN, "InvalidStateTransition", "init/error is only allowed during Init")
                error = runtime_api.invoke_error(error_type, body)
                runtime.init_errors.append({"error_type": error_type or error.error_type, "body": parse_body(body)})
            else:
                invocation = self._invocations.get(request_id or "")
                if invocation is None or invocation.delivered_at is None or invocation.timed_out:
                    raise Reply(HTTPStatus.BAD_REQUEST, "InvalidRequestID", f"no invocation {request_id!r} in progress")
                if invocation.answered_at is not None:
                    raise Reply(HTTPStatus.FORBIDDEN, "InvalidStateTransition",
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
                    raise Reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "RequestEntityTooLarge", message)
                else:
                    invocation.response = body
                if runtime.current is invocation:
                    runtime.current = None
            self._cond.notify_all()
        return HTTPStatus.ACCEPTED, {}, document({"status": "OK"})

    def _runtime_next(self, runtime: Runtime) -> Invocation:
        with self._cond:
            if runtime.init_errors and runtime.init_done_at is None:
                raise Reply(HTTPStatus.FORBIDDEN, "InvalidStateTransition", "Init failed: the runtime posted init/error")
            runtime._next_calls += 1
            if runtime.init_done_at is None:
                runtime.init_done_at = time.monotonic()
                self._cond.notify_all()  # Init may be over: wake wait_init
            runtime._waiting += 1
            try:
                while not self._runtime_queue or self.runtime is not runtime:
                    # Shutdown leaves the call pending, as Lambda does: the runtime gets SIGTERM, not an answer.
                    if self._closed or runtime._exited.is_set() or self.runtime is not runtime:
                        raise Closed()
                    self._cond.wait(1.0)  # bounded; close() and the runtime's exit also notify
            finally:
                runtime._waiting -= 1
            invocation = self._runtime_queue.popleft()
            invocation.delivered_at = time.monotonic()
            runtime.current = invocation
            self._cond.notify_all()
            return invocation


def _compact(event: dict[str, Any]) -> bytes:
    """An event as RIE renders it (Go's json.Marshal: compact, no newline)."""
    return json.dumps(event, separators=(",", ":")).encode()


def _parse_events(body: bytes) -> list[str]:
    """The register body's events, as RIE parses it: anything but {"events": [strings]} is InvalidRequestFormat."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise forbidden("InvalidRequestFormat", str(exc)) from None
    if not isinstance(data, dict):
        raise forbidden("InvalidRequestFormat", "body must be a JSON object")
    events = data.get("events")
    if events is None:
        events = []
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise forbidden("InvalidRequestFormat", 'body must be {"events": [...]}')
    if data.get("configurationKeys"):
        raise forbidden("InvalidRequestFormat", "configurationKeys are deprecated; use environment variables instead")
    return events
