"""The shape of a growth over the window: a sustained rate, a step, or neither.

"Unevictable grew 2.0 GiB/min" was a 1.5 GiB step in one second divided
by the window: first-versus-last turns any jump into a rate. Here a
growth is judged by its samples (``(t, value)`` pairs, value in kB):

- a **step** when one interval holds most of the rises (``STEP_SHARE`` of
  the sum of every rise between two samples, so a level flapping up and
  down is not a step):
  it is reported as a step of so much at that moment, never as a rate;
- **steady** when it rises through many intervals and a straight line
  fits it (least squares from the onset of the rise to its peak, r^2 >=
  ``STEADY_R2``, at least ``MIN_INTERVALS`` intervals): its slope is the
  rate, and the figure a leak finding extrapolates;
- otherwise **irregular**: growth with no rate worth extrapolating.

The onset is the last sample still within 5% of the rise above the
first one, so a leak that starts in the middle of the window is fitted
over its own part, not flattened by the quiet part before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

STEP_SHARE = 0.5        # one interval holding half the rise or more: a step (heuristic)
STEADY_R2 = 0.8         # a line explaining 80% of the variance: a rate (heuristic)
MIN_INTERVALS = 3       # fewer intervals cannot tell a rate from two steps
ONSET_SHARE = 0.05


@dataclass(frozen=True)
class Trend:
    kind: str                   # "steady", "step", "irregular", "none" (no rise)
    first_kb: int
    peak_kb: int
    last_kb: int
    t_first: float
    t_peak: float
    rate_kb_s: float | None     # the fitted slope, for "steady" only
    r2: float | None
    fit_t0: float | None        # the span the rate was fitted over
    fit_t1: float | None
    step_kb: int                # the largest rise between two consecutive samples
    step_t0: float | None       # ... and the interval it happened in
    step_t1: float | None

    @property
    def rise_kb(self) -> int:
        return self.peak_kb - self.first_kb


def _fit(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(slope per second, r^2) of the least-squares line through ``points``."""
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    stt = sum((t - mt) ** 2 for t, _ in points)
    if stt <= 0:
        return 0.0, 0.0
    stv = sum((t - mt) * (v - mv) for t, v in points)
    svv = sum((v - mv) ** 2 for _, v in points)
    slope = stv / stt
    r2 = (stv * stv) / (stt * svv) if svv > 0 else 1.0
    return slope, r2


def trend(points: Sequence[tuple[float, int]]) -> Trend | None:
    """The shape of the rise of ``points`` (time-ordered); None with fewer than two."""
    if len(points) < 2:
        return None
    first_t, first = points[0]
    ipeak = max(range(len(points)), key=lambda i: (points[i][1], -i))
    peak_t, peak = points[ipeak]
    rise = peak - first
    step, s0, s1 = 0, None, None
    ups = 0                     # every rise of the window: a sawtooth rises often, a step once
    for (ta, a), (tb, b) in zip(points, points[1:]):
        if b > a:
            ups += b - a
        if b - a > step:
            step, s0, s1 = b - a, ta, tb
    base = dict(first_kb=first, peak_kb=peak, last_kb=points[-1][1], t_first=first_t, t_peak=peak_t,
                step_kb=step, step_t0=s0, step_t1=s1)
    if rise <= 0:
        return Trend("none", rate_kb_s=None, r2=None, fit_t0=None, fit_t1=None, **base)
    if step >= STEP_SHARE * ups:
        return Trend("step", rate_kb_s=None, r2=None, fit_t0=None, fit_t1=None, **base)
    onset = max(i for i in range(ipeak + 1) if points[i][1] <= first + ONSET_SHARE * rise)
    span = points[onset:ipeak + 1]
    if len(span) - 1 >= MIN_INTERVALS:
        slope, r2 = _fit(span)
        if slope > 0 and r2 >= STEADY_R2:
            return Trend("steady", rate_kb_s=slope, r2=r2, fit_t0=span[0][0], fit_t1=span[-1][0], **base)
    return Trend("irregular", rate_kb_s=None, r2=None, fit_t0=None, fit_t1=None, **base)
