"""The local Lambda emulator's HTTP side: one server on 127.0.0.1 for the Extensions and Runtime APIs.

Routing and framing only; what each call means is in emulator_requests. Like RIE's Go server, an answer
to a request that asked for ``Connection: close`` (or came as HTTP/1.0) carries ``Connection: close`` and
ends the connection; other connections are kept alive.
"""

from __future__ import annotations

import json
import socket
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from . import runtime_api
from .emulator_model import BASE_PATH, Closed, Reply

if TYPE_CHECKING:
    from .extensions_api import LambdaEmulator

# path -> the one method Lambda accepts on it
ROUTES = {
    f"{BASE_PATH}/register": "POST",
    f"{BASE_PATH}/event/next": "GET",
    f"{BASE_PATH}/init/error": "POST",
    f"{BASE_PATH}/exit/error": "POST",
}


def document(payload: dict[str, Any]) -> bytes:
    """A JSON answer as RIE renders one (compact, newline-terminated: Go's json.Encoder)."""
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, emulator: LambdaEmulator) -> None:
        self.emulator = emulator
        super().__init__(("127.0.0.1", 0), Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A process killed while holding a keep-alive connection resets it: that is no server error.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive, like Lambda; every response carries Content-Length.
    protocol_version = "HTTP/1.1"
    server: Server

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

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

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
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, "InvalidRequest", f"{self.command} not allowed on {path}",
                        call=path, headers={"Allow": method})
        else:
            call = path[len(BASE_PATH) + 1 :]
            try:
                status, headers, data, name = emulator._handle(call, self.headers, body)
            except Closed:
                status, headers, name = HTTPStatus.INTERNAL_SERVER_ERROR, {}, None
                data = document({"errorMessage": "emulator is closing", "errorType": "Extension.Closed"})
            self._send(status, data, headers, call=call, extension=name)

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
        except Closed:
            status, headers = HTTPStatus.INTERNAL_SERVER_ERROR, {}
            data = document({"errorMessage": "emulator is closing", "errorType": "Runtime.Closed"})
        except Reply as reply:
            status, headers, data = reply.status, {}, document(reply.payload)
        self._send(status, data, headers, call=call, extension=None)

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

    def _error(self, status: int, error_type: str, message: str, *, call: str,
               headers: dict[str, str] | None = None) -> None:
        data = document({"errorMessage": message, "errorType": error_type})
        self._send(status, data, headers or {}, call=call, extension=None)

    def _send(self, status: int, data: bytes, headers: dict[str, str], *, call: str, extension: str | None) -> None:
        """Send an answer: Content-Type application/json unless `headers` names another."""
        self.server.emulator._record(call, extension, int(status))
        headers = dict(headers)
        content_type = headers.pop("Content-Type", "application/json")
        closing = (self.request_version == "HTTP/1.0"
                   or "close" in self.headers.get("Connection", "").lower().replace(" ", "").split(","))
        try:
            self.log_request(int(status))
            self.send_response_only(int(status))  # no Server header: Lambda's API sends none
            self.send_header("Date", self.date_time_string())
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            if closing:
                self.send_header("Connection", "close")  # also makes the server close it after this answer
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the caller went away mid-request
