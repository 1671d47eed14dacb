"""Cache rules with a fake clock and an in-memory source: TTL, single-flight, stale, batching, and the
failure policy (retries with backoff, the circuit, error hold), refresh-ahead, forced refresh, the LRU."""

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from cache_extension.config import Item
from cache_extension.fetchers import Fetcher, FetchError, Value
from cache_extension.fetchers.base import text_value
from cache_extension import store as store_module
from cache_extension.policy import Policy
from cache_extension.store import Result, Store


class Clock:
    def __init__(self):
        self.now = 1000.0
        self.hook = None  # run once at the next reading: another thread's work, at a chosen moment

    def __call__(self):
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return self.now


class MemorySource(Fetcher):
    """A source whose values and failures the test sets; counts calls, can hold them at a gate."""

    source = "parameters"
    operation = "memory:Get"
    batch_size = 3

    def __init__(self):
        super().__init__(clients=None)
        self.values = {}
        self.failing = set()
        self.calls = []
        self.gate = threading.Event()
        self.gate.set()

    def fetch_batch(self, items):
        self.calls.append([item.name for item in items])
        values, failing = dict(self.values), set(self.failing)  # as they were when the call went out
        assert self.gate.wait(5)
        return {
            item.name: FetchError("ThrottlingException", 502, "throttled", transient=True) if item.name in failing
            else text_value(values[item.name]) if item.name in values
            else FetchError("ParameterNotFound", 404, "not found")
            for item in items
        }


def item(name, ttl=10.0, stale=0.0):
    return Item(source="parameters", name=name, region="us-west-2", ttl=ttl, stale=stale)


class Later:
    """The store's `later`: retries wait here until the test runs them."""

    def __init__(self):
        self.waiting = []

    def __call__(self, delay, function, *args):
        self.waiting.append((delay, function, args))

    def run(self):
        waiting, self.waiting = self.waiting, []
        for _, function, args in waiting:
            function(*args)
        return [delay for delay, _, _ in waiting]


@pytest.fixture
def executor():
    with ThreadPoolExecutor(4) as pool:
        yield pool


def settle(outcome):
    return outcome.result(timeout=5) if isinstance(outcome, Future) else outcome


def wait_until(condition, timeout=5.0):
    for _ in range(int(timeout / 0.01)):
        if condition():
            return True
        threading.Event().wait(0.01)
    return False


def refreshed(future):
    """What POST /refresh reports for a Future: the FetchError, or None when it refreshed."""
    try:
        return future.result(timeout=5).error
    except FetchError as error:
        return error


class ManualExecutor:
    """Fetches run when (and in the order) the test says."""

    def __init__(self):
        self.jobs = []

    def submit(self, function, *args):
        self.jobs.append((function, args))

    def run(self, index):
        function, args = self.jobs[index]
        function(*args)


# No jitter, no retries, no error hold, unless a test asks: the plain cache rules first.
PLAIN = Policy(jitter=0.0, retries=0, error_hold=0.0, refresh_coalesce=0.0)


def make(executor, names, policy=PLAIN, later=None, random=lambda: 1.0, **kwargs):
    source, clock = MemorySource(), Clock()
    source.values = {name: f"value of {name}" for name in names}
    store = Store([item(name, **kwargs) for name in names], {"parameters": source}, executor, clock=clock,
                  policy=policy, later=later or Later(), random=random)
    return store, source, clock


def test_first_read_misses_then_hits_until_the_ttl(executor):
    store, source, clock = make(executor, ["a"])
    first = settle(store.read(item("a")))
    assert (first.state, first.value.body) == ("miss", b"value of a")
    clock.now += 9.9
    hit = store.read(item("a"))
    assert isinstance(hit, Result) and hit.state == "hit" and hit.age == pytest.approx(9.9)
    source.values["a"] = "new"
    clock.now += 0.1  # exactly at expiry: refreshed synchronously
    assert settle(store.read(item("a"))).value.body == b"new"
    assert len(source.calls) == 2


