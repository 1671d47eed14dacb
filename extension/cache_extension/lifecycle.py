"""A client of the Lambda Extensions API.

It speaks HTTP/1.1 over a plain socket because it runs before anything else: http.client pulls in the
email, ssl and re packages (tens of milliseconds of imports) and registration must not wait for them.
The API is Lambda's own, on loopback, with Content-Length on every response: a minimal client suffices.
Registration does not even import json (with re and enum behind it, about 4 ms of a 10 ms interpreter
start): its body is a list of event names, written here; json is imported for the calls after it. Nor the
socket module: it imports enum and builds four IntEnums from the C module's constants, 8–10 ms in a fresh
`python3 -E -S` (measured), where its C core `_socket`, which does the work, takes under 1 ms. A blocking
connect, send and receive is all this client needs of it.
"""

from __future__ import annotations

import _socket

BASE = "/2020-01-01/extension"
CLOSED_BEFORE_HEADERS = "connection closed before the response headers"


class ExtensionsApiError(Exception):
    """A call to the Extensions API failed. `gone`: no answer at all (connection refused, reset or closed
    before the response headers), as when the environment is being torn down; False for an HTTP error status."""

    def __init__(self, message: str, *, gone: bool = False) -> None:
        super().__init__(message)
        self.gone = gone


class ExtensionsApi:
    def __init__(self, address: str, name: str) -> None:
        host, _, port = address.rpartition(":")
        if not address.strip():
            raise ExtensionsApiError("AWS_LAMBDA_RUNTIME_API is not set: Lambda sets it for extensions it launches "
                                     "(locally, scripts/run-local does)")
        if not host or not port.isdigit():
            raise ExtensionsApiError(f"AWS_LAMBDA_RUNTIME_API is {address[:100]!r}, not host:port")
        self.host, self.port = host.strip("[]"), int(port)
        self.name = name
        self.identifier: str | None = None

    def register(self, events: list[str]) -> None:
        if not all(event.isascii() and event.isalpha() for event in events):
            raise ExtensionsApiError(f"not event names: {events!r}")
        payload = ('{"events": [' + ", ".join(f'"{event}"' for event in events) + "]}").encode("ascii")
        status, headers, body = self._call("POST", "/register", payload, {"Lambda-Extension-Name": self.name})
        identifier = headers.get("lambda-extension-identifier")
        if status != 200 or not identifier:
            raise ExtensionsApiError(f"register answered HTTP {status}: {_error_text(body)}")
        self.identifier = identifier

    def next_event(self) -> dict:
        """Blocks until Lambda sends the next event; no timeout, as Lambda may keep us frozen."""
        status, _, body = self._call("GET", "/event/next", timeout=None)
        if status != 200:
            raise ExtensionsApiError(f"event/next answered HTTP {status}: {_error_text(body)}")
        import json

        return json.loads(body)

    def init_error(self, error_type: str, message: str) -> None:
        self._report("/init/error", error_type, message)

    def exit_error(self, error_type: str, message: str) -> None:
        self._report("/exit/error", error_type, message)

    def _report(self, path: str, error_type: str, message: str) -> None:
        import json

        body = {"errorMessage": message, "errorType": error_type, "stackTrace": []}
        self._call("POST", path, json.dumps(body).encode("utf-8"), {"Lambda-Extension-Function-Error-Type": error_type})

    def _call(self, method: str, path: str, payload: bytes | None = None, headers: dict | None = None,
              timeout: float | None = 5.0) -> tuple[int, dict[str, str], bytes]:
        """One request; payload: a JSON body, already encoded."""
        lines = [f"{method} {BASE}{path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Connection: close",
                 f"Content-Length: {len(payload or b'')}"]
        if payload is not None:
            lines.append("Content-Type: application/json")
        if self.identifier:
            lines.append(f"Lambda-Extension-Identifier: {self.identifier}")
        lines += [f"{key}: {value}" for key, value in (headers or {}).items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + (payload or b"")
        try:
            sock = _connect(self.host, self.port, 5.0)
            try:
                sock.settimeout(timeout)
                sock.sendall(request)
                return _read_response(sock)
            finally:
                sock.close()
        except (OSError, ValueError) as exc:
            gone = isinstance(exc, (ConnectionError, EOFError)) or str(exc) == CLOSED_BEFORE_HEADERS
            raise ExtensionsApiError(f"{method} {path} failed: {type(exc).__name__}: {exc}", gone=gone) from None


def _connect(host: str, port: int, timeout: float) -> _socket.socket:
    """socket.create_connection's loop over the address's families, on _socket."""
    failure: OSError | None = None
    for family, kind, proto, _, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            failure = exc
    raise failure or OSError(f"no address for {host}")


def _read_response(sock: _socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ValueError(CLOSED_BEFORE_HEADERS)
        data += chunk
        if len(data) > 1 << 20:
            raise ValueError("response headers too large")
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    length = headers.get("content-length")
    while length is None or len(body) < int(length):  # without a length the body ends at close
        chunk = sock.recv(65536)
        if not chunk:
            if length is None:
                break
            raise ValueError("connection closed in the middle of the response body")
        body += chunk
    return status, headers, body if length is None else body[: int(length)]


def _error_text(body: bytes) -> str:
    import json

    try:
        return str(json.loads(body).get("errorMessage") or body[:200])
    except (ValueError, AttributeError):
        return repr(body[:200])
