"""The cache: one entry per configured item, TTL per entry, single-flight refresh, stale on failure.

Reads of a fresh entry return at once without taking a lock. Reads of an expired or missing entry
share one in-flight fetch (a concurrent.futures.Future the HTTP layer awaits), so N concurrent readers
cause one upstream call. Prefetch marks every entry in flight before its first call goes out, so a read
that arrives during INIT waits for the prefetch instead of missing.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from .config import Item
from .fetchers import Fetcher, FetchError, Value

log = logging.getLogger("cache_extension.store")


# On-demand entries (names `allow:` permits) are bounded; configured items are never evicted.
MAX_ON_DEMAND = 1000


def entry_key(item: Item) -> tuple:
    return (item.source, item.name, item.version_stage, item.version_id)


@dataclass(frozen=True)
class Result:
    value: Value
    state: str  # "hit", "miss" or "stale": the X-Cache header
    age: float  # seconds since the value was fetched


class _Entry:
    __slots__ = ("item", "cached", "pending")

    def __init__(self, item: Item) -> None:
        self.item = item
        # (value, fetched_at, expires_at), replaced as one tuple so lock-free readers never see a mix.
        self.cached: tuple[Value, float, float] | None = None
        self.pending: Future | None = None


class Store:
    def __init__(
        self,
        items: Iterable[Item],
        fetchers: Mapping[str, Fetcher],
        executor: Executor,
        *,
        clock: Callable[[], float] = time.monotonic,
        metrics=None,
    ) -> None:
        self._entries = {entry_key(item): _Entry(item) for item in items}
        self._on_demand: dict[tuple, None] = {}  # insertion-ordered: the oldest is evicted first
        self._fetchers = fetchers
        self._executor = executor
        self._clock = clock
        self._metrics = metrics
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def read(self, item: Item) -> Result | Future:
        """A fresh Result, or a Future of one (it raises FetchError when nothing is servable).

        `item` comes from the config: configured, or on demand as `allow:` permits.
        """
        entry = self._entries.get(entry_key(item)) or self._add_on_demand(item)
        cached = entry.cached
        if cached is not None:
            now = self._clock()
            if now < cached[2]:
                return Result(cached[0], "hit", now - cached[1])
        with self._lock:
            if entry.pending is None:
                self._start([entry])
            return entry.pending

    def _add_on_demand(self, item: Item) -> _Entry:
        key = entry_key(item)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                if len(self._on_demand) >= MAX_ON_DEMAND:
                    oldest = next((k for k in self._on_demand if self._entries[k].pending is None), None)
                    if oldest is not None:
                        del self._on_demand[oldest], self._entries[oldest]
                entry = self._entries[key] = _Entry(item)
                self._on_demand[key] = None
            return entry

    def prefetch(self) -> list[Future]:
        """Fetch every configured item, batched per source; returns the in-flight futures."""
        with self._lock:
            idle = [entry for entry in self._entries.values() if entry.pending is None]
            self._start(idle)
            return [entry.pending for entry in self._entries.values() if entry.pending is not None]

    def _start(self, entries: list[_Entry]) -> None:
        """Mark entries in flight and submit their fetches in batches. Caller holds the lock."""
        by_source: dict[str, list[_Entry]] = {}
        for entry in entries:
            entry.pending = Future()
            by_source.setdefault(entry.item.source, []).append(entry)
            if entry.cached is not None and self._metrics is not None:
                self._metrics.count(entry.item.source, "Refreshes")
        for source, group in by_source.items():
            fetcher = self._fetchers[source]
            for start in range(0, len(group), fetcher.batch_size):
                batch = group[start : start + fetcher.batch_size]
                self._executor.submit(self._fetch, fetcher, batch)

    def _fetch(self, fetcher: Fetcher, batch: list[_Entry]) -> None:
        try:
            outcomes = fetcher.get_many([entry.item for entry in batch])
        except BaseException as exc:  # a fetcher bug must not leave readers waiting forever
            error = FetchError.from_exception(exc, fetcher.operation)
            outcomes = {entry.item.name: error for entry in batch}
        for entry in batch:
            self._settle(entry, outcomes.get(entry.item.name) or FetchError("NoResult", 502, "no result"))

    def _settle(self, entry: _Entry, outcome: Value | FetchError) -> None:
        now = self._clock()
        item = entry.item
        with self._lock:
            future, entry.pending = entry.pending, None
            if isinstance(outcome, Value):
                entry.cached = (outcome, now, now + item.ttl)
            previous = entry.cached
        if isinstance(outcome, Value):
            log.debug("fetched %s %s", item.source, item.name)
            future.set_result(Result(outcome, "miss", 0.0))
        elif previous is not None:
            log.warning("refresh of %s %s failed (%s); serving the stale value", item.source, item.name, outcome.code)
            future.set_result(Result(previous[0], "stale", now - previous[1]))
        else:
            log.error("fetch of %s %s failed: %s", item.source, item.name, outcome.code)
            future.set_exception(outcome)