def test_on_demand_entries_are_bounded_and_configured_ones_stay(executor, monkeypatch):
    monkeypatch.setattr(store_module, "MAX_ON_DEMAND", 3)
    store, source, _ = make(executor, ["configured"])
    names = [f"demand{i}" for i in range(5)]
    source.values.update({name: f"value of {name}" for name in names})
    for name in ["configured"] + names:
        assert settle(store.read(item(name))).state == "miss"
    assert isinstance(store.read(item("configured")), Result)  # never evicted
    assert isinstance(store.read(item("demand4")), Result)
    assert isinstance(store.read(item("demand0")), Future)  # the oldest on-demand entries went first
    assert len(store) <= 1 + 3


def test_concurrent_reads_of_a_missing_entry_share_one_fetch(executor):
    store, source, _ = make(executor, ["a"])
    source.gate.clear()
    futures = [store.read(item("a")) for _ in range(50)]
    assert len({id(f) for f in futures}) == 1
    source.gate.set()
    assert {settle(f).value.body for f in futures} == {b"value of a"}
    assert len(source.calls) == 1


def test_prefetch_batches_and_reads_during_it_wait(executor):
    names = [f"p{i}" for i in range(7)]
    store, source, _ = make(executor, names)
    source.gate.clear()
    pending = store.prefetch()
    during = store.read(item("p6"))
    assert isinstance(during, Future) and during in pending
    source.gate.set()
    assert settle(during).value.body == b"value of p6"
    for future in pending:
        future.result(timeout=5)
    assert sorted(len(batch) for batch in source.calls) == [1, 3, 3]
    assert all(isinstance(store.read(item(n)), Result) for n in names)


def test_failed_refresh_serves_the_old_value_inside_its_stale_window_only(executor):
    store, source, clock = make(executor, ["a"], policy=Policy(jitter=0.0, retries=0, stale_while_revalidate=False,
                                                               error_hold=0.0), stale=30.0)
    settle(store.read(item("a")))
    clock.now += 30
    source.failing.add("a")
    stale = settle(store.read(item("a")))
    assert (stale.state, stale.value.body, stale.age) == ("stale", b"value of a", 30)
    assert stale.error.code == "ThrottlingException"
    clock.now += 10  # 40 s old: past ttl (10) + stale (30)
    with pytest.raises(FetchError):
        settle(store.read(item("a")))
    source.failing.clear()
    source.values["a"] = "recovered"
    assert settle(store.read(item("a"))).value.body == b"recovered"


def test_failure_with_nothing_cached_raises_the_upstream_error(executor):
    store, source, _ = make(executor, ["a", "gone"])
    del source.values["gone"]
    source.failing.add("a")
    with pytest.raises(FetchError) as failed:
        settle(store.read(item("a")))
    assert (failed.value.status, failed.value.code) == (502, "ThrottlingException")
    with pytest.raises(FetchError) as missing:
        settle(store.read(item("gone")))
    assert missing.value.status == 404
    source.failing.clear()  # a failed fetch is retried on the next read
    assert settle(store.read(item("a"))).state == "miss"


def test_a_fetcher_crash_fails_its_readers_instead_of_hanging(executor):
    store, source, _ = make(executor, ["a"])
    source.fetch_batch = lambda items: 1 / 0
    with pytest.raises(FetchError) as failed:
        settle(store.read(item("a")))
    assert failed.value.status == 502


def test_values_never_show_in_their_repr():
    assert "hunter2" not in repr(Value(b"hunter2", "text/plain"))


def test_expiry_is_jittered_below_the_ttl_only(executor):
    policy = Policy(jitter=0.05, retries=0)
    draws = iter([1.0, 0.0])
    store, source, clock = make(executor, ["a", "b"], policy=policy, random=lambda: next(draws))
    settle(store.read(item("a")))  # expires at ttl * 0.95
    settle(store.read(item("b")))  # expires at ttl
    clock.now += 9.6
    assert isinstance(store.read(item("a")), Future)
    assert isinstance(store.read(item("b")), Result)


