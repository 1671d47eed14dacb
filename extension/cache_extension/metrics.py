"""Counters of what the cache does, for GET /stats and CloudWatch Embedded Metric Format lines.

Counts and timings only: never a value, never a name (names can be many, and metric dimensions cost).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict

# Per source: the counters the cache keeps.
CACHE_COUNTERS = ("Hits", "Misses", "StaleServed", "Refreshes", "RefreshAhead", "ForcedRefreshes", "Retries",
                  "CircuitOpened", "Evictions", "PathMaxReached")


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(CACHE_COUNTERS, 0))
        # Upstream calls by "service:Operation": calls, errors by code, latency sum and max (seconds).
        self._upstream: dict[str, dict] = {}
        self._emitted: dict[str, float] = {}  # what the last EMF line reported, to report differences

    def count(self, source: str, counter: str) -> None:
        with self._lock:
            self._cache[source][counter] += 1

    def upstream_call(self, operation: str, seconds: float, error_code: str | None) -> None:
        with self._lock:
            call = self._upstream.get(operation)
            if call is None:
                call = self._upstream[operation] = {"calls": 0, "errors": {}, "latency_sum": 0.0, "latency_max": 0.0}
            call["calls"] += 1
            call["latency_sum"] += seconds
            call["latency_max"] = max(call["latency_max"], seconds)
            if error_code:
                call["errors"][error_code] = call["errors"].get(error_code, 0) + 1

    def snapshot(self) -> dict:
        """Everything counted since start, as GET /stats shows it."""
        with self._lock:
            upstream = {
                operation: {
                    "calls": call["calls"],
                    "errors": dict(call["errors"]),
                    "latencyMsAvg": round(call["latency_sum"] / call["calls"] * 1000, 3) if call["calls"] else 0.0,
                    "latencyMsMax": round(call["latency_max"] * 1000, 3),
                }
                for operation, call in sorted(self._upstream.items())
            }
            return {"cache": {source: dict(counters) for source, counters in sorted(self._cache.items())},
                    "upstream": upstream}

    def totals(self) -> dict[str, float]:
        """Flat totals for EMF: per cache counter, upstream calls, errors and latency, read under one lock."""
        with self._lock:
            totals: dict[str, float] = {name: sum(c[name] for c in self._cache.values()) for name in CACHE_COUNTERS}
            calls = self._upstream.values()
            totals["UpstreamCalls"] = sum(call["calls"] for call in calls)
            totals["UpstreamErrors"] = sum(sum(call["errors"].values()) for call in calls)
            totals["UpstreamLatencySum"] = sum(call["latency_sum"] for call in calls)
        return totals

    def emf_line(self, namespace: str, dimensions: dict[str, str], now: float | None = None) -> str | None:
        """One EMF document with the changes since the previous one; None when nothing changed."""
        totals = self.totals()
        delta = {name: value - self._emitted.get(name, 0) for name, value in totals.items()}
        self._emitted = totals
        if not any(delta.values()):
            return None
        calls = delta.pop("UpstreamCalls")
        latency_sum = delta.pop("UpstreamLatencySum")
        values: dict[str, float] = {**delta, "UpstreamCalls": calls}
        units = dict.fromkeys(values, "Count")
        if calls:
            values["UpstreamLatency"] = round(latency_sum / calls * 1000, 3)
            units["UpstreamLatency"] = "Milliseconds"
        document = {
            "_aws": {
                "Timestamp": int((time.time() if now is None else now) * 1000),
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [sorted(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit} for name, unit in units.items()],
                }],
            },
            **dimensions,
            **values,
        }
        return json.dumps(document, separators=(",", ":"))


class EmfEmitter:
    """Writes EMF lines: on SHUTDOWN, and on INVOKE at most once a `interval` (the environment is frozen
    between invokes, so a wall-clock timer would not fire reliably)."""

    def __init__(self, metrics: Metrics, namespace: str, dimensions: dict[str, str], write, *,
                 interval: float = 60.0, clock=time.monotonic) -> None:
        self.metrics = metrics
        self.namespace = namespace
        self.dimensions = dimensions
        self.write = write
        self.interval = interval
        self.clock = clock
        self.last = clock()

    def on_invoke(self) -> None:
        if self.clock() - self.last >= self.interval:
            self.flush()

    def flush(self) -> None:
        self.last = self.clock()
        line = self.metrics.emf_line(self.namespace, self.dimensions)
        if line is not None:
            self.write(line)
