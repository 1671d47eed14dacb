"""The fleet simulation's row for a `parameters:` group by path: SSM calls at INIT and per hour of one environment
whose config reads N parameters, listed by name (GetParameters, 10 a call) or as one path (GetParametersByPath,
10 a page), with the extension's real Store, Policy and SSM fetcher in virtual time.

The environment is invoked every --interval (mean; exponential, seeded as the fleet is) for an hour after its INIT;
on each invoke refresh-ahead runs and the function reads every parameter, as in the fleet simulation. SSM here
answers at once, never throttles, and gives a NextToken only when more parameters remain (as AWS documents it;
moto also gives one after a last full page, one more call per listing).
"""

from __future__ import annotations

import random
from concurrent.futures import Future
from typing import Any

from cache_extension.config import Item
from cache_extension.config_paths import Listing
from cache_extension.fetchers.ssm import ParameterFetcher
from cache_extension.metrics import Metrics
from cache_extension.policy import Policy
from cache_extension.store import Store

PATH = "/app/prod/"
HOUR = 3600.0


class PathSSM:
    """GetParameters and GetParametersByPath over `count` parameters under PATH, counting calls by operation."""

    def __init__(self, count: int) -> None:
        self.names = [f"{PATH}p{i:04d}" for i in range(count)]
        self.calls = {"GetParameters": 0, "GetParametersByPath": 0}

    def get_parameters(self, Names: list[str], WithDecryption: bool = False) -> dict:  # noqa: N803 (boto's names)
        self.calls["GetParameters"] += 1
        return {"Parameters": [self._parameter(name) for name in Names], "InvalidParameters": []}

    def get_parameters_by_path(self, Path: str, Recursive: bool = False, WithDecryption: bool = False,  # noqa: N803
                               MaxResults: int = 10, NextToken: str | None = None) -> dict:
        self.calls["GetParametersByPath"] += 1
        start = int(NextToken or 0)
        page = self.names[start:start + MaxResults]
        answer: dict[str, Any] = {"Parameters": [self._parameter(name) for name in page]}
        if start + MaxResults < len(self.names):
            answer["NextToken"] = str(start + MaxResults)
        return answer

    @staticmethod
    def _parameter(name: str) -> dict:
        return {"Name": name, "Type": "String", "Value": "v", "Version": 1, "DataType": "text"}


class Clients:
    def __init__(self, ssm: PathSSM) -> None:
        self.ssm = ssm

    def get(self, service: str, region: str, role=None) -> PathSSM:
        return self.ssm


class Inline:
    """The Store's executor: each call runs when it is submitted (one environment, nothing to wait for)."""

    def submit(self, function, *args) -> Future:
        function(*args)
        future: Future = Future()
        future.set_result(None)
        return future


def run(count: int, by_path: bool, ttl: float, interval: float, seed: int) -> dict[str, int]:
    """Calls at INIT and over the hour after it, by operation, for one environment."""
    ssm, now = PathSSM(count), [0.0]
    if by_path:
        items = [Item("parameters", PATH, "us-west-2", ttl, ttl, listing=Listing())]
        read = [Item("parameters", name, "us-west-2", ttl, ttl, member_of=PATH) for name in ssm.names]
    else:
        items = read = [Item("parameters", name, "us-west-2", ttl, ttl) for name in ssm.names]
    store = Store(items, {"parameters": ParameterFetcher(Clients(ssm))}, Inline(), policy=Policy(),
                  clock=lambda: now[0], metrics=Metrics(), random=random.Random(seed).random)
    store.prefetch()
    init = sum(ssm.calls.values())
    draw = random.Random(seed)
    while now[0] < HOUR:
        now[0] += draw.expovariate(1.0 / interval)
        store.refresh_ahead()
        for item in read:
            result = store.read(item)
            if isinstance(result, Future):
                result.result(timeout=5)
    return {"init": init, "hour": sum(ssm.calls.values()) - init}


def rows(count: int = 100, ttl: float = 300.0, interval: float = 5.0, seed: int = 1) -> dict[str, dict[str, int]]:
    return {"names": run(count, False, ttl, interval, seed), "path": run(count, True, ttl, interval, seed)}


def table(result: dict[str, Any]) -> list[str]:
    """The report's rows: SSM calls at INIT and in the hour after, by name and by path."""
    p = result["parameters"]
    names, path = result["rows"]["names"], result["rows"]["path"]
    return [
        f"| {p['count']} parameters, TTL {p['ttl_s']:g} s, an invoke every {p['interval_s']:g} s (mean) | calls at "
        "INIT | calls in the hour after |",
        "|---|---|---|",
        f"| listed by name (`names:`, GetParameters, 10 a call) | {names['init']} | {names['hour']} |",
        f"| one group by path (`path:`, GetParametersByPath, 10 a page) | {path['init']} | {path['hour']} |",
    ]
