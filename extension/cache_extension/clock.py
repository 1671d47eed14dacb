"""A monotonic clock that also counts time the process did not see pass: a SnapStart restore.

SnapStart snapshots the memory of every process at the end of INIT and restores it later, possibly days
later, in a new environment. The monotonic clock may resume from where the snapshot left it, so a cache
judging ages by it alone would serve a value fetched days ago as fresh. The wall clock is right after a
restore (Lambda syncs it), so a wall-clock jump well beyond the monotonic time that passed is taken as
time that really elapsed: it is added to this clock and counted as a restore.

Small steps of the wall clock (NTP) stay below the threshold; a backward step is ignored. A false
positive only ages values early, costing a refresh. Every call checks, so a read that races the first
INVOKE after a restore is judged by real time too: two clock reads, well under a microsecond.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

# A wall-clock jump larger than the monotonic time that passed by more than this is a restore.
RESTORE_THRESHOLD = 1.0


class ElapsedClock:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 threshold: float = RESTORE_THRESHOLD) -> None:
        self._monotonic = monotonic
        self._wall = wall
        self._threshold = threshold
        self._offset = 0.0
        # (wall, monotonic) at the last call, replaced as one tuple so concurrent callers never see a mix.
        self._anchor = (wall(), monotonic())
        self._lock = threading.Lock()
        self.restores = 0  # restores seen so far
        self.skipped = 0.0  # seconds added for them

    def __call__(self) -> float:
        mono, wall = self._monotonic(), self._wall()
        anchor = self._anchor
        if (wall - anchor[0]) - (mono - anchor[1]) > self._threshold:
            with self._lock:
                # Recheck against a monotonic reading taken after the wall one (this thread may have been
                # paused between the two), and against the anchor another thread may have just moved.
                mono, anchor = self._monotonic(), self._anchor
                gap = (wall - anchor[0]) - (mono - anchor[1])
                if gap > self._threshold:
                    self._offset += gap
                    self.skipped += gap
                    self.restores += 1
                self._anchor = (wall, mono)
            return mono + self._offset
        self._anchor = (wall, mono)
        return mono + self._offset
