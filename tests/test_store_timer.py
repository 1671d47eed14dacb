"""The Store's timer contract on Lambda Managed Instances (no INVOKE, no freeze): the extension's refresh thread calls
store.refresh_ahead() whenever store.next_refresh_due() says, and sleeps until then or until on_settle wakes it.

A fake clock and a synchronous executor: a fetch settles inside the call that starts it. `timer_pass` is the thread's
loop body, as scripts/local_lambda/simulate_managed.py (RefreshTimer) runs it in virtual time."""

from cache_extension.config import Item
from cache_extension.fetchers import Fetcher, FetchError
from cache_extension.fetchers.base import text_value
from cache_extension.policy import Policy
from cache_extension.store import Store

import pytest


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Source(Fetcher):
    source = "parameters"
    operation = "memory:Get"
    batch_size = 10

    def __init__(self, clock):
        super().__init__(clients=None)
        self.clock = clock
        self.throttled = False
        self.calls: list[float] = []

    def fetch_batch(self, items):
        self.calls.append(self.clock.now)
        if self.throttled:
            return {item.name: FetchError("ThrottlingException", 400, "throttled", transient=True) for item in items}
        return {item.name: text_value(f"{item.name} at {self.clock.now}") for item in items}


class Inline:
    def submit(self, function, *args):
        function(*args)


def make(policy=Policy(jitter=0.0)):
    clock = Clock()
    source = Source(clock)
    settled = []
    items = [Item(source="parameters", name=f"p{i}", region="us-east-1", ttl=10.0, stale=10.0) for i in range(3)]
    store = Store(items, {"parameters": source}, Inline(), policy=policy, clock=clock, later=lambda *a: None,
                  on_settle=lambda: settled.append(clock.now))
    return store, clock, source, settled


def timer_pass(store, clock):
    """One pass of the refresh thread: refresh while due; returns when it would sleep until (None: until woken)."""
    due = store.next_refresh_due()
    while due is not None and due <= clock.now:
        assert store.refresh_ahead() > 0, "due now, yet refresh_ahead() starts nothing: the thread would spin"
        due = store.next_refresh_due()
    return due


def test_the_timer_refreshes_at_the_due_time_and_only_then():
    store, clock, source, settled = make()
    store.prefetch()
    assert source.calls == [0.0] and settled and set(settled) == {0.0}  # the timer was woken when it settled
    assert timer_pass(store, clock) == 8.0  # refresh_ahead=0.2 of a 10 s TTL before expiry
    clock.now = 7.9
    assert store.refresh_ahead() == 0 and source.calls == [0.0]
    clock.now = 8.0
    assert timer_pass(store, clock) == 16.0
    assert source.calls == [0.0, 8.0]  # one batched call for the three entries
    assert store.read(store.entries()[0]).state == "hit"


def test_a_failed_refresh_is_not_resent_at_once_and_backs_off():
    store, clock, source, _ = make()
    policy = Policy()
    backoff = [policy.refresh_backoff(failures, transient=True) for failures in range(3)]
    assert backoff[0] > 0 and backoff[1] > backoff[0] and backoff[2] == policy.circuit_cooldown_cap
    store.prefetch()
    clock.now = 8.0
    source.throttled = True
    # On INVOKE the next attempt waits for the next invoke; on the timer it waits out the error hold (1 s), doubling
    # up to the circuit's cap (AWS failed: the value is refreshed soon after it recovers).
    assert timer_pass(store, clock) == 8.0 + backoff[0]
    assert source.calls == [0.0, 8.0]
    clock.now = 8.0 + backoff[0]
    assert timer_pass(store, clock) == clock.now + backoff[1]
    clock.now += backoff[1]
    timer_pass(store, clock)
    third = clock.now
    assert source.calls == [0.0, 8.0, 8.0 + backoff[0], third]  # (the third failure in a row also opened the circuit)
    source.throttled = False
    clock.now = store.next_refresh_due()
    assert clock.now == third + max(backoff[2], policy.cooldown(0))  # the backoff, or the circuit's cooldown
    timer_pass(store, clock)
    assert [store.read(item).state for item in store.entries()] == ["hit"] * 3
    assert timer_pass(store, clock) == pytest.approx(clock.now + 8.0)  # back to 80% of the TTL: the backoff reset


class Denied(Source):
    def fetch_batch(self, items):
        if self.throttled:
            self.calls.append(self.clock.now)
            return {item.name: FetchError("AccessDeniedException", 502, "denied") for item in items}
        return super().fetch_batch(items)


def test_a_permanent_failure_of_a_refresh_never_spins_the_timer():
    # Permanent errors never open the circuit: without the backoff, a denied refresh would be resent at once, forever.
    store, clock, _, _ = make()
    source = Denied(clock)
    store._fetchers["parameters"] = source
    store.prefetch()
    clock.now = 8.0
    source.throttled = True
    for _ in range(5):
        clock.now = timer_pass(store, clock)
    assert source.calls == [0.0, 8.0, 9.0, 11.0, 15.0, 23.0]
