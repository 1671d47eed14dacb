"""uvicorn's httptools protocol with the connection rules Lambda needs: slow clients, freezes and floods.

A connection is in one of three states: idle (between requests, or opened with nothing sent yet),
receiving a request's headers, or serving a request. Lambda freezes the environment between invokes
for seconds to hours, and the function reuses its kept-alive connection right after the thaw, so:

- an idle connection has no time limit at all (uvicorn's keep-alive timeout is switched off); it
  costs one file descriptor, bounded by MAX_CONNECTIONS;
- the slow-client limit starts when the first byte of a request arrives: its headers must be
  complete within HEADER_TIMEOUT of time the process was awake. Time is counted by a ticker that
  runs only while some request is arriving, and one tick counts at most MAX_TICK: the jump of the
  clock over a freeze (SIGSTOP in the tests) does not count against a request;
- past MAX_CONNECTIONS, the connection idle the longest gives way to the new one (a fresh request
  is served, never refused for a flood of idle ones); only when none is idle is the new one closed.
  A flood is logged once per FLOOD_LOG_INTERVAL, with a count, whatever its size.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .http_limits import LimitedHttpToolsProtocol

log = logging.getLogger("cache_extension.http")

HEADER_TIMEOUT = 5.0
MAX_CONNECTIONS = 512
TICK = 0.25
MAX_TICK = 1.0
FLOOD_LOG_INTERVAL = 60.0


class Connections:
    """Per server: the idle connections oldest first, the awake clock and the requests it times."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.idle: dict[GuardedHttpProtocol, None] = {}  # insertion order: idle the longest first
        self.arriving: dict[GuardedHttpProtocol, float] = {}  # -> deadline on the awake clock
        self.awake = 0.0
        self.last_tick = 0.0
        self.ticker: asyncio.TimerHandle | None = None
        self.flood: asyncio.TimerHandle | None = None
        self.evicted = 0
        self.refused = 0

    # -- the awake clock and the slow-client limit

    def now(self) -> float:
        return self.awake + min(self.loop.time() - self.last_tick, MAX_TICK)

    def arriving_starts(self, connection: GuardedHttpProtocol) -> None:
        if self.ticker is None:
            self.last_tick = self.loop.time()
            self.ticker = self.loop.call_later(TICK, self._tick)
        self.arriving[connection] = self.now() + HEADER_TIMEOUT

    def _tick(self) -> None:
        now = self.loop.time()
        self.awake += min(now - self.last_tick, MAX_TICK)  # a freeze counts one tick at most
        self.last_tick = now
        late = [c for c, deadline in self.arriving.items() if deadline <= self.awake]
        for connection in late:
            del self.arriving[connection]
            connection.too_slow()
        self.ticker = self.loop.call_later(TICK, self._tick) if self.arriving else None

    # -- the connection cap

    def admit(self, connection: GuardedHttpProtocol, count: int) -> bool:
        """Called with the new connection counted: False when it must go."""
        if count <= MAX_CONNECTIONS:
            return True
        oldest = next((c for c in self.idle if c is not connection), None)
        if oldest is not None:
            self.evicted += 1
            self._flooded()
            oldest.transport.abort()  # its descriptor is free at once
            self.forget(oldest)
            return True
        self.refused += 1
        self._flooded()
        return False

    def _flooded(self) -> None:
        if self.flood is None:
            log.warning("more than %d connections: the longest idle ones are closed to make room", MAX_CONNECTIONS)
            self.flood = self.loop.call_later(FLOOD_LOG_INTERVAL, self._flood_report)

    def _flood_report(self) -> None:
        self.flood = None
        if self.evicted or self.refused:
            log.warning("connection flood: %d idle connection(s) closed, %d new one(s) refused in %.0f s (limit %d)",
                        self.evicted, self.refused, FLOOD_LOG_INTERVAL, MAX_CONNECTIONS)
            self.evicted = self.refused = 0
            self.flood = self.loop.call_later(FLOOD_LOG_INTERVAL, self._flood_report)

    def forget(self, connection: GuardedHttpProtocol) -> None:
        self.idle.pop(connection, None)
        self.arriving.pop(connection, None)


class GuardedHttpProtocol(LimitedHttpToolsProtocol):
    guard: Connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        guard = getattr(self.server_state, "connection_guard", None)
        if guard is None:
            guard = self.server_state.connection_guard = Connections(self.loop)  # type: ignore[attr-defined]
        self.guard = guard
        guard.idle[self] = None
        if not guard.admit(self, len(self.connections)):
            guard.forget(self)
            transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.forget(self)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.guard.idle.pop(self, None)
        self.guard.arriving_starts(self)

    def on_headers_complete(self) -> None:
        self.guard.arriving.pop(self, None)
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._unset_keepalive_if_required()  # no idle timeout: see the module's docstring
        if not self.transport.is_closing() and not self.pipeline and self not in self.guard.arriving:
            self.guard.idle[self] = None

    def too_slow(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


class ShutdownGuard:
    """ASGI middleware: a request still in flight when graceful shutdown runs out (uvicorn cancels its task)
    is answered with a JSON 503, not uvicorn's plain-text 500 and a CancelledError traceback in the log."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def sending(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except asyncio.CancelledError:
            if started:
                return  # half a response: uvicorn closes the connection
            from .http_common import error

            response = error(503, "ShuttingDown", "the extension is shutting down; retry on the next invoke")
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
