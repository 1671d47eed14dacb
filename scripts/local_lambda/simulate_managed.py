"""scripts/simulate-fleet --mode managed-instances: a few Lambda Managed Instances environments, each running many
function processes at once, read SSM parameters for a while, in virtual time, against an account-wide SSM quota; writes
docs/fleet-simulation-managed-instances.md (with the chart .png) and .json.

Managed Instances environments are long-lived and never frozen; a Python function runs one process per concurrency
slot (AWS_LAMBDA_MAX_CONCURRENCY), each with its own memory, and extensions get no INVOKE events. Three strategies meet
the same workload (the same environments, processes and invoke times):
- one cache per process, Powertools Parameters' get_parameter: a TTL cache in each process, one GetParameter call per
  missing or expired name, botocore's default retries (a small explicit model of that library, not its code);
- the same with get_parameters_by_name: the missing or expired names in GetParameters calls of up to 10;
- one shared extension per environment: the extension's real Store, Policy and SSM fetcher, refreshed by a timer as
  the extension does there: store.refresh_ahead() whenever store.next_refresh_due() says, the timer sleeping until then
  or until a fetch settles (the Store's on_settle). Every process of the environment reads that one Store.
"""

from __future__ import annotations

import argparse
import random
import time
from array import array
from collections import Counter, deque
from concurrent.futures import Future
from dataclasses import asdict
from typing import Any, Callable, Iterator

from botocore.exceptions import ClientError
from cache_extension.config import Item
from cache_extension.fetchers.ssm import ParameterFetcher
from cache_extension.metrics import Metrics
from cache_extension.policy import Policy
from cache_extension.runner import PREFETCH_BUDGET
from cache_extension.lanes import THREADS_PER_LANE as FETCH_THREADS  # one source in one region: one lane
from cache_extension.store import Result, Store

from local_lambda.simulate_common import (
    MAX_NAMES,
    REGION,
    Clients,
    Scheduler,
    SimulatedSSM,
    Upstream,
    counted_extension_logs,
    percentile,
)

NAME = "fleet-simulation-managed-instances"
OPTIONS = (
    ("envs", "4", int, "execution environments, long-lived (Managed Instances never freeze them)"),
    ("processes", "16", int, "function processes per environment: AWS_LAMBDA_MAX_CONCURRENCY (Python: a process a slot)"),
    ("start", "10s", "duration", "the environments start spread uniformly over this long"),
    ("items", "10", int, "SSM parameters, the same for every process"),
    ("ttl", "5m", "duration", "cache TTL, the same for every strategy (Powertools' max_age)"),
    ("stale", "5m", "duration", "stale window, the extension's only: the in-process library has none"),
    ("interval", "1s", "duration", "mean idle time of a process between two of its invokes, exponential"),
    ("duration", "20m", "duration", "virtual time simulated"),
    ("seed", "1", int, "random seed"),
    ("tps", "40", float, "SSM's account-wide quota, calls/s, also its burst"),
    ("latency", "20ms", "duration", "SSM answers this long after a call is sent"),
    ("timeout", "1s", "duration", "the thin client gives up on a read of the extension after this long"),
    ("change", "5m", "duration", "each parameter gets a new version this often upstream, at staggered times"),
    ("work", "10ms", "duration", "the function works this long after its reads, then returns"),
    ("value-bytes", "1024", int, "size of every parameter's value (a workload choice, not a measurement)"),
    ("sdk-attempts", "5", int, "attempts per call of the library's boto3 client: 5 in botocore's default (legacy) "
                               "retry mode"),
)
STRATEGIES = {
    "get_parameter": "one cache per process, Powertools-style get_parameter: a call per missing or expired name",
    "get_parameters_by_name": "one cache per process, Powertools-style get_parameters_by_name: GetParameters of up "
                              "to 10 missing or expired names",
    "extension": "one shared extension per environment: the real Store and Policy, refresh-ahead on a timer",
}


