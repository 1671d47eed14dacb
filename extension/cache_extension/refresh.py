"""POST /refresh: fetch named items (or all) again now, e.g. right after a secret's rotation.

Each refresh is answered by a fetch that starts after it arrives (one in flight for a read may predate
the rotation, so a new one follows it). Rate limited by a token bucket, so a function calling it on every
invoke cannot turn the cache into a throttling source: an entry force-refreshed under a second ago
(in flight or done) is answered by that refresh, with no new call.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from concurrent.futures import Future
from typing import Callable

from .config import SOURCES, Config, Item
from .fetchers import FetchError
from .http_common import HTTPError, Request, Response, error, json_response, query_value
from .store import Store, entry_key

# The answer waits this long for AWS; what is still in flight then is reported as a timeout.
REFRESH_WAIT = 4.0
# Bucket: bursts of 10 refreshes, 1 more per second; `all=true` costs 5.
BUCKET_SIZE = 10.0
BUCKET_RATE = 1.0
ALL_COST = 5.0


class TokenBucket:
    def __init__(self, size: float, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.rate = rate
        self.clock = clock
        self.tokens = size
        self.updated = clock()
        self.lock = threading.Lock()

    def take(self, cost: float) -> float:
        """Take `cost` tokens: 0.0 when granted, else the seconds until they would be."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.size, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= cost:
                self.tokens -= cost
                return 0.0
            return (cost - self.tokens) / self.rate


def refresher(config: Config, store: Store, bucket: TokenBucket | None = None):
    bucket = bucket or TokenBucket(BUCKET_SIZE, BUCKET_RATE)

    def refresh(request: Request):
        """Checked and rate limited at once; the answer, which waits for AWS, is a coroutine."""
        name = query_value(request, "name", required=False)
        every = query_value(request, "all", required=False)
        source = query_value(request, "source", required=False)
        if (name is None) == (every is None):
            raise HTTPError(400, "give either 'name' or 'all=true'")
        if every is not None and (every.lower() != "true" or source is not None):
            raise HTTPError(400, "'all' must be true, and takes no 'source'")
        if source is not None and source not in SOURCES:
            raise HTTPError(400, f"query parameter 'source' must be one of {', '.join(SOURCES)}")
        items = store.entries() if every else _named(config, store, name, source)
        if not items:
            return error(404, "NotConfigured", "the name is not configured or allowed in config.yaml")
        wait = bucket.take(ALL_COST if every else 1.0)
        if wait > 0:
            response = error(429, "RateLimited", f"too many refreshes: retry in {wait:.1f} s")
            return response.header(b"retry-after", str(max(1, math.ceil(wait))))
        return _answer(items, store.refresh(items), name)

    return refresh


async def _answer(items: list[Item], futures: list[Future], name: str | None) -> Response:
    outcomes = await _outcomes(futures)
    refreshed = [{"source": item.source, "name": item.name} for item, failure in zip(items, outcomes) if not failure]
    failed = [{"source": item.source, "name": item.name, "status": failure.status, "error": failure.code}
              for item, failure in zip(items, outcomes) if failure]
    first = next((failure for failure in outcomes if failure), None)
    if name is not None and first is not None:
        return error(first.status, first.code, first.message)
    return json_response({"refreshed": refreshed, "failed": failed})


def _named(config: Config, store: Store, name: str, source: str | None) -> list[Item]:
    """Every entry with this name: configured or allowed, plus versions already cached on demand."""
    items: dict[tuple, Item] = {}
    for candidate in ((source,) if source else SOURCES):
        item = config.resolve(candidate, name)
        if item is not None:
            items[entry_key(item)] = item
            items.update((entry_key(cached), cached) for cached in store.entries(candidate, name))
    return list(items.values())


async def _outcomes(futures: list[Future]) -> list[FetchError | None]:
    """Each refresh's failure (None when it succeeded), waiting at most REFRESH_WAIT in all."""
    # shield: a client that hangs up must not cancel a fetch other readers share.
    waiting = [asyncio.shield(asyncio.wrap_future(future)) for future in futures]
    await asyncio.wait(waiting, timeout=REFRESH_WAIT)
    outcomes: list[FetchError | None] = []
    for task in waiting:
        if not task.done():
            task.cancel()
            outcomes.append(FetchError("Timeout", 504, f"the refresh took longer than {REFRESH_WAIT:.0f} s"))
        elif task.exception() is not None:
            exc = task.exception()
            outcomes.append(exc if isinstance(exc, FetchError) else FetchError.from_exception(exc, "refresh"))
        else:
            outcomes.append(task.result().error)  # a stale value served after a failed refresh
    return outcomes