def test_stale_while_revalidate_serves_at_once_and_refreshes_once(executor):
    store, source, clock = make(executor, ["a"], policy=Policy(jitter=0.0, retries=0), stale=60.0)
    settle(store.read(item("a")))
    source.values["a"] = "new"
    source.gate.clear()  # the background refresh is held in flight
    clock.now += 15
    reads = [store.read(item("a")) for _ in range(20)]
    assert all(isinstance(r, Result) and (r.state, r.value.body) == ("stale", b"value of a") for r in reads)
    source.gate.set()
    for _ in range(200):  # bounded wait for the one background refresh
        if isinstance(store.read(item("a")), Result) and store.read(item("a")).state == "hit":
            break
        threading.Event().wait(0.01)
    assert store.read(item("a")).value.body == b"new"
    assert len(source.calls) == 2  # the first fetch and one refresh, for 20 stale reads


def test_transient_failures_are_retried_with_full_jitter_then_fail(executor):
    later = Later()
    policy = Policy(jitter=0.0, retries=2, backoff_base=0.1, backoff_cap=2.0, circuit_threshold=100)
    store, source, _ = make(executor, ["a"], policy=policy, later=later, random=lambda: 0.5)
    source.failing.add("a")
    future = store.read(item("a"))
    delays = []
    for _ in range(3):
        assert _wait_until(lambda: later.waiting or future.done())
        delays += later.run()
    assert delays == [0.05, 0.1]  # 0.5 * min(cap, 0.1 * 2**attempt)
    with pytest.raises(FetchError) as failed:
        settle(future)
    assert failed.value.code == "ThrottlingException" and len(source.calls) == 3


def test_a_retry_that_succeeds_answers_the_waiting_readers(executor):
    later = Later()
    store, source, _ = make(executor, ["a"], policy=Policy(jitter=0.0, retries=2), later=later)
    source.failing.add("a")
    future = store.read(item("a"))
    assert _wait_until(lambda: later.waiting)
    source.failing.clear()
    later.run()
    assert settle(future).value.body == b"value of a"


def test_permanent_failures_are_not_retried_and_held_briefly(executor):
    later = Later()
    store, source, clock = make(executor, ["a"], policy=Policy(jitter=0.0, retries=2, error_hold=1.0), later=later)
    del source.values["a"]
    for _ in range(5):
        with pytest.raises(FetchError) as missing:
            settle(store.read(item("a")))
        assert missing.value.status == 404
    assert later.waiting == [] and len(source.calls) == 1  # one call for five reads inside the hold
    clock.now += 1.0
    with pytest.raises(FetchError):
        settle(store.read(item("a")))
    assert len(source.calls) == 2


def test_the_circuit_opens_after_repeated_failures_then_probes_once(executor):
    names = [f"n{i}" for i in range(4)]
    policy = Policy(jitter=0.0, retries=0, error_hold=0.0, circuit_threshold=3, circuit_cooldown=2.0,
                    circuit_cooldown_cap=30.0)
    store, source, clock = make(executor, names, policy=policy)
    source.failing.update(names)
    for name in names[:3]:
        with pytest.raises(FetchError):
            settle(store.read(item(name)))
    assert len(source.calls) == 3
    with pytest.raises(FetchError) as refused:  # open: answered without a call
        settle(store.read(item("n3")))
    assert refused.value.code == "ThrottlingException" and "paused" in refused.value.message
    assert len(source.calls) == 3
    clock.now += 2.0  # cooldown over: one probe goes out; it fails, and the cooldown doubles
    with pytest.raises(FetchError):
        settle(store.read(item("n3")))
    assert len(source.calls) == 4
    clock.now += 2.0
    with pytest.raises(FetchError):
        settle(store.read(item("n3")))
    assert len(source.calls) == 4
    clock.now += 2.0
    source.failing.clear()
    assert settle(store.read(item("n3"))).state == "miss"  # the probe succeeds: closed again
    assert settle(store.read(item("n0"))).state == "miss"
    assert len(source.calls) == 6


