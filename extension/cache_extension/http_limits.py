"""Request limits enforced on the bytes as they arrive, and the refusals that end a connection.

- **Headers.** httptools gives a header to the server only once it is complete, and until then grows it
  in memory (with a copy per read): a client sending a header value that never ends would make the
  process hold all of it. So the bytes of a request's header section are counted as they are fed to
  the parser, at most SLICE at a time (HeadBudget), and the request line's target as httptools hands it
  over (in pieces): past MAX_URL_BYTES of target (414) or past MAX_HEADER_BYTES of header section (431),
  or at the 65th header, the request is answered at once and the connection closed; no more of it is
  read. The header section's budget counts what was sent (framing too: HEADER_FRAMING bytes a header for
  ": " and CRLF); the first slice of a request that begins mid-slice is not counted, so a request may
  hold at most SLICE bytes more than the budget. The exact rule (names and values at most 16 KiB, 64
  headers) is checked again on each complete header and by app.py's Guard.
- **Bodies.** Requests carry none. One announced with Transfer-Encoding (any) or a Content-Length over
  MAX_BODY is not read: the parser is fed nothing more, the app answers it (the Guard: 413) and the
  connection closes after that answer.
- **Errors and pipelining.** A refusal (400 for a malformed request, 414, 431) waits, with reading paused,
  until every earlier request is answered; then it is written, as the API's JSON error, and the
  connection closed (http_protocol.py).
"""

from __future__ import annotations

from .http_common import MAX_BODY, MAX_HEADER_BYTES, MAX_HEADERS, MAX_URL_BYTES

SLICE = 4096  # bytes fed to the parser at a time
HEADER_FRAMING = 4  # ": " and CRLF
# The header section as sent: names and values, framing, and the rest of the request line (method,
# version, CRLFs) that is not the target.
MAX_HEADER_SECTION = MAX_HEADER_BYTES + MAX_HEADERS * HEADER_FRAMING + 64

Refusal = tuple  # (status, error code, message)
TOO_LARGE: Refusal = (431, "HeadersTooLarge", f"at most {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes")
URI_TOO_LONG: Refusal = (414, "URITooLong", f"the request target is longer than {MAX_URL_BYTES} bytes")
MALFORMED: Refusal = (400, "BadRequest", "Invalid HTTP request received.")


class Refused(Exception):
    """Raised in a parser callback: httptools stops and feed_data raises HttpParserCallbackError."""


def announces_body(name: bytes, value: bytes) -> bool:
    """A header announcing a body the server will not read: any Transfer-Encoding, or a Content-Length past
    MAX_BODY. The server stops reading at it; app.py's Guard answers it (413)."""
    return name == b"transfer-encoding" or (name == b"content-length" and not (value.isdigit() and int(value) <= MAX_BODY))


def refuses_body(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(announces_body(name, value) for name, value in headers)


class HeadBudget:
    """What one request's head (request line and headers) has used of its limits so far."""

    __slots__ = ("in_head", "began", "head_bytes", "url_bytes", "header_count", "header_size", "limit")

    def __init__(self) -> None:
        self.in_head = False
        self.began = False  # the request began in the slice being fed (whose earlier bytes are another's)
        self.head_bytes = self.url_bytes = self.header_count = self.header_size = 0
        self.limit: Refusal | None = None  # the limit a callback hit

    def begin(self) -> None:
        self.in_head = self.began = True
        self.head_bytes = self.url_bytes = self.header_count = self.header_size = 0

    def room(self) -> int:
        """Bytes of the head that may still be fed (the target has its own limit, checked in url())."""
        return MAX_HEADER_SECTION + self.url_bytes - self.head_bytes

    def fed(self, count: int) -> None:
        """After a slice went to the parser (began was cleared before it)."""
        if self.in_head and not self.began:
            self.head_bytes += count

    def url(self, count: int) -> None:
        self.url_bytes += count
        if self.url_bytes > MAX_URL_BYTES:
            self.limit = URI_TOO_LONG
            raise Refused

    def header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        self.header_size += len(name) + len(value)
        if self.header_count > MAX_HEADERS or self.header_size > MAX_HEADER_BYTES:
            self.limit = TOO_LARGE
            raise Refused
