"""Simulates a fleet of Lambda execution environments reading SSM parameters through the extension's cache, in
virtual time, against an account-wide SSM rate limit, and writes docs/fleet-simulation.md (with the chart
docs/fleet-simulation.png) and docs/fleet-simulation.json.

The cache is the extension's own: each environment has a real cache_extension.store.Store with a real Policy and the
real SSM fetcher (cache_extension.fetchers.ssm.ParameterFetcher), whose botocore client is the simulated SSM below.
Only time, threads and AWS are simulated:
- a discrete-event scheduler supplies every Store's clock, its executor (fetch threads) and its timers (retries);
- an environment runs only during its INIT and while an invoke is in flight (Lambda freezes it in between): a retry
  timer or a queued fetch that falls due while it is frozen waits for its next invoke. A call already sent when the
  freeze comes is answered by SSM on time, and the environment sees the answer when it thaws;
- SSM answers GetParameters after a constant latency and throttles (ThrottlingException, a real botocore ClientError)
  every call over a token bucket of --tps calls per second (burst --tps), shared by all environments.

Two strategies run over the same workload: the original sample's (policy.NAIVE, one item per call, no stale window)
and the extension's default Policy (batched calls, TTL jitter, refresh-ahead on INVOKE, retries with backoff, a
circuit, stale-while-revalidate, error hold).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shlex
import sys
import time
from array import array
from collections import Counter, deque
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from cache_extension.config import Item
from cache_extension.fetchers.ssm import ParameterFetcher
from cache_extension.metrics import Metrics
from cache_extension.policy import NAIVE, Policy
from cache_extension.runner import PREFETCH_BUDGET
from cache_extension.lanes import THREADS_PER_LANE as FETCH_THREADS  # one source in one region: one lane
from cache_extension.store import Result, Store

from local_lambda.simulate_common import (
    REGION,
    ROOT,
    Clients,
    Scheduler,
    SimulatedSSM,
    Upstream,
    add_options,
    argument_as_given,
    counted_extension_logs,
    log,
    percentile,
)
from local_lambda.simulate_common import duration_text as _duration
from local_lambda.simulate_common import ms as _ms
from local_lambda.simulate_fleet_report import chart, markdown, table

# The workload's options: name, default as written on a command line, kind ("duration" is a Go duration), help.
OPTIONS = (
    ("envs", "1000", int, "execution environments"),
    ("burst", "30s", "duration", "cold starts are spread uniformly over this long"),
    ("items", "10", int, "SSM parameters, the same for every environment"),
    ("ttl", "5m", "duration", "cache TTL"),
    ("stale", "5m", "duration", "stale window, ours only: the original sample has none"),
    ("interval", "5s", "duration", "mean idle time between invokes of one environment, exponential"),
    ("duration", "20m", "duration", "virtual time simulated"),
    ("seed", "1", int, "random seed"),
    ("tps", "40", float, "SSM's account-wide quota, calls/s, also its burst"),
    ("latency", "20ms", "duration", "SSM answers this long after a call is sent"),
    ("timeout", "1s", "duration", "the function's client gives up on a read after this long"),
    ("change", "5m", "duration", "each parameter gets a new version this often upstream, at staggered times"),
    ("work", "10ms", "duration", "the function works this long after its reads, then returns"),
)

MODES = ("on-demand", "managed-instances")  # managed-instances: simulate_managed.py
STRATEGIES = {
    "naive": "original sample: one item per call, no jitter, no retries, no stale, no refresh-ahead",
    "ours": "extension's default Policy: batched calls, jitter, refresh-ahead, retries, circuit, stale",
}


class Fleet:
    """One strategy's run: the workload, the simulated SSM, and what every read saw."""

    def __init__(self, options: argparse.Namespace, strategy: str) -> None:
        self.options = options
        self.strategy = strategy
        self.scheduler = Scheduler(options.duration)
        self.seconds = int(options.duration) + 1
        names = [f"fleet-param-{i:02d}" for i in range(options.items)]
        self.upstream = Upstream(names, options.change)
        self.ssm = SimulatedSSM(self.scheduler, self.upstream, options.tps, self.seconds)
        self.fetcher = ParameterFetcher(Clients(self.ssm))
        if strategy == "naive":
            self.policy, stale = NAIVE, 0.0
            self.fetcher.batch_size = 1  # the sample's unbatched GetParameter: one name per call
        else:
            self.policy, stale = Policy(**dict(options.policy)), options.stale
        self.items = [Item(source="parameters", name=name, region=REGION, ttl=options.ttl, stale=stale)
                      for name in names]
        self.phases = [self.upstream.phase[name] for name in names]
        # What the reads saw.
        self.ages = array("d")
        self.staleness = array("d")
        self.states: Counter = Counter()
        self.failures: Counter = Counter()
        self.reads_per_s = [0] * self.seconds
        self.failed_per_s = [0] * self.seconds
        self.invokes = self.failed_invokes = 0
        self.init_seconds = array("d")
        workload = random.Random(options.seed)
        self.environments = [Environment(self, index, options.seed) for index in range(options.envs)]
        for environment in self.environments:
            self.scheduler.at(workload.random() * options.burst, environment.cold_start)

    def run(self) -> None:
        self.scheduler.run()