def test_a_call_from_before_the_circuit_opened_does_not_stand_for_its_probe():
    executor = ManualExecutor()
    policy = Policy(jitter=0.0, retries=0, error_hold=0.0, circuit_threshold=3, circuit_cooldown=1.0,
                    circuit_cooldown_cap=30.0)
    store, source, clock = make(executor, ["a", "b", "c", "d", "e"], policy=policy)
    source.failing.update("abcde")
    reads = [store.read(item(name)) for name in "abcd"]  # four calls out together
    for job in range(3):
        executor.run(job)  # three failures open the circuit
    clock.now += 1.0
    probe = store.read(item("e"))
    assert len(executor.jobs) == 5  # the probe is out
    clock.now += 0.5
    executor.run(3)  # the fourth call fails late
    circuit = store._circuits[("parameters", "us-west-2")]
    assert circuit.blocked() and circuit.opened == 1  # still waiting for the probe
    executor.run(4)
    assert circuit.opened == 2 and circuit.retry_after() == 2.0
    for future in reads + [probe]:
        assert future.exception(timeout=5).code == "ThrottlingException"


def test_stale_values_are_served_while_the_circuit_is_open(executor):
    policy = Policy(jitter=0.0, retries=0, circuit_threshold=1, circuit_cooldown=5.0)
    store, source, clock = make(executor, ["a", "b"], policy=policy, stale=60.0)
    for name in ("a", "b"):
        settle(store.read(item(name)))
    source.failing.update({"a", "b"})
    clock.now += 11
    assert store.read(item("a")).state == "stale"  # starts a refresh that fails and opens the circuit
    assert _wait_until(lambda: len(source.calls) == 3 and store._circuits[("parameters", "us-west-2")].is_open)
    for _ in range(10):
        assert store.read(item("b")).state == "stale"
    assert len(source.calls) == 3  # no call while open


def test_refresh_ahead_batches_entries_that_expire_soon(executor):
    names = [f"r{i}" for i in range(5)]
    store, source, clock = make(executor, names, policy=Policy(jitter=0.0, refresh_ahead=0.2))
    source.values["late"] = "on demand"
    for future in store.prefetch():
        future.result(timeout=5)
    clock.now += 5
    settle(store.read(item("late")))  # fetched later: not due yet
    clock.now += 3.5  # the first five have 1.5 s of 10 left (< 20%)
    source.calls.clear()
    assert store.refresh_ahead() == 5
    assert _wait_until(lambda: all(isinstance(store.read(item(n)), Result) and store.read(item(n)).age == 0
                                   for n in names))
    assert sorted(len(batch) for batch in source.calls) == [2, 3]
    assert store.refresh_ahead() == 0


def test_refresh_ahead_is_bounded(executor):
    names = [f"r{i}" for i in range(7)]
    store, source, clock = make(executor, names, policy=Policy(jitter=0.0, refresh_ahead=0.5, refresh_ahead_max=4))
    for future in store.prefetch():
        future.result(timeout=5)
    clock.now += 6
    assert store.refresh_ahead() == 4


def test_forced_refresh_fetches_joins_and_coalesces(executor):
    store, source, clock = make(executor, ["a"], policy=Policy(jitter=0.0, refresh_coalesce=1.0))
    settle(store.read(item("a")))
    clock.now += 2
    source.values["a"] = "rotated"
    source.gate.clear()
    first = store.refresh([item("a")])
    second = store.refresh([item("a")])  # joins the one in flight
    assert first[0] is second[0]
    source.gate.set()
    assert settle(first[0]).value.body == b"rotated"
    again = store.refresh([item("a")])  # within a second of the last forced refresh: no new call
    assert settle(again[0]).value.body == b"rotated" and len(source.calls) == 2
    clock.now += 1.0
    source.values["a"] = "rotated again"
    assert settle(store.refresh([item("a")])[0]).value.body == b"rotated again"


def test_forced_refresh_during_another_fetch_waits_for_a_fetch_of_its_own(executor):
    """A read's fetch that left before a rotation must not answer the refresh asked for after it."""
    store, source, clock = make(executor, ["a", "b"], policy=Policy(jitter=0.0, refresh_coalesce=1.0))
    source.gate.clear()
    reading = store.read(item("a"))  # its call is out (waiting at the gate) with the old value
    assert wait_until(lambda: source.calls)
    source.values["a"] = "rotated"
    forced = store.refresh([item("a"), item("b")])
    again = store.refresh([item("a")])  # shares the follow-up, adds no call
    assert again[0] is forced[0]
    source.gate.set()
    assert settle(reading).value.body == b"value of a"
    assert [settle(f).value.body for f in forced] == [b"rotated", b"value of b"]
    assert sorted(map(sorted, source.calls)) == [["a"], ["a"], ["b"]]
    assert settle(store.read(item("a"))).value.body == b"rotated"


