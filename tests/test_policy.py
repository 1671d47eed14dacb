"""The policy's pure rules: expiry jitter, backoff bounds, the circuit's states and cooldowns."""

import random

import pytest

from cache_extension.policy import NAIVE, Circuit, Policy


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.999])
def test_expiry_stays_in_the_last_jitter_fraction_below_the_ttl(draw):
    policy = Policy(jitter=0.05)
    expires = policy.expiry(100.0, 300.0, draw)
    assert 100.0 + 300.0 * 0.95 <= expires <= 400.0
    assert NAIVE.expiry(100.0, 300.0, draw) == 400.0


def test_backoff_is_full_jitter_under_a_capped_exponential():
    policy = Policy(backoff_base=0.1, backoff_cap=2.0)
    rng = random.Random(7)
    for attempt in range(8):
        bound = min(2.0, 0.1 * 2**attempt)
        delays = [policy.backoff(attempt, rng.random) for _ in range(200)]
        assert all(0 <= d <= bound for d in delays)
        assert max(delays) > bound * 0.8  # the whole range is used, not just its top
        assert min(delays) < bound * 0.2


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def test_circuit_opens_doubles_its_cooldown_and_closes_on_success():
    clock = Clock()
    circuit = Circuit(Policy(circuit_threshold=3, circuit_cooldown=1.0, circuit_cooldown_cap=3.0), clock)
    assert [circuit.record("ThrottlingException") for _ in range(3)] == [False, False, True]
    assert circuit.is_open and not circuit.allow() and circuit.retry_after() == 1.0
    cooldowns = []
    for _ in range(3):  # each failed probe reopens it for twice as long, up to the cap
        clock.now += circuit.retry_after()
        assert circuit.allow() and not circuit.allow()  # half-open: one probe at a time
        circuit.record("ThrottlingException")
        cooldowns.append(circuit.retry_after())
    assert cooldowns == [2.0, 3.0, 3.0]
    clock.now += circuit.retry_after()
    assert circuit.allow()
    circuit.record(None)
    assert not circuit.is_open and circuit.allow() and circuit.allow()


def test_a_success_between_failures_resets_the_count():
    circuit = Circuit(Policy(circuit_threshold=3), Clock())
    for code in ("Throttling", "Throttling", None, "Throttling", "Throttling"):
        circuit.record(code)
    assert not circuit.is_open


def test_calls_already_in_flight_when_it_opens_do_not_extend_the_cooldown():
    clock = Clock()
    circuit = Circuit(Policy(circuit_threshold=3, circuit_cooldown=1.0), clock)
    opened = [circuit.record("Timeout") for _ in range(8)]  # eight calls that failed together
    assert opened.count(True) == 1 and circuit.retry_after() == 1.0


def test_a_call_from_before_the_opening_is_never_taken_for_the_probe():
    clock = Clock()
    circuit = Circuit(Policy(circuit_threshold=3, circuit_cooldown=1.0, circuit_cooldown_cap=30.0), clock)
    before = circuit.generation  # four calls go out together
    assert [circuit.record("Throttling", before) for _ in range(3)] == [False, False, True]
    clock.now += 1.0
    assert circuit.allow()  # the probe
    probe = circuit.generation
    clock.now += 0.5
    assert not circuit.record("Throttling", before)  # the fourth call, late: not the probe's outcome
    assert circuit.blocked() and circuit.opened == 1
    assert circuit.record("Throttling", probe)  # the probe failed: reopened, for twice as long
    assert circuit.opened == 2 and circuit.retry_after() == 2.0 and not circuit.allow()


def test_backoffs_stay_capped_however_long_the_failures_last():
    # A Managed Instances environment lives for hours: thousands of failed refreshes or circuit openings in a
    # row must not overflow the doubling (2.0 * 2**1024 raises OverflowError).
    policy = Policy()
    assert policy.refresh_backoff(5000) == policy.circuit_cooldown_cap
    assert policy.refresh_backoff(5000, transient=False) == policy.refresh_backoff_cap
    now = [0.0]
    circuit = Circuit(policy, lambda: now[0])
    for _ in range(1100 * policy.circuit_threshold):
        now[0] = circuit.open_until
        if circuit.allow():
            circuit.record("ThrottlingException", circuit.generation)
    assert circuit.opened > 1025 and circuit.retry_after() == policy.circuit_cooldown_cap


def test_recovery_is_quick_and_an_outage_costs_one_probe_per_cooldown():
    """Issue 12, item 7: reads succeed within 2 s of AWS recovering, so the cooldown stays short; calls during
    an outage stay bounded by letting one probe out per cooldown, even while an earlier probe hangs."""
    policy = Policy()
    assert policy.circuit_cooldown_cap < 2.0
    clock = Clock()
    circuit = Circuit(policy, clock)
    for _ in range(policy.circuit_threshold):
        circuit.record("Timeout", circuit.generation)
    calls = []
    while clock.now < 60.0:  # a minute of outage in which every probe hangs, polled every 10 ms
        if circuit.allow():
            calls.append((clock.now, circuit.generation))  # its outcome is recorded after the read timeout (3 s)
        clock.now = round(clock.now + 0.01, 2)
        for generation in [g for t, g in calls if abs(clock.now - (t + 3.0)) < 0.005]:
            circuit.record("Timeout", generation)
    calls = [t for t, _ in calls]
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert min(gaps) >= policy.circuit_cooldown - 1e-9  # never two probes within a cooldown
    assert max(gaps) <= policy.circuit_cooldown_cap + 0.011  # and a hung probe does not keep the source shut
    assert len(calls) <= 60.0 / policy.circuit_cooldown + 1
