"""The collector's clock: one deadline, and a fixed tick schedule.

Both run on CLOCK_MONOTONIC (``time.monotonic``), which NTP steps cannot
move. Tick ``k`` is due at ``start + k * interval``: computed from the
start every time rather than by adding intervals, so no drift accumulates.
A tick that overruns its slot makes the schedule skip to the next free
slot; the skipped slots are counted, never made up by sampling late.
"""

from __future__ import annotations

import math
import time


def now() -> float:
    return time.monotonic()


class Deadline:
    """A point on the monotonic clock that bounds a piece of work."""

    def __init__(self, at_mono: float):
        self.at = at_mono

    @classmethod
    def after(cls, seconds: float) -> "Deadline":
        return cls(now() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.at - now())

    def expired(self) -> bool:
        return now() >= self.at

    def sooner(self, seconds: float) -> "Deadline":
        """This deadline or ``seconds`` from now, whichever comes first."""
        return Deadline(min(self.at, now() + seconds))


class TickSchedule:
    """Slots ``start + k * interval`` for k = 0 .. last_k."""

    # Float error in start + k * interval must not drop the last slot.
    _EPS = 1e-6

    def __init__(self, start_mono: float, interval_s: float, duration_s: float):
        if interval_s <= 0 or duration_s < 0:
            raise ValueError("interval must be > 0 and duration >= 0")
        self.start = start_mono
        self.interval = interval_s
        self.duration = duration_s
        self.last_k = int(math.floor(duration_s / interval_s + self._EPS))
        self.skipped = 0

    def slot(self, k: int) -> float:
        return self.start + k * self.interval

    @property
    def end(self) -> float:
        return self.slot(self.last_k)

    def shorten(self, end_mono: float) -> None:
        """Drop the slots after ``end_mono`` (the run must end earlier)."""
        if end_mono < self.end:
            self.last_k = max(0, int(math.floor((end_mono - self.start) / self.interval + self._EPS)))

    def next_after(self, k_done: int, now_mono: float) -> int | None:
        """The slot to take after slot ``k_done`` finished at ``now_mono``.

        Slots already in the past are skipped and counted. None when the
        schedule is over.
        """
        k = k_done + 1
        if now_mono > self.slot(k):
            late = int(math.floor((now_mono - self.start) / self.interval)) + 1
            self.skipped += min(late, self.last_k + 1) - k
            k = late
        return k if k <= self.last_k else None
