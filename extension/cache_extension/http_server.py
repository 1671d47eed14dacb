"""The HTTP server: listening on the sockets the runner bound, the connection rules Lambda needs (slow
clients, freezes and floods), and graceful shutdown. One connection: http_protocol.py.

A connection is in one of three states: idle (between requests, or opened with nothing sent yet),
receiving a request's headers, or serving a request. Lambda freezes the environment between invokes
for seconds to hours, and the function reuses its kept-alive connection right after the thaw, so:

- an idle connection has no time limit at all (no keep-alive timeout); it
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

from .http_protocol import HttpProtocol

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
        self.idle: dict[HttpProtocol, None] = {}  # insertion order: idle the longest first
        self.arriving: dict[HttpProtocol, float] = {}  # -> deadline on the awake clock
        self.awake = 0.0
        self.last_tick = 0.0
        self.ticker: asyncio.TimerHandle | None = None
        self.flood: asyncio.TimerHandle | None = None
        self.evicted = 0
        self.refused = 0

    # -- the awake clock and the slow-client limit

    def now(self) -> float:
        return self.awake + min(self.loop.time() - self.last_tick, MAX_TICK)

    def arriving_starts(self, connection: HttpProtocol) -> None:
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

    def admit(self, connection: HttpProtocol, count: int) -> bool:
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

    def forget(self, connection: HttpProtocol) -> None:
        self.idle.pop(connection, None)
        self.arriving.pop(connection, None)


class Server:
    """Serves `app` (app.App) on sockets already bound and listening. stop() may be called from any thread
    or a signal handler: listening ends at once, idle connections close, requests in flight get
    `graceful` seconds to be answered, and those still running then are answered 503 ShuttingDown."""

    def __init__(self, app, loop: asyncio.AbstractEventLoop, *, backlog: int, graceful: float) -> None:
        self.app = app
        self.loop = loop
        self.backlog = backlog  # given again: create_server would otherwise listen() with its own default
        self.graceful = graceful
        self.guard = Connections(loop)
        self.connections: set[HttpProtocol] = set()
        self.tasks: set[asyncio.Task] = set()
        self.started = False
        self.stopping = False
        self._stop = asyncio.Event()

    def stop(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self._stop.set)
        except RuntimeError:  # the loop is closed: nothing left to stop
            pass

    async def serve(self, sockets) -> None:
        listeners = [await self.loop.create_server(lambda: HttpProtocol(self), sock=sock, backlog=self.backlog)
                     for sock in sockets]
        self.started = True
        await self._stop.wait()
        self.stopping = True
        for listener in listeners:
            listener.close()
        for connection in list(self.connections):
            connection.shutdown()
        deadline = self.loop.time() + self.graceful
        while self.tasks and self.loop.time() < deadline:
            await asyncio.sleep(0.01)
        for task in list(self.tasks):
            task.cancel()  # the protocol answers 503 ShuttingDown and closes
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=0.1)
        for connection in list(self.connections):
            if not connection.transport.is_closing():
                connection.transport.close()
        await asyncio.sleep(0)  # the transports write what is buffered before the loop stops
