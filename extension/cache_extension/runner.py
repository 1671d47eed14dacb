"""After registration: load settings and config, prefetch, serve, then follow Lambda's events.

The prefetch starts before the HTTP stack is imported, so its threads (which import botocore and
make the AWS calls) overlap with that import.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import wait

from . import logs
from .lifecycle import ExtensionsApi, ExtensionsApiError
from .metrics import EmfEmitter, Metrics

log = logging.getLogger("cache_extension")

# Lambda allows 10 s for INIT: after this long INIT ends and slow fetches finish in the background
# (a read of such an item waits for its fetch rather than missing).
PREFETCH_BUDGET = 6.0
# The listening sockets' backlog, kept well under Lambda's 1,024 open files with the connection cap
# (http_server.MAX_CONNECTIONS): one accept burst takes at most the backlog, and the process keeps files of
# its own (AWS connections, pipes, the event loop). Here, not in http_server: binding happens before the
# prefetch starts, and the HTTP stack is imported while the prefetch runs.
LISTEN_BACKLOG = 128
# SHUTDOWN must end the process within 1 s; graceful shutdown gets most of it, then we exit anyway.
GRACEFUL_SHUTDOWN = 0.4
EXIT_DEADLINE = 0.9
# Managed Instances (no INVOKE events): the refresh timer sleeps until refresh-ahead is next due, at least
# this long (no busy loop whatever the store says) and at most the idle interval (EMF lines go out then).
TIMER_MIN_SLEEP = 0.01
TIMER_IDLE = 60.0
# Under SnapStart with CACHE_EXTENSION_SNAPSHOT_SECRETS=false, these sources wait for the first INVOKE.
SECRET_SOURCES = frozenset({"secrets", "parameters"})


def run(api: ExtensionsApi, mode, started: float, registered: float) -> int:
    logs.configure()
    from .config import ConfigError, load_config
    from .settings import SettingsError, load_settings

    try:
        settings = load_settings(os.environ)
        logs.configure(settings.log_level, json_lines=settings.log_json)
        log.debug("registered as %s in %.1f ms (%s; events %s)", api.name, (registered - started) * 1000,
                  mode.name, ", ".join(mode.events))
        config = load_config(settings.config_path, default_region=settings.region, default_ttl=settings.ttl,
                             default_stale=settings.max_stale, source_ttls=settings.source_ttls)
    except (SettingsError, ConfigError) as exc:
        return fail_init(api, "Extension.ConfigInvalid", str(exc))
    try:
        listeners = listen(settings.port)
    except OSError as exc:
        message = f"cannot listen on 127.0.0.1:{settings.port} (CACHE_EXTENSION_PORT): {exc.strerror or exc}"
        return fail_init(api, "Extension.PortUnavailable", message)
    return Extension(api, mode, settings, config, listeners, started).run()


def fail_init(api: ExtensionsApi, error_type: str, message: str) -> int:
    log.error("%s", message)
    try:
        api.init_error(error_type, message)
    except ExtensionsApiError as exc:
        log.error("could not report the init error: %s", exc)
    return 1


def listen(port: int) -> list[socket.socket]:
    """Bind before anything else can fail later: the port is listening before INIT ends.

    Loopback only, so nothing outside the sandbox can connect: 127.0.0.1, and ::1 as well where the
    kernel has IPv6, because "localhost" resolves to ::1 first for some clients (Node.js 17+).
    """
    sockets = [_bind(socket.AF_INET, "127.0.0.1", port)]
    if socket.has_ipv6:
        try:
            sockets.append(_bind(socket.AF_INET6, "::1", port))
        except OSError as exc:
            log.debug("not listening on [::1]:%d: %s", port, exc.strerror or exc)
    return sockets


def _bind(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP,
    # and with Nagle on, every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


class Extension:
    def __init__(self, api, mode, settings, config, listeners: list[socket.socket], started: float) -> None:
        from .clock import ElapsedClock

        self.api = api
        self.mode = mode
        self.clock = ElapsedClock()  # ages by real elapsed time, across a SnapStart restore too
        self.restores, self.skipped = 0, 0.0  # restores already answered with a refresh, and the time they skipped
        # Sources left out of INIT's prefetch (so out of a SnapStart snapshot): fetched on the first INVOKE.
        self.deferred = SECRET_SOURCES if mode.snapshot and not settings.snapshot_secrets else frozenset()
        self.wake = threading.Event()  # the refresh timer: a fetch settled, or we are stopping
        self.stopping = False
        self.settings = settings
        self.config = config
        self.listeners = listeners
        self.started = started
        self.server = None
        self.store = None
        self.exit_code = 0
        self.ready = threading.Event()  # INIT's prefetch is over: GET /health answers ready
        self.metrics = Metrics()
        self.emf = None
        if settings.metrics == "emf":
            # EMF goes to stdout like every log line: CloudWatch Logs extracts the metrics from it.
            self.emf = EmfEmitter(self.metrics, settings.metrics_namespace, settings.metrics_dimensions, _print_line)

    def run(self) -> int:
        from .fetchers import ClientFactory, create_fetchers
        from .lanes import LaneExecutors, lane_of
        from .store import Store

        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        # A few fetch threads per source and region (lanes.LaneExecutors): one that hangs delays no other.
        executors = LaneExecutors({lane_of(item) for item in self.config.items})
        fetchers = create_fetchers(self.config.sources, ClientFactory(self.metrics))
        store = self.store = Store(self.config.items, fetchers, executors, metrics=self.metrics, clock=self.clock,
                                   on_settle=self.wake.set if self.mode.timer_refresh else None)
        pending = store.prefetch(exclude=self.deferred) if self.settings.init_startup else []

        import asyncio

        import uvloop

        from .app import create_app
        from .http_server import Server

        # uvloop, not asyncio's loop. The loop is never closed: closing would wait for the default
        # executor's threads (the prefetch wait among them), and the process exits right after.
        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        app = create_app(self.config, store, self.settings.token, metrics=self.metrics, ready=self.ready)
        self.server = Server(app, loop, backlog=LISTEN_BACKLOG, graceful=GRACEFUL_SHUTDOWN)
        if self.stopping:
            self.server.stop()  # a signal that came before the server existed
        try:
            loop.run_until_complete(self._serve(pending))
        except Exception as exc:
            log.error("the HTTP server failed: %s", type(exc).__name__)
            self.exit_code = 1
        logging.shutdown()
        # Exit now: a fetch thread stuck on a slow AWS call must not hold the process past its deadline.
        os._exit(self.exit_code)

    async def _serve(self, pending) -> None:
        import asyncio

        serving = asyncio.ensure_future(self.server.serve(sockets=self.listeners))
        if pending:
            # Waited for in a thread: wrapping each future in asyncio would log every failed fetch twice.
            prefetch = asyncio.get_running_loop().run_in_executor(None, wait, pending, PREFETCH_BUDGET)
            await asyncio.wait([serving, prefetch], return_when=asyncio.FIRST_COMPLETED)
            failed = sum(1 for f in pending if f.done() and f.exception() is not None)
            unfinished = sum(1 for f in pending if not f.done())
            groups, names = self.store.listed()  # a path/filter group is one item here, holding many values
            log.info(
                "prefetched %s in %.0f ms (%d failed, %d still in flight)%s",
                logs.count(len(pending) - failed - unfinished, "item"), (time.monotonic() - self.started) * 1000,
                failed, unfinished,
                f"; {logs.count(groups, 'path/filter group')} listed {logs.count(names, 'value')}" if groups else "",
            )
        while not self.server.started and not serving.done():
            await asyncio.sleep(0.002)
        if serving.done():
            serving.result()  # re-raises a start-up failure
            return
        # Collections back on. What INIT loaded (modules, models, values) lives as long as the process: frozen,
        # later collections skip it, so a full one under load takes microseconds, not tens of milliseconds.
        gc.freeze()
        gc.enable()
        log.debug("garbage collection on, %d objects from INIT frozen", gc.get_freeze_count())
        self.ready.set()
        log.info("ready on 127.0.0.1:%d in %.0f ms (%s)", self.settings.port, (time.monotonic() - self.started) * 1000,
                 self.mode.name)
        threading.Thread(target=self._follow_events, name="events", daemon=True).start()
        if self.mode.timer_refresh:
            threading.Thread(target=self._refresh_on_timer, name="refresh-timer", daemon=True).start()
        await serving

    def _follow_events(self) -> None:
        """Block on event/next; the first call tells Lambda this extension's INIT is done."""
        try:
            while True:
                event = self.api.next_event()
                kind = event.get("eventType")
                if kind == "INVOKE":
                    self._on_invoke()
                    if self.emf is not None:
                        self.emf.on_invoke()
                elif kind == "SHUTDOWN":
                    log.info("shutdown (%s)", event.get("shutdownReason"))
                    if self.emf is not None:
                        self.emf.flush()
                    self.stop(0)
                    return
        except (ExtensionsApiError, ValueError) as exc:
            self._lost_api(exc)

    def _lost_api(self, exc: Exception) -> None:
        """event/next failed. When the API went away (no answer, and exit/error finds no one listening either),
        the environment is being torn down around this process (say `sam local invoke` removing its container
        right after the response): one debug line, exit 0. Any other failure is an error, reported with exit/error."""
        try:
            self.api.exit_error("Extension.ApiError", str(exc))
        except ExtensionsApiError as report_failure:
            if getattr(exc, "gone", False) and report_failure.gone:
                log.debug("the Extensions API went away (the environment is being torn down): %s", exc)
                self.stop(0)
                return
        log.error("lost the Extensions API: %s", exc)
        self.stop(1)

    def _on_invoke(self) -> None:
        """The environment runs only while an invoke is in flight: refresh what expires soon now. The first
        INVOKE after a SnapStart restore refreshes every configured item (the snapshot may be days old), as
        does the first INVOKE when sources were kept out of the snapshot (it follows the restore)."""
        self.clock()  # notices a restore, if this is the first look at the clock since one
        restored = self.clock.restores != self.restores
        if restored or self.deferred:
            if restored:
                log.info("restored from a snapshot taken %.0f s earlier: refreshing every item",
                         self.clock.skipped - self.skipped)
            self.restores, self.skipped, self.deferred = self.clock.restores, self.clock.skipped, frozenset()
            self._guarded(self.store.prefetch)
        self._refresh_ahead()

    def _refresh_on_timer(self) -> None:
        """Managed Instances: never frozen and no INVOKE events, so refresh-ahead (and the retry of items
        whose fetch failed) runs when the store says it is next due; a settled fetch may move that time."""
        while not self.stopping:
            due = self.store.next_refresh_due()
            delay = TIMER_IDLE if due is None else min(max(due - self.clock(), TIMER_MIN_SLEEP), TIMER_IDLE)
            if self.wake.wait(delay):
                self.wake.clear()
                if due is None or due > self.clock():
                    continue  # recompute: a fetch settled, or we are stopping
            self._refresh_ahead()
            if self.emf is not None:
                self.emf.on_invoke()

    def _refresh_ahead(self) -> None:
        started = self._guarded(self.store.refresh_ahead)
        if started:
            log.debug("refreshing %s ahead of expiry", logs.count(started, "entry", "entries"))

    @staticmethod
    def _guarded(function):
        try:
            return function()
        except Exception as exc:  # never lose the event loop or the timer over a refresh
            log.error("refresh failed: %s", type(exc).__name__)
            return 0

    def stop(self, code: int) -> None:
        self.exit_code = self.exit_code or code
        self.stopping = True
        self.wake.set()
        if self.server is not None:
            self.server.stop()
        deadline = threading.Timer(EXIT_DEADLINE, os._exit, (self.exit_code,))
        deadline.daemon = True
        deadline.start()

    def _on_signal(self, signum, frame) -> None:
        log.info("stopping on signal %d", signum)
        self.stop(0)


def _print_line(line: str) -> None:
    print(line, flush=True)
