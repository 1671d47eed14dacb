"""Lambda's modes as the extension decides them, and the clock that counts a SnapStart restore's gap."""

from __future__ import annotations

import threading

import pytest

from cache_extension import modes
from cache_extension.clock import ElapsedClock


@pytest.mark.parametrize("value,name,events,timer,snapshot", [
    (None, "on-demand", ("INVOKE", "SHUTDOWN"), False, False),
    ("on-demand", "on-demand", ("INVOKE", "SHUTDOWN"), False, False),
    ("provisioned-concurrency", "provisioned-concurrency", ("INVOKE", "SHUTDOWN"), False, False),
    ("snap-start", "snap-start", ("INVOKE", "SHUTDOWN"), False, True),
    # Managed Instances refuse INVOKE at register (403, then INIT fails): SHUTDOWN only, refresh on a timer
    ("lambda-managed-instances", "lambda-managed-instances", ("SHUTDOWN",), True, False),
    ("something-new", "on-demand", ("INVOKE", "SHUTDOWN"), False, False),
])
def test_modes(value, name, events, timer, snapshot):
    env = {} if value is None else {"AWS_LAMBDA_INITIALIZATION_TYPE": value}
    mode = modes.detect(env)
    assert (mode.name, mode.events, mode.timer_refresh, mode.snapshot) == (name, events, timer, snapshot)


class Clocks:
    def __init__(self):
        self.mono, self.wall = 100.0, 1_700_000_000.0

    def advance(self, seconds, wall=None):
        self.mono += seconds
        self.wall += seconds if wall is None else wall


def test_the_clock_follows_the_monotonic_clock_while_both_agree():
    clocks = Clocks()
    clock = ElapsedClock(lambda: clocks.mono, lambda: clocks.wall)
    start = clock()
    for _ in range(100):
        clocks.advance(0.5, wall=0.5004)  # NTP slewing the wall clock a little: no restore
        clock()
    assert clock() - start == pytest.approx(50.0)
    assert clock.restores == 0


def test_a_restore_days_later_counts_as_elapsed_time_once():
    clocks = Clocks()
    clock = ElapsedClock(lambda: clocks.mono, lambda: clocks.wall)
    before = clock()
    clocks.advance(0.01, wall=3 * 86400)  # restored three days later; the monotonic clock did not count it
    assert clock() - before == pytest.approx(3 * 86400, abs=0.1)
    assert clock.restores == 1 and clock.skipped == pytest.approx(3 * 86400, abs=0.1)
    clocks.advance(1.0)
    assert clock() - before == pytest.approx(3 * 86400 + 1, abs=0.1)
    assert clock.restores == 1  # counted once, not at every later reading


def test_a_backward_wall_step_is_ignored():
    clocks = Clocks()
    clock = ElapsedClock(lambda: clocks.mono, lambda: clocks.wall)
    before = clock()
    clocks.advance(2.0, wall=-3600)
    assert clock() - before == pytest.approx(2.0)
    clocks.advance(1.0)
    assert clock() - before == pytest.approx(3.0) and clock.restores == 0


def test_concurrent_readers_count_one_restore():
    clocks = Clocks()
    clock = ElapsedClock(lambda: clocks.mono, lambda: clocks.wall)
    clock()
    clocks.advance(0.0, wall=1000)
    readings = []
    threads = [threading.Thread(target=lambda: readings.append(clock())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert clock.restores == 1 and len(set(readings)) == 1
