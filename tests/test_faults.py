"""Upstream faults against the real extension process, through a fault-injecting proxy to moto.

The extension runs from the built layer under the Extensions API emulator with ``AWS_ENDPOINT_URL`` pointed
at a FaultProxy in front of moto's server, so every AWS call it makes is counted and can be delayed,
answered with 500/503/ThrottlingException, reset, or hung past botocore's read timeout. Bounds are derived
from the extension's Policy (retries, backoff, circuit cooldowns, error hold), not hard-coded.
Run with ``pytest -s`` to see the measured numbers.
"""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import quote

import pytest

from cache_extension.fetchers.base import READ_TIMEOUT
from cache_extension.policy import Policy
from cache_extension.refresh import BUCKET_SIZE
from conftest import REGION, SECRET_VALUES, close_and_check, launch, unique
from local_lambda.aws import SAMPLE_TABLE
from local_lambda.fault_proxy import FaultProxy
from test_end_to_end import parameters_config, poll, put_parameter
from test_fault_proxy import proxy  # noqa: F401 (a fixture: the fault proxy in front of moto)

POLICY = Policy()
T = POLICY.circuit_threshold
FAILED = {"throttle", "status500", "status503", "reset", "hang"}  # proxy outcomes botocore sees as failures
HANG = READ_TIMEOUT + 1.0  # a hang outlasts botocore's read timeout


# --- bounds derived from the Policy ---------------------------------------------------------------


def cooldown(opening: int) -> float:
    """The circuit's cooldown after its `opening`-th opening in a row (0-based): doubles up to the cap."""
    return min(POLICY.circuit_cooldown_cap, POLICY.circuit_cooldown * 2**opening)


def probes_within(seconds: float) -> int:
    """Most probe calls a source with its circuit open can make in `seconds`: probe k waits for the first
    k cooldowns (stragglers only lengthen them), and a failed probe reopens the circuit, so it is not retried."""
    probes, elapsed = 0, cooldown(0)
    while elapsed <= seconds:
        probes += 1
        elapsed += cooldown(probes)
    return probes


def failing_calls_bound(entries: int, seconds: float) -> int:
    """Calls a source with `entries` cache entries makes in `seconds` of failures, after its last success.

    Each entry has at most one fetch in flight. While the circuit is closed, calls go out until the
    threshold's failure is recorded, when at most entries-1 others are in flight; once open, one probe per
    cooldown. A straggler's outcome clears the probing flag, letting at most entries-1 extra probes out."""
    return (T + entries - 1) + probes_within(seconds) + (entries - 1)


def retry_wait_bound() -> float:
    """The longest a reader waits for retries of fast failures: each backoff at its full-jitter maximum."""
    return sum(min(POLICY.backoff_cap, POLICY.backoff_base * 2**attempt) for attempt in range(POLICY.retries))


def recovery_bound(failures: int) -> float:
    """After `failures` failed calls in a row the circuit has opened at most failures-T+1 times (each failure
    past the threshold reopens it); the last cooldown is the longest a read can wait, after the fault clears,
    for the probe that closes it."""
    openings = failures - T + 1
    return cooldown(openings - 1) if openings > 0 else 0.0


# --- HTTP helpers ---------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    latency: float

    @property
    def code(self) -> str | None:
        return json.loads(self.body).get("error") if self.status >= 400 else None


class Connection:
    """One kept-alive connection to the extension, for one thread."""

    def __init__(self, ext) -> None:
        self.ext = ext
        self.http: http.client.HTTPConnection | None = None

    def open(self) -> Connection:
        self.http = http.client.HTTPConnection("127.0.0.1", self.ext.port, timeout=10)
        self.http.connect()
        return self

    def send(self, path: str, method: str = "GET") -> Answer:
        if self.http is None:
            self.open()
        started = time.monotonic()
        try:
            self.http.request(method, path, headers={"X-Aws-Parameters-Secrets-Token": self.ext.token})
            response = self.http.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body,
                      time.monotonic() - started)

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None


