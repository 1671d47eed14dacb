"""Lanes: calls to one source in one region, each with its own circuit (in the Store) and its own few fetch
threads (here), so a lane whose calls hang (each up to botocore's read timeout) holds only its own threads."""

from __future__ import annotations

import threading
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from .config import Item


def lane_of(item: Item) -> tuple:
    """Calls to one source in one region (with one role, for a role_arn): the unit with its own circuit and its
    own threads, and what one call may batch together."""
    return (item.source, item.region) if item.role is None else (item.source, item.region, item.role)


# Fetch threads: a few per lane; fewer per lane when a config spans many regions, so the total stays small
# (each thread costs a stack).
THREADS_PER_LANE = 4
THREAD_BUDGET = 12
MIN_THREADS_PER_LANE = 2


class LaneExecutors:
    """The Store's executor factory in the extension: a thread pool per lane, made on its first call (threads
    start only as calls need them). 3 sources in one region: at most 4 threads each, 12 in all."""

    def __init__(self, lanes: Iterable[tuple[str, str]]) -> None:
        self.lanes = max(1, len(set(lanes)))
        self.per_lane = max(MIN_THREADS_PER_LANE, min(THREADS_PER_LANE, THREAD_BUDGET // self.lanes))
        self._pools: dict[tuple[str, str], Executor] = {}
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        """The most threads these pools may run (a lane not configured, an on-demand region, adds its own)."""
        return self.per_lane * max(self.lanes, len(self._pools))

    def __call__(self, lane: tuple[str, str]) -> Executor:
        from concurrent.futures import ThreadPoolExecutor

        with self._lock:
            pool = self._pools.get(lane)
            if pool is None:
                pool = self._pools[lane] = ThreadPoolExecutor(self.per_lane, thread_name_prefix=f"fetch-{lane[0]}")
            return pool

    def threads(self) -> int:
        with self._lock:
            return sum(len(getattr(pool, "_threads", ())) for pool in self._pools.values())

    def shutdown(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.shutdown(wait=False, cancel_futures=True)
