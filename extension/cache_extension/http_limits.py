"""uvicorn's httptools protocol with request limits enforced on the bytes as they arrive, and errors that
keep a pipeline's order.

- **Headers.** httptools gives a header to the server only once it is complete, and until then grows it
  in memory (with a copy per read): a client sending a header value that never ends would make the
  process hold all of it. Here the bytes of a request's header section are counted as they are fed to
  the parser, at most SLICE at a time, and the request line's target as httptools hands it over (in
  pieces): past MAX_URL_BYTES of target (414) or past MAX_HEADER_BYTES of header section (431), or at
  the 65th header, the request is answered at once and the connection closed; no more of it is read.
  The header section's budget counts what was sent (framing too: HEADER_FRAMING bytes a header for
  ": " and CRLF); the first slice of a request that begins mid-slice is not counted, so a request may
  hold at most SLICE bytes more than the budget. The exact rule (names and values at most 16 KiB, 64
  headers) is checked again on each complete header and by app.py's Guard.
- **Bodies.** Requests carry none. One announced with Transfer-Encoding (any) or a Content-Length over
  MAX_BODY is not read: the parser is fed nothing more, the app answers it (the Guard: 413) and the
  connection closes after that answer.
- **Errors and pipelining.** uvicorn answers a malformed request by writing its 400 and closing at once,
  which drops the answers still owed to valid requests pipelined ahead of it. Here a refusal (400 for
  a malformed request, 414, 431) waits, with reading paused, until every earlier request is answered;
  then it is written, as the API's JSON error, and the connection closed.
"""

from __future__ import annotations

import logging

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .http_common import MAX_BODY, MAX_HEADER_BYTES, MAX_HEADERS, MAX_URL_BYTES, error

log = logging.getLogger("cache_extension.http")

SLICE = 4096  # bytes fed to the parser at a time
HEADER_FRAMING = 4  # ": " and CRLF
# The header section as sent: names and values, framing, and the rest of the request line (method,
# version, CRLFs) that is not the target.
MAX_HEADER_SECTION = MAX_HEADER_BYTES + MAX_HEADERS * HEADER_FRAMING + 64

TOO_LARGE = (431, "HeadersTooLarge", f"at most {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes")
URI_TOO_LONG = (414, "URITooLong", f"the request target is longer than {MAX_URL_BYTES} bytes")
MALFORMED = (400, "BadRequest", "Invalid HTTP request received.")


class Refused(Exception):
    """Raised in a parser callback: httptools stops and feed_data raises HttpParserCallbackError."""


def refuses_body(headers: list[tuple[bytes, bytes]]) -> bool:
    """A body the server will not read: any Transfer-Encoding, or a Content-Length past MAX_BODY."""
    for name, value in headers:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length" and not (value.isdigit() and int(value) <= MAX_BODY):
            return True
    return False


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    # The request being received: in its request line or headers, and how much of them came.
    _in_head = False
    _began = False  # the request began in the slice being fed (whose earlier bytes are another's)
    _head_bytes = 0
    _url_bytes = 0
    _header_count = 0
    _header_size = 0
    _limit: tuple[int, str, str] | None = None  # the limit a callback hit
    # The connection's end: nothing more is fed to the parser, and this answer (if any) goes out once
    # every earlier request is answered.
    _done = False
    _refusal: tuple[int, str, str] | None = None

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._done or self.transport.is_closing():
            self._pause()  # dropped, unread: uvicorn's flow control may resume reading, and it pauses again
            return
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            if self._in_head:
                room = MAX_HEADER_SECTION + self._url_bytes - self._head_bytes
                if room <= 0:
                    return self._refuse(TOO_LARGE)
                piece = view[offset:offset + min(room, SLICE)]
            else:
                piece = view[offset:offset + SLICE]
            offset += len(piece)
            self._began = False
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserUpgrade:
                # As uvicorn: no WebSocket here (none is installed), the rest of the data is ignored.
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return
            except httptools.HttpParserError:
                if self._done:  # a body that is not read: the parser stopped at its start
                    return self._pause()
                limit, self._limit = self._limit, None
                return self._refuse(limit or MALFORMED)
            if self._in_head and not self._began:
                self._head_bytes += len(piece)

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = self._began = True
        self._head_bytes = self._url_bytes = self._header_count = self._header_size = 0

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > MAX_URL_BYTES:
            self._limit = URI_TOO_LONG
            raise Refused
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_size += len(name) + len(value)
        if self._header_count > MAX_HEADERS or self._header_size > MAX_HEADER_BYTES:
            self._limit = TOO_LARGE
            raise Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope and refuses_body(self.headers):
            # Not read: the app answers without it (the Guard refuses it), and the connection then closes.
            self._done = True
            cycle.keep_alive = False
            cycle.more_body = False
            cycle.message_event.set()  # a receive() gets an empty body instead of waiting for one
            raise Refused  # the parser stops here, before the body's first byte

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal is not None and not self.transport.is_closing() and self._answered():
            self._send_refusal()

    # The connection's end

    def _answered(self) -> bool:
        """Every request received so far has its answer written."""
        return not self.pipeline and (self.cycle is None or self.cycle.response_complete)

    def _refuse(self, refusal: tuple[int, str, str]) -> None:
        if refusal is MALFORMED:
            self.logger.warning(MALFORMED[2])  # as uvicorn logs it
        else:
            log.warning("refused a request: %s", refusal[2])  # the rule it broke, never its bytes
        self._done = True
        self._in_head = False
        if self.transport.is_closing():
            return
        self._refusal = refusal
        if self._answered():
            self._send_refusal()
        else:
            self._pause()

    def _pause(self) -> None:
        if not self.transport.is_closing():
            self.transport.pause_reading()

    def _send_refusal(self) -> None:
        status, code, message = self._refusal
        self._refusal = None
        response = error(status, code, message)
        content = [STATUS_LINE[status]]
        for name, value in [*self.server_state.default_headers, *response.raw_headers, (b"connection", b"close")]:
            content += [name, b": ", value, b"\r\n"]
        content += [b"\r\n", response.body]
        self.transport.write(b"".join(content))
        self.transport.close()