def path(source: str, name: str) -> str:
    return f"/{source}?name={quote(name, safe='')}"


def burst(ext, paths: list[str], method: str = "GET") -> Callable[[], list[Answer]]:
    """A thread per path, each with its connection already open, waiting to send its request at once.
    Returns fire(): release them all and collect the answers."""
    gate = threading.Event()
    answers: list[Answer] = []
    failures: list[BaseException] = []
    connections = [Connection(ext).open() for _ in paths]

    def one(connection: Connection, request_path: str) -> None:
        gate.wait(10)
        try:
            answers.append(connection.send(request_path, method))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=pair, daemon=True) for pair in zip(connections, paths)]
    for thread in threads:
        thread.start()

    def fire() -> list[Answer]:
        gate.set()
        for thread in threads:
            thread.join(15)
        assert not failures, failures
        assert len(answers) == len(paths)
        return answers

    return fire


@pytest.fixture
def through_proxy(start_extension, proxy):
    """start(config, **env): the extension with every AWS call going through the fault proxy."""

    def start(config_text: str, **env: str):
        return start_extension(config_text, env={"AWS_ENDPOINT_URL": proxy.endpoint, **env})

    return start


def expired_parameters(through_proxy, moto, label: str, count: int):
    """The extension with `count` parameters (ttl 200ms, stale 0s), once they have expired with nothing
    servable: each read of one starts a fetch of its own. Returns (extension, names)."""
    names = [unique(f"/faults/{label}/p{index}") for index in range(count)]
    for name in names:
        put_parameter(moto, name, unique("value"))
    ext = through_proxy(parameters_config(*names, ttl="200ms", stale="0s"))
    time.sleep(0.25)  # let the 200 ms TTL lapse
    return ext, names


# --- 1 and 2: a compressed fault window over mixed sources ----------------------------------------

READERS = 4
INVOKE_EVERY = 0.1
DELAY, DELAY_PHASE = 0.5, 1.5  # slow but successful calls first (the values are then changed upstream)
# Then failures only. Hangs come first, so no hung call is still in flight when the fault clears.
FAILING_PHASES = [
    ("hang", 1.0, lambda p: p.hang(HANG)),
    ("mix", 1.5, lambda p: p.mix({"hang": 1, "reset": 1, "status500": 1, "status503": 1, "throttle": 1}, seed=3,
                                 hang_seconds=HANG)),
    ("reset", 1.0, lambda p: p.reset()),
    ("status500", 1.0, lambda p: p.status(500)),
    ("status503", 1.0, lambda p: p.status(503)),
    ("throttle", 1.0, lambda p: p.throttle()),
]
SERVICES = {"parameters": "ssm", "secrets": "secretsmanager", "dynamodb": "dynamodb"}


@dataclass
class Item:
    source: str
    name: str
    old: str
    new: str
    key: dict | None = None  # a DynamoDB item's key


def value_of(source: str, body: bytes) -> str:
    return json.loads(body)["Data"] if source == "dynamodb" else body.decode("utf-8")


@dataclass
class WindowReport:
    items: list[Item]
    started: float = 0.0
    cleared: float = 0.0
    recovered: float = 0.0
    reads: Counter = field(default_factory=Counter)        # (during the fault?, service) -> reads
    states: Counter = field(default_factory=Counter)       # X-Cache -> reads
    errors: list[str] = field(default_factory=list)
    invokes: int = 0
    log: list = field(default_factory=list)
    stale_warnings: int = 0