class PaddedSSM(SimulatedSSM):
    """The simulated SSM, its values padded to the workload's size."""

    def __init__(self, *args, value_bytes: int) -> None:
        super().__init__(*args)
        self.value_bytes = value_bytes

    def _parameter(self, name: str, now: float) -> dict:
        parameter = super()._parameter(name, now)
        parameter["Value"] = parameter["Value"].ljust(self.value_bytes, ".")
        return parameter


class Reads:
    """What every read saw, for one strategy."""

    def __init__(self, seconds: int, upstream: Upstream, names: list[str]) -> None:
        self.upstream = upstream
        self.names = names
        self.ages, self.staleness = array("d"), array("d")
        self.states: Counter = Counter()
        self.failures: Counter = Counter()
        self.per_s, self.failed_per_s = [0] * seconds, [0] * seconds
        self.invokes = self.failed_invokes = 0

    def served(self, now: float, index: int, version: int, age: float, state: str) -> None:
        self.states[state] += 1
        self.per_s[int(now)] += 1
        self.ages.append(age)
        superseded = self.upstream.superseded_at(self.names[index], version)
        self.staleness.append(now - superseded if now > superseded else 0.0)

    def failed(self, now: float, code: str) -> None:
        self.failures[code] += 1
        self.per_s[int(now)] += 1
        self.failed_per_s[int(now)] += 1


class Process:
    """One function process: serves one invoke at a time for as long as the run lasts. Its program is a generator
    that yields a delay (seconds) or a Future of the extension's answer; a Future is waited for at most the client's
    timeout, and the generator is sent whether it was answered."""

    def __init__(self, run: Run, environment: int, index: int) -> None:
        self.run = run
        self.scheduler = run.scheduler
        self.options = run.options
        self.gaps = random.Random(f"{run.options.seed}-{environment}-{index}-gaps")  # alike for every strategy
        self.token = 0
        self.program = self.serve()

    def start(self) -> None:
        self._step(None)

    def serve(self) -> Iterator:
        reads = self.run.reads
        while True:
            reads.invokes += 1
            failed = sum(reads.failures.values())
            yield from self.invoke()
            if sum(reads.failures.values()) != failed:
                reads.failed_invokes += 1
            yield self.options.work
            yield self.gaps.expovariate(1.0 / self.options.interval)

    def invoke(self) -> Iterator:
        raise NotImplementedError

    def _step(self, sent: Any) -> None:
        wait = self.program.send(sent)
        scheduler = self.scheduler
        if wait.__class__ is not Future:
            scheduler.at(scheduler.now + wait, self._step, None)
            return
        self.token += 1
        token = self.token
        wait.add_done_callback(lambda _: scheduler.at(scheduler.now, self._resume, token, True))
        scheduler.at(scheduler.now + self.options.timeout, self._resume, token, False)

    def _resume(self, token: int, answered: bool) -> None:
        if token == self.token:
            self.token += 1
            self._step(answered)


