"""Levels and runs the rules share: how long a condition held over the window.

Rules read the incident's facts from the model (``analysis.model``) and
a source's samples from ``analysis.series``; what is left here is how a
rule decides that something was *sustained*: runs of samples or of
sampling intervals satisfying a condition, and how long counts as
sustained in a window of a given length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.series import Interval, window

# How long a level must hold to count as sustained: 30 s (the systemd-oomd
# duration used throughout the catalogue), or half the window when the
# window is shorter than a minute.
SUSTAIN_S = 30.0


def min_hold_s(ds: Dataset, want: float = SUSTAIN_S) -> float:
    w = window(ds)
    if not w:
        return want
    return min(want, (w[1] - w[0]) / 2)


# -- runs -----------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """Consecutive samples for which a condition held."""

    t0: float
    t1: float
    values: tuple[float, ...]

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0


def runs(samples: Sequence[tuple[float, float | None]], pred: Callable[[float], bool]) -> list[Run]:
    """Runs of consecutive samples (t, value) whose value satisfies ``pred``."""
    out: list[Run] = []
    cur: list[tuple[float, float]] = []
    for t, v in samples:
        if v is not None and pred(v):
            cur.append((t, v))
            continue
        if cur:
            out.append(Run(cur[0][0], cur[-1][0], tuple(x for _, x in cur)))
        cur = []
    if cur:
        out.append(Run(cur[0][0], cur[-1][0], tuple(x for _, x in cur)))
    return out


def sustained(samples: Sequence[tuple[float, float | None]], pred: Callable[[float], bool],
              hold_s: float) -> Run | None:
    """The longest run that held for ``hold_s`` seconds and over two samples.

    A series of a single sample can only show a single sample; then that
    sample is the run.
    """
    valid = [s for s in samples if s[1] is not None]
    best = None
    for r in runs(samples, pred):
        long_enough = r.seconds >= hold_s and (len(r.values) >= 2 or len(valid) == 1)
        if long_enough and (best is None or r.seconds > best.seconds):
            best = r
    return best


def interval_runs(intervals: Sequence[Interval], pred: Callable[[Interval], bool]) -> list[list[Interval]]:
    out: list[list[Interval]] = []
    cur: list[Interval] = []
    for iv in intervals:
        if pred(iv):
            cur.append(iv)
            continue
        if cur:
            out.append(cur)
        cur = []
    if cur:
        out.append(cur)
    return out


def sustained_intervals(intervals: Sequence[Interval], pred: Callable[[Interval], bool],
                        hold_s: float) -> list[Interval] | None:
    """The longest run of consecutive intervals satisfying ``pred`` spanning ``hold_s``."""
    best = None
    for r in interval_runs(intervals, pred):
        span = r[-1].t1 - r[0].t0
        if span >= hold_s and (best is None or span > best[-1].t1 - best[0].t0):
            best = r
    return best


def page_kb(ds: Dataset) -> float:
    """The host's page size in kB (host/info; 4 KiB when unknown)."""
    return (ds.page_size or 4096) / 1024
