"""The client's HTTP/1.1: one keep-alive connection to the extension on loopback, on a plain socket.

http.client parses every answer's headers with the email package: a read over loopback took ~150 µs through
it where the round trip is ~35 µs. The extension's answers are a status line, a few headers and a
Content-Length body; reading exactly that takes ~45 µs, and importing this module loads neither http.client nor
email (a function's cold start pays for both).
"""

from __future__ import annotations

import socket

MAX_HEAD = 64 * 1024  # an answer's status line and headers: the extension's are a few hundred bytes
MAX_BODY = 64 * 1024 * 1024  # a DynamoDB item is at most 400 KB; anything near this is not the extension


class BadAnswer(ValueError):
    """What came back is not an HTTP/1.1 answer as the extension writes one."""


class Connection:
    """One keep-alive HTTP/1.1 connection to the extension on loopback."""

    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        # The request goes out in one write, and the answer is read as it comes: no Nagle delay either way.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes, bool]:
        """Send one request; (status, headers by lower-case name, body, whether the connection must close).
        Raises ConnectionResetError when the connection closes before any byte of an answer."""
        sock = self.sock
        sock.sendall(request)
        data = b""
        while (end := data.find(b"\r\n\r\n")) < 0:
            if len(data) > MAX_HEAD:
                raise BadAnswer("the answer's headers are too long")
            chunk = sock.recv(65536)
            if not chunk:
                if data:
                    raise BadAnswer("the connection closed in the middle of an answer's headers")
                raise ConnectionResetError("the connection closed before any answer")
            data += chunk
        status_line, *lines = data[:end].decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not (code.isascii() and code.isdigit()):
            raise BadAnswer("not an HTTP/1.1 status line")
        headers = {}
        for line in lines:
            name, colon, value = line.partition(":")
            if not colon:
                raise BadAnswer("a header line without a colon")
            headers[name.strip().lower()] = value.strip(" \t")
        will_close = version == "HTTP/1.0" or headers.get("connection", "").lower() == "close"
        body = data[end + 4:]
        length = headers.get("content-length")
        if length is None:  # the body ends when the connection does
            if "transfer-encoding" in headers:
                raise BadAnswer("a chunked answer (the extension sends Content-Length)")
            while chunk := sock.recv(65536):
                body += chunk
                if len(body) > MAX_BODY:
                    raise BadAnswer("the answer is too large")
            return int(code), headers, body, True
        if not (length.isascii() and length.isdigit()) or int(length) > MAX_BODY:
            raise BadAnswer("a bad Content-Length")
        size = int(length)
        while len(body) < size:
            chunk = sock.recv(65536)
            if not chunk:
                raise BadAnswer("the connection closed in the middle of an answer's body")
            body += chunk
        if len(body) > size:
            will_close = True  # more than was asked for: this connection cannot be trusted for the next one
        return int(code), headers, body[:size], will_close

    def close(self) -> None:
        self.sock.close()