def test_a_repeat_inside_the_window_of_a_follow_up_shares_the_follow_up(executor):
    """A forced refresh made after a rotation is never answered by a forced fetch that left before it."""
    store, source, clock = make(executor, ["a"], policy=Policy(jitter=0.0, refresh_coalesce=1.0))
    settle(store.read(item("a")))
    clock.now += 100
    source.gate.clear()
    first = store.refresh([item("a")])[0]  # its call hangs with the old value
    assert wait_until(lambda: len(source.calls) == 2)
    clock.now += 1.5  # past the first one's coalescing window
    source.values["a"] = "rotated"
    second = store.refresh([item("a")])[0]  # follows the first
    clock.now += 0.1
    third = store.refresh([item("a")])[0]  # inside the second's window, while the first is in flight
    assert third is second and third is not first
    source.gate.set()
    assert [settle(f).value.body for f in (first, second, third)] == [b"value of a", b"rotated", b"rotated"]


@pytest.mark.parametrize("stale", [60.0, 0.0])
def test_a_repeat_of_a_failed_forced_refresh_reports_the_failure_without_a_call(executor, stale):
    store, source, clock = make(executor, ["a"], policy=Policy(jitter=0.0, retries=0, refresh_coalesce=1.0),
                                stale=stale)
    settle(store.read(item("a")))
    clock.now += 30  # expired: inside its stale window, or (stale 0) past it
    source.failing.add("a")
    first = store.refresh([item("a")])[0]
    assert refreshed(first).code == "ThrottlingException"
    clock.now += 0.3
    again = store.refresh([item("a")])[0]  # say, a client's repeat of the same POST
    assert refreshed(again).code == "ThrottlingException" and len(source.calls) == 2
    clock.now += 1.0
    source.failing.clear()
    assert refreshed(store.refresh([item("a")])[0]) is None and len(source.calls) == 3


def test_refresh_ahead_leaves_a_deleted_item_to_reads(executor):
    store, source, clock = make(executor, ["a"], policy=Policy(jitter=0.0, retries=0, error_hold=1.0))
    settle(store.read(item("a")))
    del source.values["a"]  # deleted upstream
    clock.now += 11  # expired, no stale window
    with pytest.raises(FetchError):
        settle(store.read(item("a")))
    for _ in range(15):  # INVOKEs inside the error hold and past it
        assert store.refresh_ahead() == 0
        clock.now += 0.1
    assert len(source.calls) == 2


def test_refresh_ahead_leaves_items_never_fetched_to_their_first_read(executor):
    """CACHE_EXTENSION_INIT_STARTUP=false: no prefetch, and an INVOKE does not fetch everything either."""
    store, source, _ = make(executor, ["a", "b"])
    assert store.refresh_ahead() == 0 and source.calls == []
    assert settle(store.read(item("a"))).value.body == b"value of a" and source.calls == [["a"]]


def test_an_entry_evicted_while_its_read_starts_a_fetch_keeps_single_flight_and_byte_count(monkeypatch):
    monkeypatch.setattr(store_module, "MAX_ON_DEMAND", 1)
    executor = ManualExecutor()
    store, source, clock = make(executor, [])
    source.values.update(k="v" * 10, other="o")
    first = store.read(item("k"))
    executor.run(0)
    assert settle(first).state == "miss"
    clock.now += 11  # expired, no stale window
    # Between read()'s lookup of k and its fetch, another thread adds an entry, which evicts k.
    clock.hook = lambda: store._add_on_demand(item("other"))
    reading = store.read(item("k"))
    assert store.read(item("k")) is reading and len(executor.jobs) == 2  # the next read joins that fetch
    source.values["k"] = "B" * 1000
    executor.run(1)
    assert settle(reading).value.body == b"B" * 1000
    held = sum(len(entry.cached[0].body) for entry in store._entries.values() if entry.on_demand and entry.cached)
    assert store._on_demand_bytes == held == 1000