def setup_window_items(moto) -> tuple[list[Item], str]:
    items = []
    for index in range(3):
        name = unique(f"/faults/window/p{index}")
        old, new = unique(f"old-p{index}"), unique(f"new-p{index}")
        put_parameter(moto, name, old)
        items.append(Item("parameters", name, old, new))
    sm = moto.client("secretsmanager", REGION)
    for index in range(2):
        name = unique(f"faults-window-s{index}")
        old, new = unique("old-secret"), unique("new-secret")
        SECRET_VALUES.update({old, new})
        sm.create_secret(Name=name, SecretString=old)
        items.append(Item("secrets", name, old, new))
    key = unique("faults")
    row = {"pKey": {"S": key}, "sKey": {"S": "window"}}
    old, new = unique("old-item"), unique("new-item")
    moto.client("dynamodb", REGION).put_item(TableName=SAMPLE_TABLE, Item={**row, "Data": {"S": old}})
    items.append(Item("dynamodb", "faults-window-item", old, new, row))
    timing = "    ttl: 200ms\n    stale: 30s\n"
    config = (
        parameters_config(*(i.name for i in items if i.source == "parameters"), ttl="200ms", stale="30s")
        + "secrets:\n  - names: [" + ", ".join(i.name for i in items if i.source == "secrets") + "]\n" + timing
        + f"dynamodb:\n  - table: {SAMPLE_TABLE}\n    hashkey: pKey\n    hashkeyvalue: {key}\n"
          f"    sortkey: sKey\n    sortkeyvalue: window\n    name: faults-window-item\n" + timing
    )
    return items, config


def change_upstream(moto, items: list[Item]) -> None:
    for item in items:
        if item.source == "parameters":
            put_parameter(moto, item.name, item.new)
        elif item.source == "secrets":
            moto.client("secretsmanager", REGION).put_secret_value(SecretId=item.name, SecretString=item.new)
        else:
            moto.client("dynamodb", REGION).put_item(TableName=SAMPLE_TABLE, Item={**item.key, "Data": {"S": item.new}})


@pytest.fixture(scope="module")
def fault_window(layer_dir, moto, tmp_path_factory) -> WindowReport:
    """Run the fault window once; the tests below check what it measured."""
    items, config = setup_window_items(moto)
    with FaultProxy(moto.endpoint) as proxy:
        ext = launch(layer_dir, moto, tmp_path_factory.mktemp("faults-window"), config,
                     env={"AWS_ENDPOINT_URL": proxy.endpoint})
        try:
            report = run_window(ext, proxy, moto, items)
        finally:
            output = ext.output
            close_and_check(ext)
    report.stale_warnings = output.count("serving the stale value")
    return report


def run_window(ext, proxy: FaultProxy, moto, items: list[Item]) -> WindowReport:
    report = WindowReport(items)
    for item in items:
        first = ext.read(item.source, item.name)
        assert (first.status, value_of(item.source, first.body)) == (200, item.old), item
    stop = threading.Event()
    lock = threading.Lock()

    def read_loop() -> None:
        connection = Connection(ext)
        seen_new: set[str] = set()
        reads: Counter = Counter()
        states: Counter = Counter()
        errors: list[str] = []
        while not stop.is_set():
            for item in items:
                try:
                    answer = connection.send(path(item.source, item.name))
                except (OSError, http.client.HTTPException) as exc:
                    errors.append(f"{item.source} {type(exc).__name__}")
                    continue
                during = not report.cleared or time.monotonic() <= report.cleared
                reads[(during, SERVICES[item.source])] += 1
                states[answer.headers.get("x-cache")] += 1
                value = value_of(item.source, answer.body) if answer.status == 200 else None
                if answer.status != 200:
                    errors.append(f"{item.source} {answer.status} {answer.code}")
                elif value == item.new:
                    seen_new.add(item.name)
                elif value != item.old or item.name in seen_new:
                    wrong = "the old value after the new" if value == item.old else "another value"
                    errors.append(f"{item.source} served {wrong}")
        connection.close()
        with lock:
            report.reads.update(reads)
            report.states.update(states)
            report.errors.extend(errors)

    def invoke_loop() -> None:
        while not stop.wait(INVOKE_EVERY):
            ext.emulator.invoke(timeout=5)
            report.invokes += 1

    threads = [threading.Thread(target=read_loop, daemon=True) for _ in range(READERS)]
    threads.append(threading.Thread(target=invoke_loop, daemon=True))
    proxy.reset_calls()
    report.started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        proxy.delay(DELAY)
        time.sleep(DELAY_PHASE)
        # The values change upstream while the failures go on.
        changing = threading.Thread(target=change_upstream, args=(moto, items), daemon=True)
        changing.start()
        for _, seconds, apply in FAILING_PHASES:
            proxy.clear()
            apply(proxy)
            time.sleep(seconds)
        changing.join(10)
        assert not changing.is_alive()
        report.log = proxy.log
        report.cleared = time.monotonic()
        proxy.clear()
        bound = max(recovery_bound(failures_in_a_row(report.log, service)) for service in SERVICES.values())
        deadline = report.cleared + bound + 3.0  # the probe, then each entry's refresh, on a busy machine
        pending = {(item.source, item.name): item for item in items}
        while pending and time.monotonic() < deadline:
            for key, item in list(pending.items()):
                reply = ext.read(item.source, item.name)
                if reply.status == 200 and value_of(item.source, reply.body) == item.new:
                    del pending[key]
            time.sleep(0.05)
        report.recovered = time.monotonic()
        assert not pending, f"not new {bound + 3.0:.1f} s after the fault cleared: {sorted(pending)}"
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    return report