class LibraryProcess(Process):
    """A process with its own cache, as Powertools Parameters keeps one (a dict of value and expiry per name, the
    same TTL): a hit when unexpired, else a call from this process. The boto3 client retries a throttled call
    (botocore's legacy mode: `sdk_attempts` attempts, sleeping random() * 2**n s after the n-th failure); when every
    attempt is throttled the library raises and the function's read fails: get_parameters_by_name raises for every
    name it was asked for."""

    def __init__(self, run: Run, environment: int, index: int) -> None:
        super().__init__(run, environment, index)
        self.cache: dict[str, tuple[int, float, float, int]] = {}  # name -> (version, fetched, expires, bytes)
        self.backoff = random.Random(f"{run.options.seed}-{environment}-{index}-sdk").random
        self.code = ""

    def invoke(self) -> Iterator:
        names, reads = self.run.names, self.run.reads
        by_name = self.run.strategy == "get_parameters_by_name"
        # get_parameters_by_name looks in its cache once, fetches what it lacks and answers with both.
        expired = [i for i, name in enumerate(names) if not self._fresh(name)] if by_name else []
        ok = True
        for first in range(0, len(expired), MAX_NAMES):
            ok = yield from self._call([names[i] for i in expired[first:first + MAX_NAMES]])
            if not ok:
                break
        for index, name in enumerate(names):
            if not by_name:  # get_parameter, one name at a time
                if self._fresh(name):
                    ok = True
                else:
                    expired.append(index)
                    ok = yield from self._call([name])
            now = self.scheduler.now
            if not ok:
                reads.failed(now, self.code)
                continue
            version, fetched, _, _ = self.cache[name]
            reads.served(now, index, version, now - fetched, "miss" if index in expired else "hit")

    def _fresh(self, name: str) -> bool:
        cached = self.cache.get(name)
        return cached is not None and self.scheduler.now < cached[2]

    def _call(self, names: list[str]) -> Iterator:
        run = self.run
        for attempt in range(self.options.sdk_attempts):
            yield self.options.latency
            try:
                response = run.ssm.get_parameters(Names=names)
            except ClientError as exc:
                self.code = exc.response["Error"]["Code"]
                if attempt + 1 < self.options.sdk_attempts:
                    run.sdk_retries += 1
                    yield self.backoff() * 2**attempt
                continue
            now = self.scheduler.now
            for parameter in response["Parameters"]:
                self.cache[parameter["Name"]] = (parameter["Version"], now, now + self.options.ttl,
                                                 len(parameter["Value"].encode()))
            return True
        return False


class ExtensionProcess(Process):
    """A process that reads every item from its environment's extension, one after another, as through a thin
    client: store.read(), waiting on the Future it may return for at most the client's timeout."""

    def __init__(self, run: Run, environment: ExtensionEnvironment, index: int) -> None:
        super().__init__(run, environment.index, index)
        self.store = environment.store

    def invoke(self) -> Iterator:
        reads = self.run.reads
        for index, item in enumerate(self.run.items):
            result = self.store.read(item)
            if result.__class__ is not Result:
                if not result.done() and not (yield result):
                    reads.failed(self.scheduler.now, "ClientTimeout")
                    continue
                error = result.exception()
                if error is not None:
                    reads.failed(self.scheduler.now, getattr(error, "code", type(error).__name__))
                    continue
                result = result.result()
            reads.served(self.scheduler.now, index, result.value.meta["Version"], result.age, result.state)


