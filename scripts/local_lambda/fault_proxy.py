"""A fault-injecting HTTP proxy between botocore and moto's server, on loopback.

``MotoServer``'s own faults are WSGI-level: they can answer with an error or sleep, but cannot
break the connection. This proxy sits on the wire, so it can also reset a connection, hang it
past a client's read timeout, hold back an answer moto already gave (the value as it was when the
call went out), or mix such outcomes at random, and it counts what reached it.
Point ``AWS_ENDPOINT_URL`` at ``FaultProxy(moto.endpoint).endpoint``.

Bodies are read (faults can match on them) but never logged or written anywhere: they carry
secrets.
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import socketserver
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from local_lambda.aws import aws_error

# Connection-level headers belong to one hop (the proxy has its own connection to each side), and it
# sets Content-Length itself, having read the whole body.
_NOT_RELAYED = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade", "expect", "content-length",
}
_SERVICES = {"AmazonSSM": "ssm", "secretsmanager": "secretsmanager", "DynamoDB_20120810": "dynamodb"}
_SCOPE = re.compile(r"Credential=[^/]*/[^/]*/[^/]*/([^/]*)/")
_STATUS_ERRORS = {500: "InternalFailure", 503: "ServiceUnavailable"}
KINDS = {"pass", "delay", "lag", "throttle", "reset", "hang"} | {f"status{code}" for code in _STATUS_ERRORS}
UPSTREAM_TIMEOUT = 30.0
IDLE_TIMEOUT = 60.0  # a backstop: stop() releases idle keep-alive connections itself
STOP_TIMEOUT = 2.0


@dataclass
class _Fault:
    kinds: list[str]
    weights: list[float]
    seconds: dict[str, float]
    rng: random.Random
    service: str | None
    operation: str | None
    match: bytes | None
    remaining: int | None  # None: until cleared

    def applies(self, service: str, operation: str, body: bytes) -> bool:
        return (
            self.service in (None, service)
            and self.operation in (None, operation)
            and (self.match is None or self.match in body)
        )

    def draw(self) -> str:
        return self.kinds[0] if len(self.kinds) == 1 else self.rng.choices(self.kinds, self.weights)[0]


class FaultProxy:
    """Forwards to `upstream` unless a fault added with delay()/status()/... applies."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._faults: list[_Fault] = []
        self._log: list[tuple[float, str, str, str]] = []
        self._open: dict[socket.socket, threading.Thread] = {}

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("FaultProxy not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        if self._server is not None:
            raise RuntimeError("FaultProxy already started")
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _Handler)
        self._server.proxy = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop within STOP_TIMEOUT: wake hung and delayed handlers, and cut idle keep-alive connections."""
        if self._server is None:
            return
        with self._lock:
            self._stopping.set()
            open_connections = list(self._open.items())
        self._server.shutdown()
        self._server.server_close()
        for sock, _ in open_connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed (a reset, say)
        deadline = time.monotonic() + STOP_TIMEOUT
        for thread in [self._thread] + [thread for _, thread in open_connections]:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._server = None
        self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults --------------------------------------------------------------------------
    # Every fault takes the same filters: service ("ssm"), operation ("GetParameters"), match (text
    # the request body must contain) and times (None: until cleared). The first applicable one wins.

    def delay(self, seconds: float, **filters: Any) -> None:
        self.mix({"delay": 1.0}, delay_seconds=seconds, **filters)

    def lag(self, seconds: float, **filters: Any) -> None:
        """Forward at once, then hold the answer back: it carries upstream's state at the call."""
        self.mix({"lag": 1.0}, delay_seconds=seconds, **filters)

    def status(self, code: int = 500, **filters: Any) -> None:
        self.mix({f"status{code}": 1.0}, **filters)

    def throttle(self, **filters: Any) -> None:
        self.mix({"throttle": 1.0}, **filters)

    def reset(self, **filters: Any) -> None:
        self.mix({"reset": 1.0}, **filters)

    def hang(self, seconds: float = 5.0, **filters: Any) -> None:
        self.mix({"hang": 1.0}, hang_seconds=seconds, **filters)

    def mix(
        self,
        kinds: dict[str, float],
        *,
        seed: int = 0,
        hang_seconds: float = 5.0,
        delay_seconds: float = 0.1,
        service: str | None = None,
        operation: str | None = None,
        match: str | None = None,
        times: int | None = None,
    ) -> None:
        """Each applicable request draws one of `kinds` (see KINDS) by weight, reproducibly for a seed."""
        unknown = set(kinds) - KINDS
        if unknown or not kinds:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {sorted(KINDS)}")
        fault = _Fault(
            kinds=list(kinds), weights=list(kinds.values()),
            seconds={"hang": hang_seconds, "delay": delay_seconds, "lag": delay_seconds}, rng=random.Random(seed),
            service=service, operation=operation, match=None if match is None else match.encode(), remaining=times,
        )
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- counting ------------------------------------------------------------------------

    def calls(self, operation: str | None = None, service: str | None = None) -> int:
        """Requests that reached the proxy, whatever their outcome."""
        return sum(1 for _, s, o, _ in self.log if operation in (None, o) and service in (None, s))

    def outcomes(self) -> dict[str, int]:
        """Requests per outcome: "forwarded", "delay" (then forwarded), "lag" (forwarded, answer held back)
        or another fault kind."""
        return dict(Counter(outcome for *_, outcome in self.log))

    @property
    def log(self) -> list[tuple[float, str, str, str]]:
        """(time.monotonic(), service, operation, outcome) per request, oldest first (a copy)."""
        with self._lock:
            return list(self._log)

    def reset_calls(self) -> None:
        with self._lock:
            self._log.clear()

    # -- used by the handler ---------------------------------------------------------------

    def _decide(self, service: str, operation: str, body: bytes) -> tuple[str, float]:
        with self._lock:
            outcome, seconds = "forwarded", 0.0
            for fault in self._faults:
                if fault.applies(service, operation, body):
                    kind = fault.draw()
                    outcome, seconds = ("forwarded" if kind == "pass" else kind), fault.seconds.get(kind, 0.0)
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    break
            self._log.append((time.monotonic(), service, operation, outcome))
        return outcome, seconds

    def _register(self, sock: socket.socket) -> bool:
        """Track a client connection so stop() can cut it; False once stopping (stop() missed it)."""
        with self._lock:
            if self._stopping.is_set():
                return False
            thread = self._open[sock] = threading.current_thread()
            thread.name = "fault-proxy-connection"  # so a leak is easy to spot
            return True

    def _unregister(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.pop(sock, None)


class _Server(socketserver.ThreadingTCPServer):
    # Not http.server.HTTPServer: its server_bind() does a reverse DNS lookup, slow on some hosts.
    daemon_threads = True
    proxy: FaultProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up mid-answer (timeouts are what these tests provoke); never print bodies


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: botocore pools connections
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    timeout = IDLE_TIMEOUT
    server: _Server

    def handle(self) -> None:
        proxy = self.server.proxy
        if not proxy._register(self.connection):
            return
        try:
            super().handle()
        finally:
            proxy._unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _proxy(self) -> None:
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        service, operation = _identify(self.command, self.path, self.headers)
        outcome, seconds = proxy._decide(service, operation, body)
        if outcome == "reset":
            # Linger on with a zero timeout: close() sends RST instead of FIN. The rfile holds a
            # reference to the socket, which would otherwise delay the real close.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.connection.close()
            self.close_connection = True
        elif outcome == "hang":
            proxy._stopping.wait(seconds)
            self.close_connection = True
        elif outcome in ("throttle", "status500", "status503"):
            self._answer_error(*_fault_error(outcome, service))
        elif outcome == "delay" and proxy._stopping.wait(seconds):
            self.close_connection = True
        else:
            self._forward(body, hold=seconds if outcome == "lag" else 0.0)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _proxy

    def _forward(self, body: bytes, hold: float = 0.0) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_RELAYED}
        headers["Content-Length"] = str(len(body))  # Host is kept: it is part of the SigV4 signature
        upstream = http.client.HTTPConnection(*self.server.proxy._upstream, timeout=UPSTREAM_TIMEOUT)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            reply = response.read()
        except OSError:  # upstream down: still counted as "forwarded", since that was the decision
            self._answer_error(502, "BadGateway")
            return
        finally:
            upstream.close()
        if hold and self.server.proxy._stopping.wait(hold):
            self.close_connection = True
            return
        self._send(response.status, response.reason, response.getheaders(), reply)

    def _answer_error(self, status: int, code: str) -> None:
        """The AWS JSON error MotoServer's own faults answer with, which botocore parses into a ClientError."""
        headers, body = aws_error(code)
        self._send(status, None, headers, body)

    def _send(self, status: int, reason: str | None, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            if name.lower() not in _NOT_RELAYED:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

def _identify(method: str, path: str, headers: Any) -> tuple[str, str]:
    """(service, operation) from X-Amz-Target ("AmazonSSM.GetParameters" -> "ssm", "GetParameters")."""
    prefix, _, operation = headers.get("X-Amz-Target", "").rpartition(".")
    scope = _SCOPE.search(headers.get("Authorization", ""))
    service = _SERVICES.get(prefix) or (scope.group(1) if scope else prefix)
    return service, operation or f"{method} {path.partition('?')[0]}"


def _fault_error(outcome: str, service: str) -> tuple[int, str]:
    if outcome == "throttle":
        # DynamoDB names its errors with the model's namespace; botocore keeps what follows '#'.
        prefix = "com.amazonaws.dynamodb.v20120810#" if service == "dynamodb" else ""
        return 400, f"{prefix}ThrottlingException"
    status = int(outcome.removeprefix("status"))
    return status, _STATUS_ERRORS[status]