class Environment:
    """One execution environment: a real Store whose clock, executor and timers are virtual, frozen between
    invokes. Its code sees the time it runs at: while frozen, that is its next thaw."""

    def __init__(self, fleet: Fleet, index: int, seed: int) -> None:
        self.fleet = fleet
        self.scheduler = fleet.scheduler
        self.options = fleet.options
        self.gaps = random.Random(f"{seed}-{index}-gaps")  # the same invoke pattern for both strategies
        self.running = False
        self.thaw_at = 0.0
        self.busy = 0  # fetch threads in use (the extension runs FETCH_THREADS)
        self.queued: deque = deque()
        self.deferred: list = []  # timers that fell due while frozen
        self.phase = "cold"
        self.started = 0.0
        self.waiting = 0
        self.next_read = 0
        self.read_token = 0
        self.invoke_failed = False
        self.metrics = Metrics()
        self.store = Store(fleet.items, {"parameters": fleet.fetcher}, self, policy=fleet.policy, clock=self.clock,
                           later=self.later, random=random.Random(f"{seed}-{index}-store").random,
                           metrics=self.metrics)

    # -- what the Store is given ----------------------------------------------------------------------

    def clock(self) -> float:
        return self.scheduler.now if self.running else self.thaw_at

    def submit(self, function: Callable, *args) -> None:
        """The executor: the call goes out now (at the thaw if frozen) and is answered after the latency."""
        if self.busy >= FETCH_THREADS:
            self.queued.append((function, args))
            return
        self.busy += 1
        self.scheduler.at(self.clock() + self.options.latency, self._answered, function, args)

    def _answered(self, function: Callable, args: tuple) -> None:
        function(*args)  # the fetch: SSM decides now; the Store settles at this environment's clock
        self.busy -= 1
        if self.queued:
            function, args = self.queued.popleft()
            self.submit(function, *args)

    def later(self, delay: float, function: Callable, *args) -> None:
        self.scheduler.at(self.clock() + delay, self._timer, function, args)

    def _timer(self, function: Callable, args: tuple) -> None:
        if self.running:
            function(*args)
        else:
            self.deferred.append((function, args))

    # -- Lambda's side: INIT, invokes, freezes ------------------------------------------------------

    def cold_start(self) -> None:
        self.running = True
        self.phase = "init"
        self.started = self.scheduler.now
        futures = self.store.prefetch()
        self.waiting = len(futures)
        for future in futures:
            future.add_done_callback(self._prefetched)
        self.scheduler.at(self.scheduler.now + PREFETCH_BUDGET, self._init_done)
        if not futures:
            self._init_done()

    def _prefetched(self, future) -> None:
        self.waiting -= 1
        if self.waiting == 0:
            self.scheduler.at(self.scheduler.now, self._init_done)

    def _init_done(self) -> None:
        if self.phase != "init":
            return
        self.phase = "warm"
        self.fleet.init_seconds.append(self.scheduler.now - self.started)
        self.invoke()  # the invoke that caused the cold start

    def invoke(self) -> None:
        self.running = True
        self.fleet.invokes += 1
        self.invoke_failed = False
        if self.deferred:
            deferred, self.deferred = self.deferred, []
            for function, args in deferred:
                function(*args)
        self.store.refresh_ahead()  # what the extension does on every INVOKE event
        self.next_read = 0
        self._read_on()

    def _read_on(self) -> None:
        """The function reads its items one after another, as through a thin client."""
        fleet, store, items = self.fleet, self.store, self.fleet.items
        now = self.scheduler.now
        second = int(now)
        # The common case inline (it is most of the run's time): _served, for a value in memory.
        states, reads_per_s = fleet.states, fleet.reads_per_s
        ages, staleness = fleet.ages.append, fleet.staleness.append
        phases, period = fleet.phases, fleet.upstream.period
        while self.next_read < len(items):
            index = self.next_read
            result = store.read(items[index])
            if result.__class__ is Result:
                states[result.state] += 1
                reads_per_s[second] += 1
                ages(result.age)
                superseded = phases[index] + result.value.meta["Version"] * period
                staleness(now - superseded if now > superseded else 0.0)
                self.next_read = index + 1
                continue
            if result.done():
                self._settled(index, result)
                continue
            self.read_token += 1
            token, scheduler = self.read_token, self.scheduler
            result.add_done_callback(lambda future: scheduler.at(scheduler.now, self._answer, token, index, future))
            scheduler.at(scheduler.now + self.options.timeout, self._timed_out, token, index)
            return
        if self.invoke_failed:
            fleet.failed_invokes += 1
        self.scheduler.at(self.scheduler.now + self.options.work, self._freeze)

    def _served(self, index: int, result: Result) -> None:
        fleet = self.fleet
        now = self.scheduler.now
        fleet.states[result.state] += 1
        fleet.reads_per_s[int(now)] += 1
        fleet.ages.append(result.age)
        superseded = fleet.phases[index] + result.value.meta["Version"] * fleet.upstream.period
        fleet.staleness.append(now - superseded if now > superseded else 0.0)
        self.next_read = index + 1

    def _failed(self, index: int, code: str) -> None:
        fleet = self.fleet
        second = int(self.scheduler.now)
        fleet.failures[code] += 1
        fleet.reads_per_s[second] += 1
        fleet.failed_per_s[second] += 1
        self.invoke_failed = True
        self.next_read = index + 1

    def _settled(self, index: int, future) -> None:
        error = future.exception()
        if error is None:
            self._served(index, future.result())
        else:
            self._failed(index, getattr(error, "code", type(error).__name__))

    def _answer(self, token: int, index: int, future) -> None:
        if token != self.read_token:
            return  # the client gave up on this read already
        self.read_token += 1
        self._settled(index, future)
        self._read_on()

    def _timed_out(self, token: int, index: int) -> None:
        if token != self.read_token:
            return
        self.read_token += 1
        self._failed(index, "ClientTimeout")
        self._read_on()

    def _freeze(self) -> None:
        self.running = False
        self.thaw_at = self.scheduler.now + self.gaps.expovariate(1.0 / self.options.interval)
        if self.thaw_at < self.options.duration:
            self.scheduler.at(self.thaw_at, self.invoke)
        else:
            self.thaw_at = self.options.duration


