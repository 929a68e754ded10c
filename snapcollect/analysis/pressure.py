"""Share of the window in which tasks stalled on memory (PSI, 4.20+).

/proc/pressure/memory and a cgroup's memory.pressure hold running averages
and a ``total`` of microseconds stalled::

    some avg10=0.00 avg60=0.00 avg300=0.00 total=22045
    full avg10=0.00 avg60=0.00 avg300=0.00 total=21015

The share of the window is the ``total`` delta over the window's length,
the way sar computes %smem/%fmem (sysstat rd_stats.c read_psimem, pr_stats.c
print_psimem_stats): divided by the /proc/uptime delta, sysstat's
interval, not by the wall clock. Both run at the same pace, but a wall
clock stepped by NTP during the window would give a share sar never
prints; with the uptime delta the "pressure" figure of a finding is the
%fmem of the sar -q table's Average: row. Without /proc/uptime
readings the wall clock is used.
"""

from __future__ import annotations

from dataclasses import dataclass

from snapcollect.analysis import series
from snapcollect.analysis.cgroups import cgroups
from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.rates import window_seconds
from snapcollect.parsers.records import Psi, PsiLine


def stall_pct(prev: PsiLine | None, cur: PsiLine | None, seconds: float) -> float | None:
    """Percent of ``seconds`` stalled between two readings of one PSI line (sar's %smem/%fmem).

    The totals never go back on a running kernel; a bundle that says
    otherwise gives 0, not a negative share.
    """
    if prev is None or cur is None or seconds <= 0:
        return None
    return 100.0 * max(cur.total_us - prev.total_us, 0) / (seconds * 1e6)


@dataclass(frozen=True)
class WindowShare:
    """Percent of the window stalled, over [t0, t1] (epoch s), ``seconds`` long by uptime."""

    pct: float
    t0: float
    t1: float
    seconds: float


def snapshot_seconds(ds: Dataset) -> float | None:
    """Length of the window between the start and end snapshots: uptime delta, else wall clock."""
    a, b = ds.start, ds.end
    if a.uptime_s is not None and b.uptime_s is not None and b.uptime_s > a.uptime_s:
        return b.uptime_s - a.uptime_s
    if a.t is not None and b.t is not None and b.t > a.t:
        return b.t - a.t
    return None


def window_share(ds: Dataset, line: str) -> WindowShare | None:
    """Host PSI ``line`` ("some"/"full") as a share of the window, as sar's %smem/%fmem Average."""
    if ds.psi:
        if len(ds.psi) < 2:
            return None
        first, last = ds.psi[0], ds.psi[-1]
        seconds = window_seconds(ds.psi, ds.uptime)
        t0, a, t1, b = first.t, first.value, last.t, last.value
    else:
        pts = series.snapshots(ds, "psi")
        if len(pts) < 2:
            return None
        (t0, a), (t1, b) = pts
        seconds = snapshot_seconds(ds) or 0.0
    pct = stall_pct(getattr(a, line), getattr(b, line), seconds)
    return None if pct is None else WindowShare(pct, t0, t1, seconds)


def points(ds: Dataset) -> list[tuple[float, Psi]]:
    """Host PSI samples: the series, else the snapshots."""
    return series.samples(ds, "psi")


@dataclass(frozen=True)
class CgroupPressure:
    """A cgroup's memory.pressure over the window, from its ``total`` counters.

    The avg10/60/300 of a group whose tasks were killed or went idle stop
    moving, while ``total`` still counts: the share of the window comes
    from the totals, like host PSI.
    """

    some_pct: float
    full_pct: float | None
    some_us: int
    full_us: int | None
    window_s: float


def cgroup_pressure(ds: Dataset) -> dict[str, CgroupPressure]:
    """Per cgroup path with memory.pressure at both snapshots: stall share of the window."""
    a, b = cgroups(ds.start), cgroups(ds.end)
    window = snapshot_seconds(ds)
    if not window:
        return {}
    out = {}
    for path, g in b.items():
        prev = a.get(path)
        if g.pressure is None or prev is None or prev.pressure is None:
            continue
        some = max(g.pressure.some.total_us - prev.pressure.some.total_us, 0)
        full = None
        if g.pressure.full is not None and prev.pressure.full is not None:
            full = max(g.pressure.full.total_us - prev.pressure.full.total_us, 0)
        out[path] = CgroupPressure(some_pct=stall_pct(prev.pressure.some, g.pressure.some, window),
                                   full_pct=stall_pct(prev.pressure.full, g.pressure.full, window),
                                   some_us=some, full_us=full, window_s=window)
    return out