def test_forced_refresh_ignores_a_recent_read_and_keeps_the_order(executor):
    store, source, clock = make(executor, ["a", "b"], policy=Policy(jitter=0.0, refresh_coalesce=1.0))
    settle(store.read(item("a")))
    source.values["a"] = "rotated"
    settle(store.refresh([item("b")])[0])
    source.gate.clear()
    futures = store.refresh([item("b"), item("a")])  # b coalesced (just refreshed), a fetched again
    source.gate.set()
    assert [settle(f).value.body for f in futures] == [b"value of b", b"rotated"]


def test_on_demand_lru_keeps_recently_read_entries(executor, monkeypatch):
    monkeypatch.setattr(store_module, "MAX_ON_DEMAND", 2)
    store, source, _ = make(executor, [])
    source.values.update({n: f"value of {n}" for n in ("x", "y", "z")})
    settle(store.read(item("x")))
    settle(store.read(item("y")))
    assert isinstance(store.read(item("x")), Result)  # x is now the most recent
    settle(store.read(item("z")))  # evicts y, the least recently used
    assert isinstance(store.read(item("x")), Result)
    assert isinstance(store.read(item("y")), Future)


def test_on_demand_entries_are_bounded_by_bytes(executor, monkeypatch):
    monkeypatch.setattr(store_module, "MAX_ON_DEMAND_BYTES", 250)
    store, source, _ = make(executor, ["configured"])
    source.values["configured"] = "c" * 1000
    source.values.update({f"big{i}": "b" * 100 for i in range(4)})
    settle(store.read(item("configured")))
    for i in range(4):
        settle(store.read(item(f"big{i}")))
    cached = sorted(entry.name for entry in store.entries())
    assert cached == ["big2", "big3", "configured"]  # 200 bytes kept of 400; the configured kilobyte does not count
    assert isinstance(store.read(item("configured")), Result)


def _wait_until(condition, timeout=5.0):
    deadline = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return True
        deadline.wait(0.01)
    return condition()


def test_values_fetched_together_expire_together(executor):
    draws = iter([0.9, 0.1, 0.5])
    store, source, clock = make(executor, ["a", "b", "c"], policy=Policy(jitter=0.05), random=lambda: next(draws))
    for future in store.prefetch():
        future.result(timeout=5)
    expiries = {entry.item.name: entry.cached[2] for entry in store._entries.values()}
    assert len(set(expiries.values())) == 1  # one call (batch of 3), one draw
    assert expiries["a"] == pytest.approx(1000 + 10 * (1 - 0.05 * 0.9))


def test_refresh_ahead_retries_failed_configured_items_in_one_batch(executor):
    names = [f"f{i}" for i in range(3)]
    store, source, clock = make(executor, names, policy=Policy(jitter=0.0, retries=0, error_hold=1.0))
    source.failing.update(names)
    for future in store.prefetch():
        assert future.exception(timeout=5) is not None
    source.failing.clear()
    source.calls.clear()
    assert store.refresh_ahead() == 0  # inside the error hold: not yet
    clock.now += 1.0
    assert store.refresh_ahead() == 3
    assert _wait_until(lambda: all(isinstance(store.read(item(n)), Result) for n in names))
    assert source.calls == [names]
    store, source, clock = make(executor, ["f0"], policy=Policy(jitter=0.0, retries=0, error_hold=1.0))
    del source.values["f0"]
    for future in store.prefetch():
        assert future.exception(timeout=5).status == 404
    clock.now += 5
    assert store.refresh_ahead() == 0  # not there: left to reads, not asked for on every INVOKE


def test_a_value_inside_its_stale_window_is_not_retried(executor):
    later = Later()
    store, source, clock = make(executor, ["a"], policy=Policy(jitter=0.0, retries=2, circuit_threshold=100),
                                later=later, stale=60.0)
    settle(store.read(item("a")))
    source.failing.add("a")
    clock.now += 11
    assert store.read(item("a")).state == "stale"
    assert _wait_until(lambda: store._entries[("parameters", "a", None, None)].pending is None)
    assert later.waiting == [] and len(source.calls) == 2  # the next read or INVOKE tries again