class RefreshTimer:
    """The extension's refresh thread on Managed Instances, in virtual time: store.refresh_ahead() while
    store.next_refresh_due() is now or past, then sleep until the due time, or with none until woken; the Store's
    on_settle wakes it (a settled fetch may move the due time). A wake while it sleeps replaces the sleep."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.store: Store | None = None
        self.token = 0
        self.runs = self.refreshes = self.entries = 0
        self.due_but_idle = 0  # next_refresh_due() said now, and refresh_ahead() started nothing
        self.last = (-1.0, 0)  # (instant, runs at it)
        self.most_runs_at_one_instant = 0

    def wake(self) -> None:
        self._sleep_until(self.scheduler.now)

    def _sleep_until(self, when: float) -> None:
        self.token += 1
        self.scheduler.at(when, self._run, self.token)

    def _run(self, token: int) -> None:
        if token != self.token:
            return  # woken since, or this was a stale sleep
        now, store = self.scheduler.now, self.store
        self.runs += 1
        self.last = (now, self.last[1] + 1 if self.last[0] == now else 1)
        self.most_runs_at_one_instant = max(self.most_runs_at_one_instant, self.last[1])
        due = store.next_refresh_due()
        while due is not None and due <= now:
            started = store.refresh_ahead()
            if not started:  # a real thread would spin here: counted, and left to the next wake
                self.due_but_idle += 1
                due = None
                break
            self.refreshes += 1
            self.entries += started
            due = store.next_refresh_due()
        self.token += 1  # a wake during refresh_ahead() is served by this run
        if due is not None:
            self._sleep_until(due)


class ExtensionEnvironment:
    """One environment running the extension: a real Store whose clock, executor (FETCH_THREADS fetch threads)
    and retry timers are virtual, with its refresh timer. Never frozen."""

    def __init__(self, run: Run, index: int) -> None:
        self.run = run
        self.index = index
        self.scheduler = run.scheduler
        self.busy = 0
        self.queued: deque = deque()
        self.metrics = Metrics()
        self.timer = RefreshTimer(run.scheduler)
        self.store = Store(run.items, {"parameters": run.fetcher}, self, policy=run.policy,
                           clock=lambda: self.scheduler.now, later=self.later,
                           random=random.Random(f"{run.options.seed}-{index}-store").random,
                           metrics=self.metrics, on_settle=self.timer.wake)
        self.timer.store = self.store
        self.processes = [ExtensionProcess(run, self, i) for i in range(run.options.processes)]
        self.waiting = 0
        self.ready = False

    def submit(self, function: Callable, *args) -> None:
        if self.busy >= FETCH_THREADS:
            self.queued.append((function, args))
            return
        self.busy += 1
        self.scheduler.at(self.scheduler.now + self.run.options.latency, self._answered, function, args)

    def _answered(self, function: Callable, args: tuple) -> None:
        function(*args)
        self.busy -= 1
        if self.queued:
            function, args = self.queued.popleft()
            self.submit(function, *args)

    def later(self, delay: float, function: Callable, *args) -> None:
        self.scheduler.at(self.scheduler.now + delay, function, *args)

    def start(self) -> None:
        """INIT: the prefetch, the timer started; the function's processes serve once the prefetch has settled, or
        after the extension's budget."""
        futures = self.store.prefetch()
        self.timer.wake()
        self.waiting = len(futures)
        for future in futures:
            future.add_done_callback(self._prefetched)
        self.scheduler.at(self.scheduler.now + PREFETCH_BUDGET, self._serve)

    def _prefetched(self, _future) -> None:
        self.waiting -= 1
        if self.waiting == 0:
            self.scheduler.at(self.scheduler.now, self._serve)

    def _serve(self) -> None:
        if not self.ready:
            self.ready = True
            for process in self.processes:
                process.start()

    def held(self) -> list[int]:
        """The size of every value this environment holds, read once from the Store at the end of the run."""
        outcomes = [self.store.read(item) for item in self.run.items]
        return [len(outcome.value.body) for outcome in outcomes if outcome.__class__ is Result]


class LibraryEnvironment:
    """One environment without the extension: its processes start serving at once; each fetches on its first
    read (Powertools fetches lazily)."""

    def __init__(self, run: Run, index: int) -> None:
        self.index = index
        self.processes = [LibraryProcess(run, index, i) for i in range(run.options.processes)]

    def start(self) -> None:
        for process in self.processes:
            process.start()

    def held(self) -> list[int]:
        return [cached[3] for process in self.processes for cached in process.cache.values()]


class Run:
    """One strategy over the workload."""

    def __init__(self, options: argparse.Namespace, strategy: str) -> None:
        self.options = options
        self.strategy = strategy
        self.scheduler = Scheduler(options.duration)
        self.seconds = int(options.duration) + 1
        self.names = [f"fleet-param-{i:02d}" for i in range(options.items)]
        self.upstream = Upstream(self.names, options.change)
        self.ssm = PaddedSSM(self.scheduler, self.upstream, options.tps, self.seconds, value_bytes=options.value_bytes)
        self.reads = Reads(self.seconds, self.upstream, self.names)
        self.sdk_retries = 0
        self.fetcher = ParameterFetcher(Clients(self.ssm))
        self.policy = Policy(**dict(options.policy))
        self.items = [Item(source="parameters", name=name, region=REGION, ttl=options.ttl, stale=options.stale)
                      for name in self.names]
        kind = ExtensionEnvironment if strategy == "extension" else LibraryEnvironment
        self.environments = [kind(self, index) for index in range(options.envs)]
        starts = random.Random(options.seed)
        for environment in self.environments:
            self.scheduler.at(starts.random() * options.start, environment.start)


