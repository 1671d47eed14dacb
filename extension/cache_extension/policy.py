"""How the cache treats time and failure: TTL jitter, refresh-ahead, retries, and a circuit per source.

Pure rules with an injected clock and random source, so the fleet simulation (scripts/simulate-fleet)
and the unit tests drive exactly the code the extension runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Policy:
    # Each expiry is drawn from [ttl * (1 - jitter), ttl]: a fleet started together spreads its refreshes.
    jitter: float = 0.05
    # An expired value still inside its stale window is served at once while one refresh runs behind it.
    stale_while_revalidate: bool = True
    # On INVOKE, entries within this fraction of their TTL of expiring are refreshed, at most this many.
    refresh_ahead: float = 0.2
    refresh_ahead_max: int = 200
    # Transient failures (throttling, 5xx, timeouts, resets) are retried this many times, each after a
    # delay drawn from [0, min(cap, base * 2**attempt)] ("full jitter"), never past the deadline.
    retries: int = 2
    backoff_base: float = 0.1
    backoff_cap: float = 2.0
    retry_deadline: float = 8.0
    # After this many failed calls in a row a source's circuit opens: no calls for the cooldown, which
    # doubles with each reopening up to its cap. Then one probe call decides; one probe per cooldown at
    # most, so an outage costs a call per cap per source and region, and reads succeed within about the
    # cap of AWS recovering.
    circuit_threshold: int = 3
    circuit_cooldown: float = 1.0
    circuit_cooldown_cap: float = 1.5
    # A refresh of a still servable value that failed for good (denied, say: no circuit opens) waits the
    # error hold, doubling up to this, before refresh-ahead tries it again.
    refresh_backoff_cap: float = 30.0
    # A failure with nothing servable is answered from memory this long: a missing name read in a loop
    # costs one call per second, not one per read.
    error_hold: float = 1.0
    # A forced refresh of an entry force-refreshed less than this long ago is answered without a new call.
    refresh_coalesce: float = 1.0

    def expiry(self, now: float, ttl: float, draw: float) -> float:
        """`draw` is uniform in [0, 1): one per call, so values fetched together stay together."""
        return now + ttl * (1.0 - self.jitter * draw)

    def backoff(self, attempt: int, random: Callable[[], float]) -> float:
        return random() * min(self.backoff_cap, self.backoff_base * 2**attempt)

    def refresh_backoff(self, failures: int, transient: bool = True) -> float:
        """How long refresh-ahead leaves a value still servable after its refresh failed `failures` + 1 times in a
        row: the error hold, doubling (readers are served the value meanwhile). Up to the circuit's cap when AWS
        failed (the circuit spaces those calls too, and the value is refreshed soon after AWS recovers), up to
        refresh_backoff_cap when the answer was final (denied: nothing would change it soon)."""
        cap = self.circuit_cooldown_cap if transient else self.refresh_backoff_cap
        return min(cap, self.error_hold * 2 ** min(failures, 32))  # (no float overflow)

    def cooldown(self, opened: int) -> float:
        """The circuit's cooldown after its `opened`-th opening in a row (0-based)."""
        return min(self.circuit_cooldown_cap, self.circuit_cooldown * 2 ** min(opened, 32))  # (no float overflow)


# The original sample's behaviour, for comparison in the fleet simulation: no jitter, no stale, no
# retries, no circuit, no refresh-ahead, no error hold.
NAIVE = Policy(jitter=0.0, stale_while_revalidate=False, refresh_ahead=0.0, retries=0,
               circuit_threshold=1 << 30, error_hold=0.0, refresh_coalesce=0.0)


class Circuit:
    """One per source and region: closed, open (no calls until a time), or half-open (a probe call out).

    Half-open lets one probe out per cooldown: a probe that hangs (until botocore's read timeout) does not
    keep a source that has recovered meanwhile shut; the next probe may go when the cooldown after it ends.

    Only transient failures count; "not found" or "access denied" say nothing about the source's health.
    Callers hold the store's lock.
    """

    def __init__(self, policy: Policy, clock: Callable[[], float]) -> None:
        self.policy = policy
        self.clock = clock
        self.failures = 0       # failed calls in a row
        self.opened = 0         # times opened in a row: the cooldown doubles with each
        self.open_until = 0.0
        self.probing = False
        self.last_code = ""
        self.generation = 0     # openings and probes so far: a call records the one it went out under

    @property
    def is_open(self) -> bool:
        return self.failures >= self.policy.circuit_threshold

    def blocked(self) -> bool:
        """Open, with its cooldown (or the last probe's) still running: no call may go now."""
        return self.is_open and self.clock() < self.open_until

    def allow(self) -> bool:
        """May a call go out now? When the cooldown is over, one may: the probe. The next one may go a
        cooldown later, whether or not this one's outcome is recorded by then."""
        if not self.is_open:
            return True
        if self.blocked():
            return False
        self.probing = True
        self.open_until = self.clock() + self.policy.cooldown(max(self.opened - 1, 0))
        self.generation += 1  # only the latest probe's failure reopens it: one hung long ago does not
        return True

    def record(self, failed_code: str | None, generation: int | None = None) -> bool:
        """Record a call's outcome (the transient error code, or None); True when this (re)opened the circuit.

        Calls that were already in flight when it opened fail too, but add nothing: only the opening and
        each failed probe set a cooldown, so one outage opens it once rather than doubling per call. With
        the `generation` a call went out under, such a call is also never taken for the probe.
        """
        if failed_code is None:
            self.failures = self.opened = 0
            self.probing = False
            return False
        self.last_code = failed_code
        if generation is not None and generation != self.generation:
            return False
        was_open, probe = self.is_open, self.probing
        self.failures += 1
        if not self.is_open or (was_open and not probe):
            return False
        self.probing = False
        cooldown = self.policy.cooldown(self.opened)
        self.opened += 1
        self.generation += 1
        self.open_until = self.clock() + cooldown
        return True

    def retry_after(self) -> float:
        return max(0.0, self.open_until - self.clock())