def test_refresh_ahead_probes_a_source_whose_cooldown_is_over(executor):
    policy = Policy(jitter=0.0, retries=0, circuit_threshold=1, circuit_cooldown=2.0)
    store, source, clock = make(executor, ["a"], policy=policy, stale=60.0)
    settle(store.read(item("a")))
    source.failing.add("a")
    clock.now += 9
    assert store.refresh_ahead() == 1  # fails: the circuit opens
    assert _wait_until(lambda: store._circuits[("parameters", "us-west-2")].is_open)
    assert store.refresh_ahead() == 0  # cooling down
    clock.now += 2.0
    source.failing.clear()
    assert store.refresh_ahead() == 1  # the probe
    assert _wait_until(lambda: not store._circuits[("parameters", "us-west-2")].is_open)


def test_versions_sharing_a_name_are_fetched_in_separate_calls(executor):
    store, source, _ = make(executor, ["s"])
    versions = [Item("parameters", "s", "us-west-2", 10.0, version_stage=stage) for stage in (None, "AWSPREVIOUS")]
    for future in store.refresh(versions + [item("t")]):
        future.exception(timeout=5)
    assert sorted(source.calls) == [["s"], ["s", "t"]]  # fetchers answer by name: never two "s" in one call


# -- Managed Instances: refresh-ahead on a timer (next_refresh_due) ------------------------------------


def test_next_refresh_due_is_when_refresh_ahead_finds_work(executor):
    settled = threading.Event()
    store, source, clock = make(executor, ["a", "b"], policy=Policy(jitter=0.0, refresh_ahead=0.2))
    store._on_settle = settled.set
    for future in store.prefetch():
        future.result(timeout=5)
    assert settled.wait(5)
    due = store.next_refresh_due()
    assert due == pytest.approx(clock.now + 8.0)  # 80% of the 10 s TTL
    clock.now = due - 0.01
    assert store.refresh_ahead() == 0  # the timer woke early: nothing to do yet
    clock.now = due
    assert store.refresh_ahead() == 2
    assert store.next_refresh_due() is None or store.next_refresh_due() > clock.now  # in flight: not due again
    assert _wait_until(lambda: store.next_refresh_due() == pytest.approx(clock.now + 8.0))


def test_next_refresh_due_waits_out_the_error_hold_and_the_circuit(executor):
    policy = Policy(jitter=0.0, refresh_ahead=0.2, retries=0, error_hold=1.0, circuit_threshold=1,
                    circuit_cooldown=5.0, circuit_cooldown_cap=30.0)
    store, source, clock = make(executor, ["a"], policy=policy)
    source.failing = {"a"}
    with pytest.raises(FetchError):
        settle(store.prefetch()[0])
    # throttled at INIT: retried by the timer, not before the circuit's cooldown (longer than the hold)
    assert store.next_refresh_due() == pytest.approx(clock.now + 5.0)
    source.failing = set()
    clock.now += 5.0
    assert store.refresh_ahead() == 1
    assert _wait_until(lambda: isinstance(store.read(item("a")), Result))


def test_next_refresh_due_leaves_missing_items_to_reads(executor):
    store, source, clock = make(executor, ["a"], policy=Policy(jitter=0.0, refresh_ahead=0.2))
    del source.values["a"]
    with pytest.raises(FetchError):
        settle(store.prefetch()[0])
    assert store.next_refresh_due() is None


# --- issue 12: sources stay apart (item 6) and recover quickly (item 7) -------------------------------------------


class HangingSource(MemorySource):
    """A source whose calls to the regions in `hanging` block until released (a hung AWS call)."""

    def __init__(self, source, hanging=()):
        super().__init__()
        self.source = source
        self.hanging = set(hanging)
        self.release = threading.Event()

    def fetch_batch(self, items):
        if items[0].region in self.hanging:
            self.calls.append([item.name for item in items])
            assert self.release.wait(10)
            return {item.name: FetchError("Timeout", 504, "timed out", transient=True) for item in items}
        return super().fetch_batch(items)


def _lanes_store(items, fetchers):
    from cache_extension.lanes import LaneExecutors

    executors = LaneExecutors({(i.source, i.region) for i in items})
    return Store(items, fetchers, executors, policy=Policy(retries=0), later=Later()), executors