def failures_in_a_row(log, service: str) -> int:
    """Failed calls of `service` since its last successful one (delays forward, so they succeed)."""
    count = 0
    for _, logged, _, outcome in log:
        if logged == service:
            count = count + 1 if outcome in FAILED else 0
    return count


def test_reads_inside_the_stale_window_never_fail_during_a_fault_window(fault_window):
    report = fault_window
    window = report.cleared - report.started
    in_window = sum(n for (inside, _), n in report.reads.items() if inside)
    print(f"\n[fault window] {window:.1f} s of faults; {in_window} reads during it, {sum(report.reads.values())} "
          f"in all by {READERS} readers; {report.invokes} INVOKEs; X-Cache {dict(report.states)}; "
          f"errors {len(report.errors)}; all new {report.recovered - report.cleared:.2f} s after the fault "
          f"cleared; proxy outcomes {dict(Counter(o for *_, o in report.log))}; "
          f"'serving the stale value' log lines {report.stale_warnings}")
    assert report.errors == []
    assert in_window > 100 * window  # the readers kept reading throughout (not stuck behind a fetch)
    assert report.states["miss"] == 0  # nobody waited for AWS: everything was served from memory


def test_upstream_calls_during_the_fault_window_are_bounded_by_the_policy(fault_window):
    report = fault_window
    calls = Counter(service for _, service, _, _ in report.log)
    entries = Counter(SERVICES[item.source] for item in report.items)
    failing = report.cleared - report.started - DELAY_PHASE
    assert DELAY < POLICY.circuit_cooldown  # so no probe goes out before the last slow call has succeeded
    print("\n[fault window] upstream calls per service (bound; a naive reader loop's calls):")
    for service, count in entries.items():
        # Slow successes first: one call in flight per entry, each at least DELAY long. Then failures only:
        # each slow call that succeeds late can close the circuit once more, costing one more opening.
        slow = count * (math.ceil(DELAY_PHASE / DELAY) + 1)
        bound = slow + count * (T + count - 1) + failing_calls_bound(count, failing)
        naive = sum(n for (inside, svc), n in report.reads.items() if inside and svc == service)
        print(f"  {service}: {calls[service]} calls (bound {bound}; naive {naive}), "
              f"{failures_in_a_row(report.log, service)} failures in a row at the end")
        assert calls[service] <= bound, (service, calls[service], bound)
        assert calls[service] < naive / 10


# --- 3: single flight under 50 concurrent readers -------------------------------------------------

CONCURRENT = 50


