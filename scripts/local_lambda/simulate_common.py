"""What the fleet simulations share (scripts/simulate-fleet, both modes): virtual time, the upstream parameters' versions,
the simulated SSM with its account-wide quota, the extension's log lines counted, and the report's formatting and
command-line helpers.

simulate_fleet.py models Lambda's classic on-demand mode (environments frozen between invokes, refresh-ahead on INVOKE);
simulate_managed.py models Lambda Managed Instances (long-lived environments, several processes each, refresh on a
timer).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import heapq
import itertools
import logging
import sys
from array import array
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

from botocore.exceptions import ClientError
from cache_extension.goparse import parse_bool, parse_duration
from cache_extension.policy import Policy

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
MAX_NAMES = 10  # GetParameters' own limit


def log(message: str) -> None:
    print(f"[simulate-fleet] {message}", file=sys.stderr, flush=True)


class Scheduler:
    """Virtual time: callbacks run in time order (ties in the order they were scheduled); nothing runs at or
    after `end`."""

    def __init__(self, end: float) -> None:
        self.now = 0.0
        self.end = end
        self._queue: list = []
        self._seq = itertools.count()

    def at(self, when: float, function: Callable, *args) -> None:
        heapq.heappush(self._queue, (when if when > self.now else self.now, next(self._seq), function, args))

    def run(self) -> None:
        queue, pop, end = self._queue, heapq.heappop, self.end
        while queue:
            when, _, function, args = pop(queue)
            if when >= end:
                break
            self.now = when
            function(*args)
        self.now = end


class Upstream:
    """The parameters' true values: each gets a new version every `period`, parameter i first at i/n of a period."""

    def __init__(self, names: list[str], period: float) -> None:
        self.period = period
        self.phase = {name: i * period / len(names) for i, name in enumerate(names)}

    def version(self, name: str, now: float) -> int:
        return int((now - self.phase[name]) // self.period) + 1

    def superseded_at(self, name: str, version: int) -> float:
        return self.phase[name] + version * self.period


class SimulatedSSM:
    """The SSM API as one account sees it: GetParameters, and a token bucket over every call from every
    environment. A call over the limit raises what botocore raises, a ClientError with ThrottlingException."""

    def __init__(self, scheduler: Scheduler, upstream: Upstream, tps: float, seconds: int) -> None:
        self.scheduler = scheduler
        self.upstream = upstream
        self.rate = float(tps)
        self.burst = self.tokens = max(1.0, self.rate)  # a bucket smaller than one call would refuse every call
        self.updated = 0.0
        self.calls = self.throttled = self.names_returned = 0
        self.calls_per_s = [0] * (seconds + 1)
        self.throttled_per_s = [0] * (seconds + 1)

    def get_parameters(self, Names: list[str], WithDecryption: bool = False) -> dict:  # noqa: N803 (boto's names)
        now = self.scheduler.now
        second = int(now)
        self.calls += 1
        self.calls_per_s[second] += 1
        if len(Names) > MAX_NAMES:
            raise client_error("ValidationException", 400)
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1.0:
            self.throttled += 1
            self.throttled_per_s[second] += 1
            raise client_error("ThrottlingException", 400)
        self.tokens -= 1.0
        self.names_returned += len(Names)
        return {"Parameters": [self._parameter(name, now) for name in Names], "InvalidParameters": []}

    def _parameter(self, name: str, now: float) -> dict:
        version = self.upstream.version(name, now)
        return {"Name": name, "Type": "String", "Value": f"{name} v{version}", "Version": version,
                "ARN": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{name}", "DataType": "text"}


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "Rate exceeded"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "GetParameters")


class Clients:
    """What the fetcher asks for its botocore clients: here, the simulated SSM in every region."""

    def __init__(self, ssm: SimulatedSSM) -> None:
        self.ssm = ssm

    def get(self, service: str, region: str, role=None) -> SimulatedSSM:
        assert service == "ssm", service
        return self.ssm



class LogCounter(logging.Handler):
    """Counts the extension's warning and error lines (each one a CloudWatch Logs line in Lambda) and drops them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname.lower()] += 1


def percentile(values: array, q: float) -> float | None:
    if not values:
        return None
    import numpy

    return round(float(numpy.percentile(numpy.frombuffer(values, dtype=numpy.float64), q)), 3)



@contextlib.contextmanager
def counted_extension_logs() -> Iterator[Counter]:
    """While it lasts, the extension's warning and error lines are counted (by level) instead of written."""
    logger = logging.getLogger("cache_extension")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    counter = LogCounter()
    logger.handlers, logger.propagate = [counter], False
    logger.setLevel(logging.WARNING)
    try:
        yield counter.counts
    finally:
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        logger.handlers = saved[2]


# -- report ----------------------------------------------------------------------------------------------


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)



def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    return f"{value:,.2f}{unit}" if abs(value) < 100 else f"{value:,.0f}{unit}"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    if seconds >= 1:
        return f"{seconds:.1f} s"
    return f"{seconds * 1000:.0f} ms"



# -- command line ----------------------------------------------------------------------------------------


def duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def policy_arg(text: str) -> tuple[str, Any]:
    name, _, value = text.partition("=")
    default = getattr(Policy(), name, None)
    if name not in {field.name for field in dataclasses.fields(Policy)} or not value:
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE, NAME one of {', '.join(field.name for field in dataclasses.fields(Policy))}")
    try:
        return name, parse_bool(value) if isinstance(default, bool) else type(default)(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: {value!r} is not a {type(default).__name__}") from None



def argument_as_given(argv: list[str], name: str, default: str) -> str:
    """An option as given on the command line, or its default as written."""
    flag = f"--{name}"
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return default


def add_options(parser: argparse.ArgumentParser, options: tuple, policy_help: str) -> None:
    """A workload's options (name, default as written, kind: "duration" is a Go duration, help), and --policy."""
    for name, default, kind, text in options:
        parser.add_argument(f"--{name}", type=duration_arg if kind == "duration" else kind, default=default,
                            help=f"{text} (default: %(default)s)")
    parser.add_argument("--policy", type=policy_arg, action="append", default=[], metavar="NAME=VALUE",
                        help=policy_help)


def reproduce_section(results: dict[str, Any], overrides: dict[str, Any], closing: str) -> list[str]:
    """A report's last lines: its options as given, and the command that wrote it."""
    return ["## Parameters", "", "| option | value |", "|---|---|",
            *(f"| `--{name}` | {value} |" for name, value in results["arguments"].items()),
            *(f"| `--policy` | {name}={value} |" for name, value in overrides.items()),
            "", "## Reproduce", "", "```sh", results["command"], "```", "", closing, ""]


def plot_series(ax, results: dict[str, Any], series: str, colours: dict, labels: dict) -> None:
    """One per-second series of every strategy against virtual time in minutes, symlog, with the quota on calls/s."""
    tps = results["parameters"]["tps"]
    for name, summary in results["strategies"].items():
        values = summary["series"][series]
        ax.plot([i / 60 for i in range(len(values))], values, lw=0.8, color=colours[name], label=labels[name])
    if series == "calls_per_s":
        ax.axhline(tps, color="black", ls="--", lw=1, label=f"quota {tps:g} calls/s")
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylim(bottom=0)
