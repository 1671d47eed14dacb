"""Lambda's modes, and what each changes for this extension: the one place the mode is decided.

Lambda tells extensions the mode in AWS_LAMBDA_INITIALIZATION_TYPE (an unknown or missing value is
treated as on-demand, the classic lifecycle):
- on-demand, provisioned-concurrency: INVOKE events, and the environment is frozen between invokes, so
  background work (refresh-ahead, retries) runs when an INVOKE arrives;
- snap-start: as on-demand, but INIT runs once and a snapshot of memory is restored later, maybe days
  later, with a monotonic clock that did not count the gap (clock.ElapsedClock judges ages by real time);
- lambda-managed-instances: extensions may register for SHUTDOWN only (asking for INVOKE fails INIT), the
  environment is never frozen and serves invokes concurrently: refreshes run on a timer instead.

Imported before registration, so it uses nothing beyond builtins.
"""

from __future__ import annotations

ON_DEMAND = "on-demand"
PROVISIONED = "provisioned-concurrency"
SNAP_START = "snap-start"
MANAGED_INSTANCES = "lambda-managed-instances"


class Mode:
    __slots__ = ("name", "events", "timer_refresh", "snapshot")

    def __init__(self, name: str, events: tuple[str, ...], timer_refresh: bool, snapshot: bool) -> None:
        self.name = name                    # AWS_LAMBDA_INITIALIZATION_TYPE, as Lambda spells it
        self.events = events                # what to register for
        self.timer_refresh = timer_refresh  # no INVOKE events and no freeze: refresh on a timer
        self.snapshot = snapshot            # INIT's memory is snapshotted and restored later

    def __repr__(self) -> str:
        return f"Mode({self.name!r})"


def detect(env) -> Mode:
    name = env.get("AWS_LAMBDA_INITIALIZATION_TYPE") or ON_DEMAND
    if name == MANAGED_INSTANCES:
        return Mode(name, ("SHUTDOWN",), timer_refresh=True, snapshot=False)
    if name == SNAP_START:
        return Mode(name, ("INVOKE", "SHUTDOWN"), timer_refresh=False, snapshot=True)
    if name != PROVISIONED:
        name = ON_DEMAND
    return Mode(name, ("INVOKE", "SHUTDOWN"), timer_refresh=False, snapshot=False)