def test_expired_item_without_stale_window_makes_one_call_for_50_readers(through_proxy, proxy, moto):
    name, value = unique("/faults/flight/miss"), unique("only")
    put_parameter(moto, name, value)
    ext = through_proxy(parameters_config(name, ttl="300ms", stale="0s"))
    fire = burst(ext, [path("parameters", name)] * CONCURRENT)
    time.sleep(0.35)  # let the 300 ms TTL lapse
    proxy.reset_calls()
    proxy.delay(1.0, service="ssm")
    answers = fire()
    print(f"\n[single flight, miss] {CONCURRENT} readers: {proxy.calls(service='ssm')} call; "
          f"latency {min(a.latency for a in answers):.2f}-{max(a.latency for a in answers):.2f} s")
    assert [a.status for a in answers] == [200] * CONCURRENT
    assert {a.body for a in answers} == {value.encode()}
    assert {a.headers["x-cache"] for a in answers} == {"miss"}
    assert proxy.calls(service="ssm") == 1


def test_expired_item_inside_its_stale_window_is_served_stale_at_once_with_one_refresh(through_proxy, proxy, moto):
    name, delay, old, new = unique("/faults/flight/stale"), 1.5, unique("old"), unique("new")
    put_parameter(moto, name, old)
    ext = through_proxy(parameters_config(name, ttl="300ms", stale="30s"))
    fire = burst(ext, [path("parameters", name)] * CONCURRENT)
    put_parameter(moto, name, new)
    time.sleep(0.35)  # let the 300 ms TTL lapse
    proxy.reset_calls()
    proxy.delay(delay, service="ssm")
    answers = fire()
    slowest = max(a.latency for a in answers)
    assert [a.status for a in answers] == [200] * CONCURRENT
    assert {(a.body, a.headers["x-cache"]) for a in answers} == {(old.encode(), "stale")}
    assert slowest < delay / 2
    poll(lambda: ext.read("parameters", name).text == new, timeout=delay + 3)
    print(f"\n[single flight, stale] {CONCURRENT} readers served stale in at most {slowest * 1000:.0f} ms "
          f"(upstream delay {delay} s); {proxy.calls(service='ssm')} refresh call")
    assert proxy.calls(service="ssm") == 1


def test_refresh_ahead_on_invoke_makes_one_call_while_50_readers_get_hits(through_proxy, proxy, moto):
    name, ttl, delay, old, new = unique("/faults/flight/ahead"), 2.5, 1.0, unique("current"), unique("next")
    put_parameter(moto, name, old)
    ext = through_proxy(parameters_config(name, ttl=f"{ttl}s", stale="0s"))
    put_parameter(moto, name, new)
    proxy.reset_calls()
    proxy.delay(delay, service="ssm")
    fire = burst(ext, [path("parameters", name)] * CONCURRENT)
    # INVOKE until one starts the refresh: within refresh_ahead * ttl of expiry, not before.
    started = time.monotonic()
    while proxy.calls(service="ssm") == 0:
        assert time.monotonic() - started < ttl + 1, "no refresh-ahead"
        ext.emulator.invoke(timeout=5)
        time.sleep(0.02)
    answers = fire()
    slowest = max(a.latency for a in answers)
    assert [a.status for a in answers] == [200] * CONCURRENT
    assert {(a.body, a.headers["x-cache"]) for a in answers} == {(old.encode(), "hit")}
    assert slowest < POLICY.refresh_ahead * ttl / 2
    poll(lambda: ext.read("parameters", name).text == new, timeout=delay + 3)
    print(f"\n[refresh-ahead] {CONCURRENT} hits in at most {slowest * 1000:.0f} ms during the refresh; "
          f"{proxy.calls(service='ssm')} call")
    assert proxy.calls(service="ssm") == 1


