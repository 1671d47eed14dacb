"""Cache rules with a fake clock and an in-memory source: TTL, single-flight, stale, batching."""

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from cache_extension.config import Item
from cache_extension.fetchers import Fetcher, FetchError, Value
from cache_extension.fetchers.base import text_value
from cache_extension import store as store_module
from cache_extension.store import Result, Store


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
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
        assert self.gate.wait(5)
        return {
            item.name: FetchError("ThrottlingException", 502, "throttled") if item.name in self.failing
            else text_value(self.values[item.name]) if item.name in self.values
            else FetchError("ParameterNotFound", 404, "not found")
            for item in items
        }


def item(name, ttl=10.0):
    return Item(source="parameters", name=name, region="us-west-2", ttl=ttl)


@pytest.fixture
def executor():
    with ThreadPoolExecutor(4) as pool:
        yield pool


def settle(outcome):
    return outcome.result(timeout=5) if isinstance(outcome, Future) else outcome


def make(executor, names, **kwargs):
    source, clock = MemorySource(), Clock()
    source.values = {name: f"value of {name}" for name in names}
    store = Store([item(name, **kwargs) for name in names], {"parameters": source}, executor, clock=clock)
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


def test_failed_refresh_serves_the_old_value_as_stale(executor):
    store, source, clock = make(executor, ["a"])
    settle(store.read(item("a")))
    clock.now += 30
    source.failing.add("a")
    stale = settle(store.read(item("a")))
    assert (stale.state, stale.value.body, stale.age) == ("stale", b"value of a", 30)
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
