"""One HTTP/1.1 connection: httptools parses, app.py answers, answers go out in the order asked.

A request is answered as soon as its headers are complete (a body of at most MAX_BODY bytes is read
and dropped; requests carry none). When the app can answer at once (a cache hit, a refusal), the answer
is written inside the parser's callback: no Task, no per-request objects beyond the Request and
Response. Only an answer that must wait (a read waiting for an in-flight fetch, a forced refresh) runs
as a Task; while it runs, pipelined requests behind it queue, in order, with reading paused.

Keep-alive is HTTP/1.1's default; HTTP/1.0, `Connection: close`, an upgrade request or a refused body
make the answer carry `connection: close` and the connection close after it (nothing more is read).
When the transport's buffer is full (pause_writing), requests queue and reading pauses until it drains,
so a client that never reads its answers cannot grow the process's memory.

The connection's states for the Connections guard (http_server.py): idle (nothing owed, no request
started), arriving (a request's head has begun but is incomplete at the end of a read: it must complete
within the awake-time limit), or serving. Limits on arriving bytes: http_limits.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from urllib.parse import unquote

import httptools

from .http_common import Request, Response, error
from .http_limits import MALFORMED, SLICE, TOO_LARGE, HeadBudget, Refusal, Refused, refuses_body

log = logging.getLogger("cache_extension.http")

PHRASES = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 413: "Content Too Large",
           414: "URI Too Long", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
STATUS_LINES = {status: b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode()) for status, phrase in PHRASES.items()}

_date = [0, b""]  # (second, its Date header line): formatted once a second, not per response


def date_line() -> bytes:
    now = int(time.time())
    if now != _date[0]:
        _date[0], _date[1] = now, time.strftime("date: %a, %d %b %Y %H:%M:%S GMT\r\n", time.gmtime(now)).encode()
    return _date[1]


def encode(response: Response, head: bool, close: bool) -> bytes:
    """The response as sent: status line, Date, its headers, Content-Length, then the body (not for HEAD)."""
    status = response.status
    out = [STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status, date_line()]
    for name, value in response.headers:
        out += (name, b": ", value, b"\r\n")
    body = response.body
    out.append(b"content-length: %d\r\n%s\r\n" % (len(body), b"connection: close\r\n" if close else b""))
    if not head:
        out.append(body)
    return b"".join(out)


def shutting_down() -> Response:
    return error(503, "ShuttingDown", "the extension is shutting down; retry on the next invoke")


class HttpProtocol(asyncio.Protocol):
    def __init__(self, server) -> None:
        self.server = server  # http_server.Server: the app, the loop, the Connections guard, open connections
        self.app = server.app
        self.guard = server.guard
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.client: tuple[str, int] | None = None
        # The request being received
        self.budget = HeadBudget()
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        # Answers owed, in order: the one running as a Task, then requests queued behind it.
        self.task: asyncio.Task | None = None
        self.queue: deque[tuple[Request, bool]] = deque()
        self.write_paused = False
        self.reading_paused = False
        # The connection's end: nothing more is fed to the parser; the refusal (if any) goes out once every
        # earlier request is answered, and the connection closes.
        self.done = False
        self.refusal: Refusal | None = None

    # -- the transport

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = (peer[0], peer[1]) if peer else None
        connections = self.server.connections
        connections.add(self)
        self.guard.idle[self] = None
        if not self.guard.admit(self, len(connections)):
            self.guard.forget(self)
            transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.guard.forget(self)
        self.queue.clear()  # a running Task finishes; its answer is dropped

    def eof_received(self) -> bool:
        return False  # the client is done sending: answers owed still go out, then the transport closes

    def pause_writing(self) -> None:
        self.write_paused = True
        self._pause()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._next()

    def data_received(self, data: bytes) -> None:
        if self.done or self.transport.is_closing():
            return self._pause()  # dropped, unread: a read already under way when reading paused
        budget = self.budget
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            if budget.in_head:
                room = budget.room()
                if room <= 0:
                    return self._refuse(TOO_LARGE)
                piece = view[offset:offset + min(room, SLICE)]
            else:
                piece = view[offset:offset + SLICE]
            offset += len(piece)
            budget.began = False
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserUpgrade:
                return  # the upgrade request is answered (with connection: close); the rest is not read
            except httptools.HttpParserError:
                if self.done:  # stopped on purpose: a body not read, or nothing after a closing request
                    return self._pause()
                limit, budget.limit = budget.limit, None
                return self._refuse(limit or MALFORMED)
            budget.fed(len(piece))
            if self.done:
                return self._pause()
        if budget.in_head and self not in self.guard.arriving:
            self.guard.arriving_starts(self)  # the head is incomplete: the slow-client limit runs from now

    # -- parser callbacks

    def on_message_begin(self) -> None:
        self.budget.begin()
        self.url = b""
        self.headers = []
        self.guard.idle.pop(self, None)

    def on_url(self, url: bytes) -> None:
        self.budget.url(len(url))
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.budget.header(name, value)
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.budget.in_head = False
        self.guard.arriving.pop(self, None)
        parser = self.parser
        parsed = httptools.parse_url(self.url)  # an invalid target raises: the request is malformed (400)
        path = parsed.path.decode("ascii")  # so does a byte outside ASCII
        if "%" in path:
            path = unquote(path)
        request = Request(parser.get_method().decode("ascii"), path, parsed.query or b"", self.headers, self.client)
        keep_alive = parser.should_keep_alive() and parser.get_http_version() == "1.1" and not parser.should_upgrade()
        if refuses_body(self.headers):
            keep_alive = False  # not read: the app answers without it (the Guard: 413), then the connection closes
        if not keep_alive:
            self.done = True
        self._received(request, keep_alive)
        if self.done:
            raise Refused  # the parser stops here: no body, nothing after this request

    # -- answers, in order

    def _received(self, request: Request, keep_alive: bool) -> None:
        if self.task is not None or self.queue or self.write_paused:
            self.queue.append((request, keep_alive))
            self._pause()
        else:
            self._answer(request, keep_alive)

    def _answer(self, request: Request, keep_alive: bool) -> None:
        answer = self.app.handle(request)
        if isinstance(answer, Response):
            self._write(answer, request.method == "HEAD", keep_alive)
        else:
            self.task = task = self.server.loop.create_task(self._wait(answer, request.method == "HEAD", keep_alive))
            self.server.tasks.add(task)
            task.add_done_callback(self.server.tasks.discard)

    async def _wait(self, answer, head: bool, keep_alive: bool) -> None:
        try:
            response = await answer
        except asyncio.CancelledError:
            # Graceful shutdown ran out (http_server.py): a JSON 503, not a dropped connection.
            response, keep_alive = shutting_down(), False
        self.task = None
        self._write(response, head, keep_alive)
        self._next()

    def _write(self, response: Response, head: bool, keep_alive: bool) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        keep_alive = keep_alive and not self.server.stopping
        transport.write(encode(response, head, not keep_alive))
        if not keep_alive:
            transport.close()
        elif self.task is None and not self.queue and not self.budget.in_head:
            self.guard.idle[self] = None

    def _next(self) -> None:
        """Answer what queued behind a Task or a full buffer; then the refusal, or read on."""
        while self.queue and self.task is None and not self.write_paused and not self.transport.is_closing():
            self._answer(*self.queue.popleft())
        if self.task is None and not self.queue and not self.transport.is_closing():
            if self.refusal is not None:
                self._send_refusal()
            elif not self.done and not self.write_paused and self.reading_paused:
                self.reading_paused = False
                self.transport.resume_reading()

    def _pause(self) -> None:
        if not self.reading_paused and not self.transport.is_closing():
            self.reading_paused = True
            self.transport.pause_reading()

    # -- the connection's end

    def _refuse(self, refusal: Refusal) -> None:
        if refusal is MALFORMED:
            log.warning(MALFORMED[2])
        else:
            log.warning("refused a request: %s", refusal[2])  # the rule it broke, never its bytes
        self.done = True
        self.budget.in_head = False
        self.guard.arriving.pop(self, None)
        if self.transport.is_closing():
            return
        self.refusal = refusal
        if self.task is None and not self.queue:
            self._send_refusal()
        else:
            self._pause()

    def _send_refusal(self) -> None:
        status, code, message = self.refusal
        self.refusal = None
        self.transport.write(encode(error(status, code, message), False, True))
        self.transport.close()

    def too_slow(self) -> None:
        """Called by the guard: the head did not complete within the awake-time limit."""
        if not self.transport.is_closing():
            self.transport.close()

    def shutdown(self) -> None:
        """Graceful shutdown: close now if nothing is owed, else after the answers owed."""
        self.done = True
        if self.task is None and not self.queue:
            if not self.transport.is_closing():
                self.transport.close()
        else:
            self._pause()
