"""The cache: one entry per item, TTL and stale window per entry, single-flight fetches, retries.

Reads of a fresh entry return at once without taking a lock. An expired entry still inside its stale
window is served as it is while one background refresh runs (stale-while-revalidate). Otherwise reads
share one in-flight fetch (a concurrent.futures.Future the HTTP layer awaits), so N concurrent readers
cause one upstream call. Prefetch marks every entry in flight before its first call goes out, so a read
that arrives during INIT waits for the prefetch instead of missing.

Failures follow the Policy: transient ones are retried with backoff while readers keep waiting on the
same Future; each source has a circuit that stops calls after repeated failures; a value inside its
stale window is served rather than an error.

Sources stay apart: calls go out per lane, a source in one region, each with its own circuit and its
own executor (with the executor factory the extension passes), so a source that hangs in one region
delays nothing else. A call that waited for a thread while its lane's circuit opened never goes out.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from .config import Item
from .fetchers import Fetcher, FetchError, Value
from .lanes import lane_of
from .logs import printable
from .policy import Circuit, Policy
from .store_paths import PathGroups

log = logging.getLogger("cache_extension.store")


# On-demand entries (names `allow:` permits) live in an LRU bounded by count and by bytes;
# configured items are never evicted.
MAX_ON_DEMAND = 1000
MAX_ON_DEMAND_BYTES = 16 * 1024 * 1024


def entry_key(item: Item) -> tuple:
    key = (item.source, item.name, item.version_stage, item.version_id)
    return key if item.listing is None else key + ("path",)  # a path group's own entry (store_paths.py)


class CircuitOpen(FetchError):
    """A call refused by an open circuit (no AWS call was made): held only until the circuit lets calls
    out again, and dropped when it closes, so reads succeed as soon as a probe has found AWS back."""


@dataclass(frozen=True)
class Result:
    value: Value
    state: str  # "hit", "miss" or "stale": the X-Cache header
    age: float  # seconds since the value was fetched
    error: FetchError | None = None  # why a stale value was served instead of a fresh one
    fresh_for: float = 0.0  # seconds the value stays fresh (hits only): Cache-Control's max-age, for clients' caches


class _Entry:
    __slots__ = ("item", "cached", "pending", "failed", "on_demand", "forced", "forced_pending", "follow",
                 "refresh_failures", "retry_at")

    def __init__(self, item: Item, on_demand: bool = False) -> None:
        self.item = item
        # (value, fetched_at, expires_at, stale_until), replaced as one tuple so lock-free readers never
        # see a mix.
        self.cached: tuple[Value, float, float, float] | None = None
        self.pending: Future | None = None
        self.failed: tuple[FetchError, float] | None = None  # the last error with nothing servable, until
        self.on_demand = on_demand
        self.forced = float("-inf")  # when a forced refresh last started
        self.forced_pending: Future | None = None  # that refresh's Future: `pending` while it is in flight
        self.follow: Future | None = None  # a forced refresh waiting for the fetch in flight to end
        # Refreshes of a servable value that failed in a row, and when refresh-ahead may try again: on a timer
        # (Managed Instances) nothing else would space the attempts, and a permanent error never opens a circuit.
        self.refresh_failures = 0
        self.retry_at = float("-inf")

    def servable(self, now: float) -> bool:
        """Holds a value that may still be answered: fresh, or inside its stale window."""
        return self.cached is not None and now < self.cached[3]


def _batches(entries: list[_Entry], size: int) -> list[list[_Entry]]:
    """Batches of at most `size` in which no name repeats: fetchers answer by name, and versions of one
    secret (its stages, version ids) share their name."""
    batches: list[tuple[list[_Entry], set[str]]] = []
    for entry in entries:
        name = entry.item.name
        for batch, names in batches:
            if len(batch) < size and name not in names:
                break
        else:
            batch, names = [], set()
            batches.append((batch, names))
        batch.append(entry)
        names.add(name)
    return [batch for batch, _ in batches]


def _thread_timer(delay: float, function: Callable, *args) -> None:
    timer = threading.Timer(delay, function, args)
    timer.daemon = True
    timer.start()


def _failed(error: FetchError) -> Future:
    future: Future = Future()
    future.set_exception(error)
    return future


class Store(PathGroups):
    def __init__(
        self,
        items: Iterable[Item],
        fetchers: Mapping[str, Fetcher],
        executor: Executor | Callable[[tuple[str, str]], Executor],  # one for all, or a factory per lane
        *,
        policy: Policy = Policy(),
        clock: Callable[[], float] = time.monotonic,
        later: Callable[..., None] = _thread_timer,  # later(delay, function, *args): retries after a backoff
        random: Callable[[], float] = random.random,
        metrics=None,
        on_settle: Callable[[], None] | None = None,  # called after fetches settle: next_refresh_due() may move
    ) -> None:
        self._entries = {entry_key(item): _Entry(item) for item in items}
        self._on_demand: OrderedDict[tuple, int] = OrderedDict()  # key -> bytes, least recently used first
        self._on_demand_bytes = 0
        self._fetchers = fetchers
        self._executor_for = (lambda lane: executor) if hasattr(executor, "submit") else executor
        self._executors: dict[tuple[str, str], Executor] = {}
        self._policy = policy
        self._clock = clock
        self._later = later
        self._random = random
        self._metrics = metrics
        self._on_settle = on_settle
        self._circuits: dict[tuple[str, str], Circuit] = {}  # per lane, made on first use
        self._lock = threading.Lock()
        self._init_paths()

    def __len__(self) -> int:
        return len(self._entries)

    def read(self, item: Item) -> Result | Future:
        """A servable Result, or a Future of one (it raises FetchError when nothing is servable).

        `item` comes from the config: configured, or on demand as `allow:` permits.
        """
        entry = self._entries.get(entry_key(item)) or self._add_on_demand(item)
        cached = entry.cached
        now = self._clock()
        if cached is not None:
            if entry.on_demand:
                self._touch(entry)
            if now < cached[2]:
                return Result(cached[0], "hit", now - cached[1], fresh_for=cached[2] - now)
            if now < cached[3] and self._policy.stale_while_revalidate:
                if entry.pending is None:
                    self._launch([entry])
                return Result(cached[0], "stale", now - cached[1])
        failed = entry.failed
        if failed is not None and now < failed[1]:
            return _failed(failed[0])
        return self._launch([entry])[0]

    def prefetch(self, exclude: frozenset[str] = frozenset()) -> list[Future]:
        """Fetch every configured item (but those of the `exclude` sources), batched per source; returns the
        in-flight futures."""
        return self._launch([entry for entry in list(self._entries.values())
                             if not entry.on_demand and entry.item.source not in exclude])

    def refresh_ahead(self) -> int:
        """Refresh what expires soon, batched like the prefetch: on INVOKE (the only time a frozen environment
        can work), or when next_refresh_due() says (Managed Instances: no INVOKE, no freeze). Returns how many
        entries were started."""
        if self._policy.refresh_ahead <= 0:
            return 0
        now = self._clock()
        with self._lock:
            due = [entry for entry in self._entries.values() if (at := self._due_at(entry, now)) is not None and at <= now]
        due.sort(key=lambda entry: entry.cached[2] if entry.cached is not None else float("-inf"))
        due = due[: self._policy.refresh_ahead_max]
        self._launch(due)
        self._count_each(due, "RefreshAhead")
        return len(due)

    def next_refresh_due(self) -> float | None:
        """When refresh_ahead() will next find work (on this store's clock), or None if nothing will ever be
        due until a fetch settles (on_settle is called then)."""
        if self._policy.refresh_ahead <= 0:
            return None
        now = self._clock()
        with self._lock:
            times = [at for entry in self._entries.values() if (at := self._due_at(entry, now)) is not None]
        return min(times, default=None)

    def _due_at(self, entry: _Entry, now: float) -> float | None:
        """When refresh-ahead should start a fetch for this entry, or None. Caller holds the lock."""
        if entry.pending is not None or entry.item.member_of is not None:
            return None  # in flight: its outcome settles it; a path member: its group's listing refreshes it
        cached, failed = entry.cached, entry.failed
        if failed is not None and not failed[0].transient:
            return None  # does not exist, or is denied: left to reads (and their error hold)
        if cached is None:
            # A configured item whose fetch failed transiently (say, throttled at INIT) is retried here, in one
            # batch with the others, rather than by reads one at a time, once its error hold is over. One never
            # fetched (CACHE_EXTENSION_INIT_STARTUP=false) waits for its first read.
            if entry.on_demand or failed is None:
                return None
            at = failed[1]
        else:
            at = cached[2] - self._policy.refresh_ahead * entry.item.ttl
            if entry.on_demand and now >= cached[3]:
                return None  # an on-demand value nobody could be served any more waits for a read
            at = max(at, entry.retry_at)
            if failed is not None:
                at = max(at, failed[1])
        circuit = self._circuit(lane_of(entry.item))
        if circuit.is_open:
            at = max(at, circuit.open_until)  # the next probe's turn (a probe's outcome also wakes the timer)
        return at

    def _circuit(self, lane: tuple[str, str]) -> Circuit:
        """The lane's circuit. Caller holds the lock."""
        circuit = self._circuits.get(lane)
        if circuit is None:
            circuit = self._circuits[lane] = Circuit(self._policy, self._clock)
        return circuit

    def _executor(self, lane: tuple[str, str]) -> Executor:
        """The lane's executor. Caller holds the lock."""
        executor = self._executors.get(lane)
        if executor is None:
            executor = self._executors[lane] = self._executor_for(lane)
        return executor

    def refresh(self, items: Iterable[Item]) -> list[Future]:
        """Force refresh (POST /refresh): one Future per item, in order, answered by a fetch that starts
        after this call, so a rotation made just before it is seen. A fetch already in flight for another
        reason (a read, refresh-ahead) may have left before the rotation: a new one follows it. An entry
        force-refreshed within the coalescing window shares that refresh's Future, in flight or done, so a
        repeat gets its outcome, failures included."""
        now = self._clock()
        entries = [self._entries.get(entry_key(item)) or self._add_on_demand(item) for item in items]
        start: dict[_Entry, None] = {}  # ordered, once each
        with self._lock:
            entries = [self._attached(entry) for entry in entries]
            for entry in entries:
                if entry in start:
                    continue
                if entry.follow is not None:  # a forced refresh already waits for a fetch starting after now
                    continue
                if now - entry.forced < self._policy.refresh_coalesce and entry.forced_pending is not None:
                    continue
                entry.forced = now
                if entry.pending is not None:
                    entry.follow = entry.forced_pending = Future()
                else:
                    entry.pending = entry.forced_pending = Future()
                    start[entry] = None
                self._count_each([entry], "ForcedRefreshes")
            futures = [entry.follow or entry.forced_pending for entry in entries]
        self._submit(list(start))
        return futures

    def entries(self, source: str | None = None, name: str | None = None) -> list[Item]:
        """The items in the cache, optionally filtered: every configured one, and on-demand ones holding a
        value (a name or version that was read once and failed is not worth refreshing)."""
        return [entry.item for entry in list(self._entries.values())
                if (source is None or entry.item.source == source) and (name is None or entry.item.name == name)
                and (not entry.on_demand or entry.cached is not None)
                and (name is not None or entry.item.member_of is None)]  # all: a path's members by its listing

    # -- on-demand entries --------------------------------------------------------------------------

    def _add_on_demand(self, item: Item) -> _Entry:
        key = entry_key(item)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None and item.member_of is not None:  # a name under a path: its group's listing decides
                entry = self._entries[key] = _Entry(item)
            elif entry is None:
                entry = self._entries[key] = _Entry(item, on_demand=True)
                self._on_demand[key] = 0
                self._evict()
            return entry

    def _touch(self, entry: _Entry) -> None:
        with self._lock:
            key = entry_key(entry.item)
            if key in self._on_demand:
                self._on_demand.move_to_end(key)

    def _evict(self) -> None:
        """Drop least recently used on-demand entries over either bound. Caller holds the lock."""
        for key in list(self._on_demand):
            if len(self._on_demand) <= MAX_ON_DEMAND and self._on_demand_bytes <= MAX_ON_DEMAND_BYTES:
                break
            entry = self._entries[key]
            if entry.pending is not None or key == next(reversed(self._on_demand)):
                continue  # never the one just added or stored, nor one a reader waits for
            self._on_demand_bytes -= self._on_demand.pop(key)
            del self._entries[key]
            if self._metrics is not None:
                self._metrics.count(entry.item.source, "Evictions")

    # -- fetching ------------------------------------------------------------------------------------

    def _launch(self, entries: list[_Entry]) -> list[Future]:
        """Start a fetch for each entry not already in flight; returns each entry's Future in order."""
        with self._lock:
            entries = [self._attached(entry) for entry in entries]
            start = [entry for entry in dict.fromkeys(entries) if entry.pending is None]
            for entry in start:
                entry.pending = Future()
            futures = [entry.pending for entry in entries]
            start, gone = self._by_group(start, self._clock())
        self._submit(start)
        if gone:
            self._settle_each(gone, quiet=True)
            self._drop_gone([entry for entry, error in gone if error.code == "NotFound"], self._clock())
        return futures

    def _attached(self, entry: _Entry) -> _Entry:
        """The entry the cache holds for this key. An on-demand one evicted after its reader looked it up
        comes back (so the next read joins its fetch), or yields to one added since. Caller holds the lock."""
        key = entry_key(entry.item)
        live = self._entries.get(key)
        if live is not None or not entry.on_demand:
            return live or entry
        size = len(entry.cached[0].body) if entry.cached is not None else 0
        self._entries[key] = entry
        self._on_demand[key] = size
        self._on_demand_bytes += size
        self._evict()
        return entry

    def _submit(self, entries: list[_Entry]) -> None:
        """Call out for entries just marked in flight: batched per lane, subject to its circuit."""
        submit: list[tuple[Executor, Fetcher, list[_Entry], int]] = []
        refused: list[tuple[_Entry, FetchError]] = []
        with self._lock:
            by_lane: dict[tuple[str, str], list[_Entry]] = {}
            for entry in entries:
                by_lane.setdefault(lane_of(entry.item), []).append(entry)
            for lane, group in by_lane.items():
                fetcher = self._fetchers[lane[0]]
                circuit = self._circuit(lane)
                listings = [[entry] for entry in group if entry.item.listing is not None]  # a call of its own
                for batch in _batches([entry for entry in group if entry.item.listing is None],
                                      fetcher.batch_size) + listings:
                    if circuit.allow():
                        submit.append((self._executor(lane), fetcher, batch, circuit.generation))
                    else:
                        refused += [(entry, self._circuit_error(lane)) for entry in batch]
        for executor, fetcher, batch, generation in submit:
            self._count_each([entry for entry in batch if entry.cached is not None], "Refreshes")
            executor.submit(self._fetch, fetcher, batch, 0, self._clock(), generation)
        # The opening was logged once; a line per refused read would flood.
        self._settle_each([(entry, error) for entry, error in refused], quiet=True)

    def _circuit_error(self, lane: tuple[str, str]) -> FetchError:
        """Why a call was refused. Caller holds the lock."""
        circuit = self._circuit(lane)
        code = circuit.last_code or "CircuitOpen"
        return CircuitOpen(code, 504 if code == "Timeout" else 502,
                           f"calls to {lane[0]} in {lane[1]} are paused for {circuit.retry_after():.1f} s after "
                           f"{circuit.failures} failures in a row", transient=True)

    def _fetch(self, fetcher: Fetcher, batch: list[_Entry], attempt: int, started: float, generation: int) -> None:
        """One call for `batch`, which its lane's circuit let out in its `generation`."""
        lane = lane_of(batch[0].item)
        with self._lock:
            circuit = self._circuit(lane)
            error = None
            if circuit.generation != generation:
                # Queued behind calls that hung or failed while the circuit opened: this one goes out only as
                # the probe, or once the circuit has closed again.
                if circuit.allow():
                    generation = circuit.generation
                else:
                    error = self._circuit_error(lane)
        if error is not None:
            self._settle_each([(entry, error) for entry in batch], quiet=True)
            return
        try:
            outcomes = fetcher.get_many([entry.item for entry in batch])
        except BaseException as exc:  # a fetcher bug must not leave readers waiting forever
            error = FetchError.from_exception(exc, fetcher.operation)
            outcomes = {entry.item.name: error for entry in batch}
        results = [(entry, outcomes.get(entry.item.name) or FetchError("NoResult", 502, "no result")) for entry in batch]
        now = self._clock()
        failed_code = next((o.code for _, o in results if isinstance(o, FetchError) and o.transient), None)
        # Retried: transient failures of entries with nothing servable, whose readers are waiting. A value
        # inside its stale window keeps being served, and the next read or INVOKE tries again: retrying
        # it now would only add calls to a throttled account.
        transient = [entry for entry, outcome in results if isinstance(outcome, FetchError) and outcome.transient
                     and not entry.servable(now)]
        source = fetcher.source
        delay = self._policy.backoff(attempt, self._random) if transient else 0.0
        jitter = self._random()  # one draw per call: what was fetched together expires (and refreshes) together
        with self._lock:
            was_open = circuit.is_open
            opened = circuit.record(failed_code, generation)
            retry = (transient and attempt < self._policy.retries and not circuit.is_open
                     and now + delay - started <= self._policy.retry_deadline)
            if was_open and not circuit.is_open:
                # Closed: reads refused meanwhile need not wait out their hold to find AWS back.
                for other in self._entries.values():
                    if other.failed is not None and isinstance(other.failed[0], CircuitOpen) \
                            and lane_of(other.item) == lane:
                        other.failed = None
        if opened:
            log.warning("%s in %s failed %d times in a row (%s): no calls for %.1f s", source, lane[1],
                        circuit.failures, failed_code, circuit.retry_after())
            if self._metrics is not None:
                self._metrics.count(source, "CircuitOpened")
        if retry:
            self._count_each(transient, "Retries")
            self._later(delay, self._retry, fetcher, transient, attempt + 1, started)
        retrying = set(transient) if retry else set()
        self._settle_each([(entry, outcome) for entry, outcome in results if entry not in retrying], jitter=jitter)

    def _retry(self, fetcher: Fetcher, batch: list[_Entry], attempt: int, started: float) -> None:
        lane = lane_of(batch[0].item)
        with self._lock:
            circuit = self._circuit(lane)
            allowed, generation = circuit.allow(), circuit.generation
            executor = self._executor(lane)
            error = None if allowed else self._circuit_error(lane)
        if error is None:
            executor.submit(self._fetch, fetcher, batch, attempt, started, generation)
        else:
            self._settle_each([(entry, error) for entry in batch], quiet=True)

    def _settle_each(self, outcomes: list[tuple[_Entry, Value | FetchError]], **options) -> None:
        """Settle each entry, then fetch again, together, those a forced refresh was waiting on."""
        follow = []
        # A listing settles its members first (store_paths.py), so that whoever waited on the group (the prefetch)
        # finds them in place. Quiet: a member's error was logged by the listing ("listed N it could not read"),
        # the group's own failure is logged once, below, and a name no longer listed is no failure.
        for group, outcome in [pair for pair in outcomes if pair[0].item.listing is not None]:
            members = self._adopt(group, outcome)
            for entry, found in members:
                quiet = options.get("quiet") or not isinstance(outcome, Value) or isinstance(found, FetchError)
                if self._settle(entry, found, **{**options, "quiet": quiet}):
                    follow.append(entry)
            self._drop_gone([entry for entry, found in members if getattr(found, "code", None) == "NotFound"],
                            self._clock())
        follow += [entry for entry, outcome in outcomes if self._settle(entry, outcome, **options)]
        if follow:
            self._submit(follow)
        if self._on_settle is not None and outcomes:
            self._on_settle()

    def _settle(self, entry: _Entry, outcome: Value | FetchError, quiet: bool = False, jitter: float = 0.0) -> bool:
        """Store the outcome and answer the readers; True when a forced refresh waits for a new fetch (its
        Future is now the entry's `pending`, and the caller submits it)."""
        now = self._clock()
        item = entry.item
        with self._lock:
            future, entry.pending, entry.follow = entry.pending, entry.follow, None
            follow = entry.pending is not None
            if isinstance(outcome, Value):
                expires = self._policy.expiry(now, item.ttl, jitter)
                entry.cached = (outcome, now, expires, expires + item.stale)
                entry.failed = None
                entry.refresh_failures, entry.retry_at = 0, float("-inf")
                key = entry_key(item)
                # (an entry evicted while its fetch was starting is no longer the one the LRU counts)
                if entry.on_demand and self._entries.get(key) is entry:
                    self._on_demand_bytes += len(outcome.body) - self._on_demand[key]
                    self._on_demand[key] = len(outcome.body)
                    self._on_demand.move_to_end(key)
                    self._evict()
            previous = entry.cached
            servable = entry.servable(now)
            if not isinstance(outcome, Value):
                if servable:
                    entry.retry_at = now + self._policy.refresh_backoff(entry.refresh_failures, outcome.transient)
                    entry.refresh_failures += 1
                else:
                    hold = now + self._policy.error_hold
                    if isinstance(outcome, CircuitOpen):  # no longer than the circuit refuses calls
                        hold = min(hold, self._circuit(lane_of(item)).open_until)
                    entry.failed = (outcome, hold)
        if future is None or future.cancelled():
            return follow
        if isinstance(outcome, Value):
            log.debug("fetched %s %s", item.source, printable(item.name))
            future.set_result(Result(outcome, "miss", 0.0))
        elif servable:
            if not quiet:
                log.warning("refresh of %s %s failed (%s); serving the stale value", item.source,
                            printable(item.name), outcome.code)
            future.set_result(Result(previous[0], "stale", now - previous[1], outcome))
        else:
            if not quiet:
                log.error("fetch of %s %s failed: %s", item.source, printable(item.name), outcome.code)
            future.set_exception(outcome)
        return follow

    def _count_each(self, entries: list[_Entry], counter: str) -> None:
        if self._metrics is not None:
            for entry in entries:
                self._metrics.count(entry.item.source, counter)
