"""Path groups in the cache (store_paths.py), with a fake clock and an in-memory SSM: one listing per TTL settles
every member, added and removed parameters, reads of names the listing did not return, the max."""

from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from cache_extension.config import Item
from cache_extension.config_paths import Listing
from cache_extension.fetchers import Fetcher, FetchError
from cache_extension.fetchers.base import text_value
from cache_extension.fetchers.ssm_path import PathValues
from cache_extension.metrics import Metrics
from cache_extension.policy import Policy
from cache_extension.store import Store

PATH = "/app/prod/"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class MemorySsm(Fetcher):
    """Parameters by name; a listing item answers with every name under its path (up to its max)."""

    source = "parameters"
    operation = "memory:GetParameters"
    batch_size = 10

    def __init__(self):
        super().__init__(clients=None)
        self.values = {}
        self.calls = []
        self.failing = False

    def fetch_batch(self, items):
        self.calls.append([("list " if item.listing else "") + item.name for item in items])
        if self.failing:
            return {item.name: FetchError("ThrottlingException", 502, "throttled", transient=True) for item in items}
        if items[0].listing is not None:
            names = sorted(name for name in self.values if name.startswith(PATH))
            limit = items[0].listing.max
            members = {name: text_value(self.values[name]) for name in names[:limit]}
            return {items[0].name: PathValues(b"", "x", None, members, len(names) > limit)}
        return {item.name: text_value(self.values[item.name]) if item.name in self.values
                else FetchError("ParameterNotFound", 404, "not found") for item in items}


def group(ttl=10.0, stale=5.0, limit=1000):
    return Item("parameters", PATH, "us-west-2", ttl, stale, listing=Listing(False, limit))


def member(name):
    return Item("parameters", name, "us-west-2", 10.0, 5.0, member_of=PATH)


@pytest.fixture
def setup():
    source, clock, metrics = MemorySsm(), Clock(), Metrics()
    source.values = {f"{PATH}p{i:02d}": f"value-{i}" for i in range(25)}
    with ThreadPoolExecutor(2) as pool:
        store = Store([group()], {"parameters": source}, pool, policy=Policy(retries=0), clock=clock,
                      metrics=metrics)
        yield store, source, clock, metrics


def read(store, name):
    outcome = store.read(member(name))
    return outcome.result(timeout=5) if isinstance(outcome, Future) else outcome


def test_one_listing_serves_every_member(setup):
    store, source, clock, _ = setup
    for future in store.prefetch():
        future.result(timeout=5)
    assert source.calls == [[f"list {PATH}"]]
    assert [read(store, f"{PATH}p{i:02d}").value.body for i in (0, 24)] == [b"value-0", b"value-24"]
    assert read(store, f"{PATH}p03").state == "hit"
    assert len(source.calls) == 1  # members are never fetched one by one


def test_a_name_the_listing_did_not_return_is_404_with_no_call(setup):
    store, source, clock, _ = setup
    for future in store.prefetch():
        future.result(timeout=5)
    for name in (f"{PATH}absent", f"{PATH}absent"):
        with pytest.raises(FetchError) as raised:
            read(store, name)
        assert raised.value.code == "NotFound"
    assert len(source.calls) == 1
    assert len(store) == 26  # the group and its 25 members: a missing name leaves no entry behind


def test_refresh_ahead_relists_and_picks_up_added_and_removed(setup):
    store, source, clock, _ = setup
    for future in store.prefetch():
        future.result(timeout=5)
    source.values[f"{PATH}added"] = "added-value"
    del source.values[f"{PATH}p00"]
    clock.now += 9.0  # in the last 20% of the TTL
    assert store.refresh_ahead() == 1  # the group only: its members are its listing's
    assert wait_until(lambda: len(source.calls) == 2) and source.calls[1] == [f"list {PATH}"]
    assert wait_until(lambda: store.read(member(f"{PATH}added")).__class__.__name__ == "Result")
    assert read(store, f"{PATH}added").value.body == b"added-value"
    # The removed one keeps its value through its TTL and stale window (10 s + 5 s from the first listing) ...
    clock.now = 1000.0 + 12.0
    assert read(store, f"{PATH}p00").state == "stale"
    # ... then answers 404 with no call (the group's listing is fresh), and its entry is dropped.
    clock.now = 1000.0 + 15.5
    calls = len(source.calls)
    with pytest.raises(FetchError) as raised:
        read(store, f"{PATH}p00")
    assert raised.value.code == "NotFound" and len(source.calls) == calls
    assert all(item.name != f"{PATH}p00" for item in store.entries())