def simulate(options: argparse.Namespace, strategy: str) -> tuple[dict[str, Any], Fleet]:
    """Run one strategy; returns its summary and the fleet (with its simulated SSM) for inspection."""
    started = time.monotonic()
    with counted_extension_logs() as log_lines:
        fleet = Fleet(options, strategy)
        fleet.run()
    return summarise(fleet, log_lines, time.monotonic() - started), fleet


def summarise(fleet: Fleet, log_lines: Counter, wall: float) -> dict[str, Any]:
    ssm, options = fleet.ssm, fleet.options
    cache: Counter = Counter()
    for environment in fleet.environments:
        for counters in environment.metrics.snapshot()["cache"].values():
            cache.update(counters)
    failed = sum(fleet.failures.values())
    served = len(fleet.ages)
    reads = served + failed
    second_half = ssm.calls_per_s[fleet.seconds // 2:fleet.seconds]
    successful = ssm.calls - ssm.throttled
    staleness = fleet.staleness
    return {
        "strategy": fleet.strategy,
        "description": STRATEGIES[fleet.strategy],
        "policy": asdict(fleet.policy),
        "policy_overrides": dict(options.policy) if fleet.strategy == "ours" else {},
        "batch_size": fleet.fetcher.batch_size,
        "stale_s": fleet.items[0].stale,
        "api_calls": ssm.calls,
        "throttled_calls": ssm.throttled,
        "throttled_pct": round(100 * ssm.throttled / ssm.calls, 2) if ssm.calls else 0.0,
        "successful_calls": successful,
        "values_fetched": ssm.names_returned,
        "values_per_successful_call": round(ssm.names_returned / successful, 2) if successful else None,
        "peak_calls_per_s": max(ssm.calls_per_s),
        "throttled_during_burst": sum(ssm.throttled_per_s[:int(options.burst + PREFETCH_BUDGET) + 2]),
        "throttling_cleared_s": _storm_end(ssm.throttled_per_s[:fleet.seconds], options.burst),
        "mean_calls_per_s_second_half": round(sum(second_half) / len(second_half), 2) if second_half else None,
        "reads": reads,
        "hits": fleet.states["hit"],
        "misses": fleet.states["miss"],
        "stale_served": fleet.states["stale"],
        "failed_reads": failed,
        "failed_reads_pct": round(100 * failed / reads, 3) if reads else 0.0,
        "failed_reads_by_code": dict(sorted(fleet.failures.items())),
        "invokes": fleet.invokes,
        "failed_invokes": fleet.failed_invokes,
        "failed_invokes_pct": round(100 * fleet.failed_invokes / fleet.invokes, 3) if fleet.invokes else 0.0,
        "age_p50_s": percentile(fleet.ages, 50),
        "age_p99_s": percentile(fleet.ages, 99),
        "staleness_p50_s": percentile(staleness, 50),
        "staleness_p99_s": percentile(staleness, 99),
        "staleness_max_s": round(max(staleness), 3) if staleness else None,
        "superseded_reads_pct": round(100 * sum(1 for s in staleness if s > 0) / served, 2) if served else 0.0,
        "init_p50_ms": _ms(percentile(fleet.init_seconds, 50)),
        "init_p99_ms": _ms(percentile(fleet.init_seconds, 99)),
        "init_max_ms": _ms(max(fleet.init_seconds) if fleet.init_seconds else None),
        "store_counters": {name: cache[name] for name in ("Refreshes", "RefreshAhead", "Retries", "CircuitOpened")},
        "log_lines": dict(sorted(log_lines.items())),
        "wall_s": round(wall, 1),
        "series": {"calls_per_s": ssm.calls_per_s[:fleet.seconds],
                   "throttled_per_s": ssm.throttled_per_s[:fleet.seconds],
                   "reads_per_s": fleet.reads_per_s, "failed_reads_per_s": fleet.failed_per_s},
    }


def _storm_end(throttled: list[int], burst: float, quiet: int = 30) -> int | None:
    """The second after the last throttled call of the cold-start storm: the first run of `quiet` seconds without
    one, from the end of the burst on. None when the burst saw no throttling, or it never cleared."""
    if not any(throttled[:int(burst) + 1]):
        return None
    for second in range(int(burst), len(throttled) - quiet):
        if not any(throttled[second:second + quiet]):
            return second
    return None


# -- command line ----------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/simulate-fleet", formatter_class=argparse.RawDescriptionHelpFormatter, description=__doc__,
        epilog="Durations are Go durations (30s, 5m, 1h30m, 20ms). The default run takes about a minute on a "
               "2-CPU machine.")
    add_options(parser, OPTIONS, "change a field of ours' Policy (cache_extension/policy.py), e.g. --policy "
                                 "jitter=0; repeatable")
    parser.add_argument("--out", type=Path, default=ROOT / "docs",
                        help="where fleet-simulation.md, .json and .png go (default: docs/)")
    parser.add_argument("--mode", choices=MODES, default=MODES[0],
                        help="on-demand (this page: environments frozen between invokes, refresh-ahead on INVOKE) or "
                             "managed-instances (long-lived environments, many processes each, refresh on a timer; "
                             "its own options: --mode managed-instances --help) (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    mode, rest = _mode(argv)
    if mode == "managed-instances":
        from local_lambda import simulate_managed_report

        return simulate_managed_report.main(rest)
    args = parser().parse_args(argv)
    for name in ("envs", "items"):
        if getattr(args, name) < 1:
            parser().error(f"--{name} must be at least 1")
    if args.duration <= 0 or args.tps <= 0 or args.interval <= 0 or args.change <= 0:
        parser().error("--duration, --tps, --interval and --change must be positive")
    started = time.monotonic()
    strategies: dict[str, Any] = {}
    for strategy in STRATEGIES:
        log(f"{strategy}: {args.envs:,} environments, {args.items} items, {_duration(args.duration)} of virtual time")
        summary, _ = simulate(args, strategy)
        strategies[strategy] = summary
        log(f"  {summary['api_calls']:,} calls ({summary['throttled_calls']:,} throttled), "
            f"{summary['failed_reads']:,} failed reads of {summary['reads']:,}, {summary['wall_s']:.1f} s")
    shown = [arg if not arg.startswith(str(ROOT)) else os.path.relpath(arg, ROOT) for arg in argv]
    results = {
        "schema": 1,
        "command": shlex.join(["scripts/simulate-fleet", *shown]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "arguments": {name: argument_as_given(argv, name, default) for name, default, _, _ in OPTIONS},
        "parameters": {"envs": args.envs, "items": args.items, "burst_s": args.burst, "ttl_s": args.ttl,
                       "stale_s": args.stale, "interval_s": args.interval, "duration_s": args.duration,
                       "seed": args.seed, "tps": args.tps, "latency_s": args.latency, "timeout_s": args.timeout,
                       "change_s": args.change, "work_s": args.work, "fetch_threads": FETCH_THREADS,
                       "prefetch_budget_s": PREFETCH_BUDGET},
        "strategies": strategies,
    }
    from local_lambda import simulate_paths

    path_parameters = {"count": 100, "ttl_s": args.ttl, "interval_s": args.interval, "seed": args.seed}
    results["paths"] = {"parameters": path_parameters,
                        "rows": simulate_paths.rows(100, args.ttl, args.interval, args.seed)}
    results["wall_s"] = round(time.monotonic() - started, 1)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "fleet-simulation.json").write_text(json.dumps(results, indent=1) + "\n")
    chart(results, out / "fleet-simulation.png")
    text = markdown(results)
    (out / "fleet-simulation.md").write_text(text)
    print(table(results))
    print(f"\nwrote {out / 'fleet-simulation.md'}, {out / 'fleet-simulation.json'} and {out / 'fleet-simulation.png'} "
          f"in {results['wall_s']:.0f} s")
    return 0



def _mode(argv: list[str]) -> tuple[str | None, list[str]]:
    """The --mode given, and the arguments without it."""
    for i, arg in enumerate(argv):
        if arg == "--mode" and i + 1 < len(argv):
            return argv[i + 1], argv[:i] + argv[i + 2:]
        if arg.startswith("--mode="):
            return arg.split("=", 1)[1], argv[:i] + argv[i + 1:]
    return None, argv


if __name__ == "__main__":
    sys.exit(main())