def simulate(options: argparse.Namespace, strategy: str) -> tuple[dict[str, Any], Run]:
    """Run one strategy; returns its summary and the run (with its simulated SSM) for inspection."""
    started = time.monotonic()
    with counted_extension_logs() as log_lines:
        run = Run(options, strategy)
        run.scheduler.run()
        summary = summarise(run, log_lines)
    summary["wall_s"] = round(time.monotonic() - started, 1)
    return summary, run


def summarise(run: Run, log_lines: Counter) -> dict[str, Any]:
    ssm, reads, options = run.ssm, run.reads, run.options
    extension = run.strategy == "extension"
    cache: Counter = Counter()
    timers = [environment.timer for environment in run.environments] if extension else []
    for environment in run.environments if extension else []:
        for counters in environment.metrics.snapshot()["cache"].values():
            cache.update(counters)
    held = [size for environment in run.environments for size in environment.held()]  # after the counters
    failed = sum(reads.failures.values())
    served = len(reads.ages)
    minutes = options.duration / 60
    second_half = ssm.calls_per_s[run.seconds // 2:run.seconds]
    return {
        "strategy": run.strategy,
        "description": STRATEGIES[run.strategy],
        "policy": asdict(run.policy) if extension else None,
        "policy_overrides": dict(options.policy) if extension else {},
        "batch_size": run.fetcher.batch_size if extension else 1 if run.strategy == "get_parameter" else MAX_NAMES,
        "api_calls": ssm.calls,
        "calls_per_min": round(ssm.calls / minutes, 1),
        "calls_per_min_second_half": round(60 * sum(second_half) / len(second_half), 1) if second_half else None,
        "peak_calls_per_s": max(ssm.calls_per_s),
        "throttled_calls": ssm.throttled,
        "throttled_pct": round(100 * ssm.throttled / ssm.calls, 2) if ssm.calls else 0.0,
        "values_fetched": ssm.names_returned,
        "reads": served + failed,
        "hits": reads.states["hit"],
        "misses": reads.states["miss"],
        "stale_served": reads.states["stale"],
        "failed_reads": failed,
        "failed_reads_pct": round(100 * failed / (served + failed), 3) if served + failed else 0.0,
        "failed_reads_by_code": dict(sorted(reads.failures.items())),
        "invokes": reads.invokes,
        "failed_invokes": reads.failed_invokes,
        "age_p50_s": percentile(reads.ages, 50),
        "age_p99_s": percentile(reads.ages, 99),
        "age_max_s": round(max(reads.ages), 3) if reads.ages else None,
        "staleness_p50_s": percentile(reads.staleness, 50),
        "staleness_p99_s": percentile(reads.staleness, 99),
        "staleness_max_s": round(max(reads.staleness), 3) if reads.staleness else None,
        "superseded_reads_pct": round(100 * sum(1 for s in reads.staleness if s > 0) / served, 2) if served else 0.0,
        "caches": len(run.environments) * (1 if extension else options.processes),
        "copies_held": len(held),
        "value_bytes_held": sum(held),
        "sdk_retries": run.sdk_retries,
        "store_counters": {name: cache[name] for name in ("Refreshes", "RefreshAhead", "Retries", "CircuitOpened")},
        "timer": {"runs": sum(t.runs for t in timers), "refresh_ahead_calls": sum(t.refreshes for t in timers),
                  "entries_started": sum(t.entries for t in timers),
                  "due_but_idle": sum(t.due_but_idle for t in timers),
                  "most_runs_at_one_instant": max((t.most_runs_at_one_instant for t in timers), default=0)},
        "log_lines": dict(sorted(log_lines.items())),
        "series": {"calls_per_s": ssm.calls_per_s[:run.seconds], "throttled_per_s": ssm.throttled_per_s[:run.seconds],
                   "reads_per_s": reads.per_s, "failed_reads_per_s": reads.failed_per_s},
    }