def test_50_concurrent_forced_refreshes_make_one_call(through_proxy, proxy, moto):
    name, old, new = unique("/faults/flight/forced"), unique("before"), unique("after")
    put_parameter(moto, name, old)
    ext = through_proxy(parameters_config(name, ttl="60s"))
    # A refresh of a value fetched under refresh_coalesce ago is answered without a call: let it age.
    poll(lambda: int(ext.read("parameters", name).headers["age"]) >= POLICY.refresh_coalesce, timeout=5)
    put_parameter(moto, name, new)
    fire = burst(ext, [f"/refresh?name={quote(name, safe='')}"] * CONCURRENT, method="POST")
    proxy.reset_calls()
    proxy.delay(0.5, service="ssm")
    answers = fire()
    statuses = Counter(a.status for a in answers)
    print(f"\n[forced refresh] {CONCURRENT} POST /refresh: {dict(statuses)}; {proxy.calls(service='ssm')} call")
    assert set(statuses) <= {200, 429}
    assert 1 <= statuses[200] <= BUCKET_SIZE + 1  # the bucket's burst, plus what refills meanwhile
    assert {a.code for a in answers if a.status == 429} <= {"RateLimited"}
    for answer in answers:
        if answer.status == 200:
            assert json.loads(answer.body) == {"refreshed": [{"source": "parameters", "name": name}], "failed": []}
    assert proxy.calls(service="ssm") == 1
    assert ext.read("parameters", name).text == new


def test_forced_refresh_during_a_slow_refresh_answers_with_the_rotated_value(through_proxy, proxy, moto):
    """A background refresh that left before the rotation (its answer still on the way) does not answer a
    forced refresh asked for after it: a new call follows."""
    name, old, new = unique("/faults/flight/rotated"), unique("before"), unique("after")
    put_parameter(moto, name, old)
    ext = through_proxy(parameters_config(name, ttl="200ms", stale="1m"))
    assert ext.read("parameters", name).text == old
    time.sleep(0.25)  # expired, inside its stale window
    proxy.reset_calls()
    proxy.lag(1.0, service="ssm", times=1)
    assert ext.read("parameters", name).headers["x-cache"] == "stale"  # its refresh is out, answer held back
    poll(lambda: proxy.calls(service="ssm") == 1, timeout=5)
    time.sleep(0.1)  # moto has answered it with the old value
    put_parameter(moto, name, new)
    reply = ext.request(f"/refresh?name={quote(name, safe='')}", method="POST")
    assert reply.status == 200, reply.body
    print(f"\n[forced refresh during a slow refresh] {proxy.calls(service='ssm')} calls; {proxy.outcomes()}")
    assert ext.read("parameters", name).text == new
    assert proxy.calls(service="ssm") == 2


# --- 4: permanent errors --------------------------------------------------------------------------


def test_permanent_errors_fail_fast_and_are_not_retried(through_proxy, proxy, moto):
    missing, denied, present = unique("/faults/missing"), unique("/faults/denied"), unique("/faults/present")
    put_parameter(moto, denied, unique("denied"))
    put_parameter(moto, present, unique("present"))
    ext = through_proxy(parameters_config(missing, denied, present), CACHE_EXTENSION_INIT_STARTUP="false")
    assert ext.read("parameters", present).status == 200  # botocore's client made, so latencies are the calls'
    proxy.reset_calls()

    first = Connection(ext).send(path("parameters", missing))
    assert (first.status, first.code) == (404, "NotFound")
    assert first.latency < 1.0
    assert proxy.calls(service="ssm") == 1
    # Within the error hold, reads are answered from memory.
    held = []
    connection = Connection(ext)
    until = time.monotonic() + POLICY.error_hold / 2
    while time.monotonic() < until:
        held.append(connection.send(path("parameters", missing)))
    assert {(a.status, a.code) for a in held} == {(404, "NotFound")}
    assert proxy.calls(service="ssm") == 1
    # After the hold, a read asks AWS again (once).
    poll(lambda: connection.send(path("parameters", missing)) and proxy.calls(service="ssm") == 2,
         timeout=POLICY.error_hold + 2)

    moto.fail("AmazonSSM.GetParameters", status=400, code="AccessDeniedException", match=denied)
    try:
        proxy.reset_calls()
        reply = Connection(ext).send(path("parameters", denied))
        time.sleep(retry_wait_bound() + 0.2)  # time enough for any retry to have gone out
        calls = proxy.calls(service="ssm")
    finally:
        moto.clear_faults()
    print(f"\n[permanent errors] missing: 404 in {first.latency * 1000:.0f} ms, {len(held)} more reads in "
          f"{POLICY.error_hold / 2:.1f} s made no call; AccessDenied: {reply.status} in "
          f"{reply.latency * 1000:.0f} ms, {calls} call")
    assert (reply.status, reply.code) == (502, "AccessDeniedException")
    assert reply.latency < 1.0
    assert calls == 1