@pytest.mark.parametrize("other", ["secrets", "parameters in another region"])
def test_a_hanging_source_delays_no_other(other):
    ssm = HangingSource("parameters", hanging={"us-west-2"})
    secrets = HangingSource("secrets")
    hung = [Item(source="parameters", name=f"p{i}", region="us-west-2", ttl=10.0) for i in range(12)]
    if other == "secrets":
        healthy = Item(source="secrets", name="s", region="us-west-2", ttl=10.0)
        secrets.values = {"s": "value"}
    else:
        healthy = Item(source="parameters", name="q", region="eu-west-1", ttl=10.0)
        ssm.values = {"q": "value"}
    store, executors = _lanes_store([*hung, healthy], {"parameters": ssm, "secrets": secrets})
    try:
        waiting = [store.read(entry) for entry in hung]  # 12 reads wait on the hung source
        assert wait_until(lambda: len(ssm.calls) >= 2)
        import time

        started = time.monotonic()
        result = settle(store.read(healthy))
        elapsed = time.monotonic() - started
        print(f"\n[isolation, unit] {other}: read in {elapsed * 1000:.1f} ms with 12 reads waiting on a hung source")
        assert result.value.body == b"value" and elapsed < 1.0
        assert executors.threads() <= executors.total  # the thread budget holds
    finally:
        ssm.release.set()
        for future in waiting:
            with pytest.raises(FetchError):
                settle(future)
        executors.shutdown()


def test_the_thread_budget_is_small_and_each_lane_gets_some():
    from cache_extension.lanes import LaneExecutors

    assert LaneExecutors({("parameters", "r"), ("secrets", "r"), ("dynamodb", "r")}).total <= 12
    many = LaneExecutors({(s, f"r{i}") for s in ("parameters", "secrets", "dynamodb") for i in range(8)})
    assert many.per_lane >= 1 and many.total <= 2 * 24


def test_a_call_queued_while_its_circuit_opened_never_goes_out():
    executor = ManualExecutor()
    policy = Policy(jitter=0.0, retries=0, error_hold=0.0, circuit_threshold=3, circuit_cooldown=1.0)
    store, source, clock = make(executor, ["a", "b", "c", "d", "e"], policy=policy)
    source.failing.update("abcde")
    reads = [store.read(item(name)) for name in "abcde"]  # five calls queued for a busy lane
    for job in range(3):
        executor.run(job)  # three failures open the circuit
    executor.run(3)
    executor.run(4)
    assert len(source.calls) == 3  # the two queued ones were refused, not sent
    for future in reads[3:]:
        with pytest.raises(store_module.CircuitOpen):
            settle(future)


def test_reads_refused_by_the_circuit_succeed_as_soon_as_a_probe_finds_aws_back(executor):
    policy = Policy(jitter=0.0, retries=0, error_hold=5.0, circuit_threshold=1, circuit_cooldown=1.0)
    store, source, clock = make(executor, ["a", "b"], policy=policy)
    source.failing.update("ab")
    with pytest.raises(FetchError):
        settle(store.read(item("a")))  # opens the circuit
    with pytest.raises(store_module.CircuitOpen):
        settle(store.read(item("b")))  # refused: held no longer than the cooldown, not the 5 s error hold
    source.failing.clear()
    clock.now += policy.circuit_cooldown
    calls = len(source.calls)
    assert settle(store.read(item("b"))).state == "miss"  # the probe: closes the circuit
    assert len(source.calls) == calls + 1


def test_a_hit_says_how_long_it_stays_fresh(executor):
    store, source, clock = make(executor, ["a"], stale=5.0)
    settle(store.read(item("a", stale=5.0)))
    assert store.read(item("a", stale=5.0)).fresh_for == pytest.approx(10.0)
    clock.now += 3.0
    assert store.read(item("a", stale=5.0)).fresh_for == pytest.approx(7.0)
    clock.now += 8.0  # past the TTL, inside the stale window
    stale = store.read(item("a", stale=5.0))
    assert stale.state == "stale" and stale.fresh_for == 0.0