def test_a_member_read_past_its_window_waits_for_one_listing(setup):
    store, source, clock, _ = setup
    for future in store.prefetch():
        future.result(timeout=5)
    clock.now += 60.0  # past TTL and stale window of everything
    source.values[f"{PATH}p01"] = "new-value"
    assert read(store, f"{PATH}p01").value.body == b"new-value"
    assert read(store, f"{PATH}p02").state == "hit"  # the same listing refreshed every member
    assert source.calls == [[f"list {PATH}"], [f"list {PATH}"]]


def test_a_second_prefetch_lists_again_and_fetches_no_member_alone(setup):
    """After a SnapStart restore (or the first INVOKE of sources kept out of the snapshot) the runner prefetches
    every configured item again, a path's members with it: they wait for its one listing."""
    store, source, clock, _ = setup
    for future in store.prefetch():
        future.result(timeout=5)
    for future in store.prefetch():
        future.result(timeout=5)
    assert source.calls == [[f"list {PATH}"], [f"list {PATH}"]]


def test_a_failed_listing_serves_stale_members(setup):
    store, source, clock, _ = setup
    for future in store.prefetch():
        future.result(timeout=5)
    source.failing = True
    clock.now += 11.0  # past the TTL, inside the stale window
    assert read(store, f"{PATH}p01").state == "stale"
    assert wait_until(lambda: len(source.calls) == 2)
    clock.now += 10.0  # past the window: the listing fails, so the member's read fails
    with pytest.raises(FetchError) as raised:
        read(store, f"{PATH}p01")
    assert raised.value.code == "ThrottlingException"


def test_a_member_the_listing_could_not_read_fails_alone_and_is_logged_once(setup, caplog):
    """BatchGetSecretValue lists a secret it cannot decrypt in Errors: that name answers the error, the rest serve."""
    store, source, clock, _ = setup
    original = source.fetch_batch

    def with_an_error(items):
        outcomes = original(items)
        if items[0].listing is not None:
            outcomes[items[0].name].members[f"{PATH}denied"] = FetchError("AccessDeniedException", 502, "denied")
        return outcomes

    source.fetch_batch = with_an_error
    for future in store.prefetch():
        future.result(timeout=5)
    with pytest.raises(FetchError) as raised:
        read(store, f"{PATH}denied")
    assert raised.value.code == "AccessDeniedException" and read(store, f"{PATH}p01").value.body == b"value-1"
    lines = [r.getMessage() for r in caplog.records if "AccessDeniedException" in r.getMessage()]
    assert len(lines) == 1 and f"{PATH}denied" in lines[0]
    assert "value-" not in caplog.text  # names and codes only


def test_a_failed_listing_is_logged_once_not_per_member(setup, caplog):
    store, source, clock, _ = setup
    source.failing = True
    futures = store.prefetch()
    readers = [store.read(member(f"{PATH}p{i:02d}")) for i in range(5)]
    for future in [*futures, *readers]:
        with pytest.raises(FetchError):
            future.result(timeout=5)
    assert len([r for r in caplog.records if "ThrottlingException" in r.getMessage()]) == 1


def test_the_max_keeps_the_first_names_and_counts(caplog):
    source, clock, metrics = MemorySsm(), Clock(), Metrics()
    source.values = {f"{PATH}p{i:02d}": f"value-{i}" for i in range(15)}
    with ThreadPoolExecutor(2) as pool:
        store = Store([group(limit=12)], {"parameters": source}, pool, clock=clock, metrics=metrics)
        for future in store.prefetch():
            future.result(timeout=5)
        clock.now += 100.0
        for future in store.refresh([group(limit=12)]):
            future.result(timeout=5)
    assert len(store) == 13
    assert metrics.snapshot()["cache"]["parameters"]["PathMaxReached"] == 2
    lines = [record.getMessage() for record in caplog.records if "max" in record.getMessage()]
    assert len(lines) == 1 and PATH in lines[0] and "12" in lines[0]  # logged once
    assert "value-" not in caplog.text


def wait_until(condition, timeout=5.0):
    import threading

    for _ in range(int(timeout / 0.01)):
        if condition():
            return True
        threading.Event().wait(0.01)
    return False