# --- 5: the circuit -------------------------------------------------------------------------------


def test_circuit_stops_calls_to_a_throttled_source_then_a_probe_closes_it(through_proxy, proxy, moto):
    ext, names = expired_parameters(through_proxy, moto, "circuit", 5)
    proxy.reset_calls()
    proxy.throttle(service="ssm")
    window = 2 * POLICY.circuit_cooldown
    answers: list[Answer] = []
    lock = threading.Lock()

    def read_loop(name: str, until: float) -> None:
        connection, mine = Connection(ext), []
        while time.monotonic() < until:
            mine.append(connection.send(path("parameters", name)))
        connection.close()
        with lock:
            answers.extend(mine)

    started = time.monotonic()
    readers = [threading.Thread(target=read_loop, args=(name, started + window)) for name in names]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(window + 10)
    log = proxy.log
    times = [at - started for at, service, _, _ in log if service == "ssm"]
    bound = failing_calls_bound(len(names), window)
    codes = Counter((a.status, a.code) for a in answers)
    slowest = max(a.latency for a in answers)
    print(f"\n[circuit] {len(answers)} reads in {window:.0f} s: {dict(codes)}, slowest {slowest * 1000:.0f} ms; "
          f"{len(times)} calls (bound {bound}) at {[round(t, 2) for t in times]} s")
    assert set(codes) == {(502, "ThrottlingException")}
    assert slowest < retry_wait_bound() + 1.0  # fails fast: never waits for a read timeout
    assert len(times) <= bound
    # After the threshold's failure, only calls already in flight then may follow within the cooldown.
    opened = times[T - 1]
    assert sum(1 for t in times if opened < t < opened + cooldown(0)) <= len(names) - 1

    proxy.clear()
    cleared = time.monotonic()
    limit = recovery_bound(failures_in_a_row(log, "ssm")) + POLICY.error_hold + 2.0
    for name in names:
        poll(lambda: ext.read("parameters", name).status == 200, timeout=limit - (time.monotonic() - cleared))
    after = [outcome for at, service, _, outcome in proxy.log if service == "ssm" and at > cleared]
    print(f"[circuit] all {len(names)} read again {time.monotonic() - cleared:.2f} s after the fault cleared "
          f"(bound {limit:.1f} s); calls since {after}")
    assert after and set(after) == {"forwarded"}  # the first probe succeeded and closed the circuit


def test_fetches_failing_together_open_the_circuit_once(through_proxy, proxy, moto):
    ext, names = expired_parameters(through_proxy, moto, "together", 8)
    fire = burst(ext, [path("parameters", name) for name in names])
    proxy.hang(HANG, service="ssm")
    answers = fire()  # all time out together, after botocore's read timeout
    proxy.clear()
    cleared = time.monotonic()
    paused = sorted({a.body.decode() for a in answers if a.status == 502})
    print(f"\n[circuit, one outage] {len(names)} fetches timed out together: {Counter(a.status for a in answers)}; "
          f"{paused}")
    # One opening: calls resume after the first cooldown (and the reads' error hold), not after the cap.
    poll(lambda: ext.read("parameters", names[0]).status == 200, timeout=cooldown(0) + POLICY.error_hold + 1.5)
    print(f"[circuit, one outage] read again {time.monotonic() - cleared:.2f} s after the fault cleared")
