"""The samples of a source over the window: the series, else the start/end snapshots.

The collector samples /proc/meminfo, /proc/vmstat and
/proc/pressure/memory every tick (``series/proc/...``) and reads them
once more at the start and the end (``proc/...@start``, ``@end``). A
bundle may hold only one of the two (a source that failed every tick, or
an old bundle), so every fact that needs a source over time asks here,
and gets the same answer:

- ``samples``: the per-tick series when it has samples, else the two
  snapshots (which stand at the first and the last tick);
- ``at``: one phase (start or end): the snapshot, else the first or last
  sample of the series (a snapshot is what a table "at the end" shows);
- ``vm_delta``, ``vm_intervals``, ``vm_window``: a /proc/vmstat counter's
  change over the window and per sampling interval (``rates``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.rates import elapsed, vm_counter
from snapcollect.bundle.names import PROC_MEMINFO, PROC_PRESSURE_MEMORY, PROC_VMSTAT

# Sources sampled both per tick and as snapshots: Dataset series attribute,
# Snapshot attribute, artifact source.
SOURCES = {
    "meminfo": ("meminfo", "meminfo", PROC_MEMINFO),
    "vmstat": ("vmstat", "vmstat", PROC_VMSTAT),
    "psi": ("psi", "psi", PROC_PRESSURE_MEMORY),
}


def samples(ds: Dataset, kind: str) -> list[tuple[float, Any]]:
    """(t, parsed value) over the window: the series, else the start/end snapshots."""
    series = getattr(ds, SOURCES[kind][0])
    if series:
        return [(p.t, p.value) for p in series]
    return snapshots(ds, kind)


def snapshots(ds: Dataset, kind: str) -> list[tuple[float, Any]]:
    """(t, parsed value) of the start and end snapshots that were read."""
    snap_attr = SOURCES[kind][1]
    out = []
    for snap in (ds.start, ds.end):
        value = getattr(snap, snap_attr)
        if value is not None and snap.t is not None:
            out.append((snap.t, value))
    return out


def sources(ds: Dataset, kind: str) -> list[str]:
    """The artifact names ``samples`` reads."""
    series_attr, _, source = SOURCES[kind]
    if getattr(ds, series_attr):
        return [f"series/{source}"]
    return [f"{source}@start", f"{source}@end"]


def at(ds: Dataset, kind: str, phase: str) -> tuple[Any, str | None, float | None]:
    """``kind`` at ``phase`` (start/end): the snapshot, else the first/last sample.

    Returns (parsed value, artifact name, time); (None, None, None) when
    neither was collected.
    """
    series_attr, snap_attr, source = SOURCES[kind]
    snap = ds.start if phase == "start" else ds.end
    value = getattr(snap, snap_attr)
    if value is not None:
        return value, f"{source}@{phase}", snap.t
    series = getattr(ds, series_attr)
    if series:
        p = series[0] if phase == "start" else series[-1]
        return p.value, f"series/{source}", p.t
    return None, None, None


@dataclass(frozen=True)
class Interval:
    """One sampling interval: wall times of its ends, counter delta, length.

    ``secs`` is the uptime delta when /proc/uptime was sampled (sysstat's
    interval, ``rates.elapsed``), else the wall-clock delta.
    """

    t0: float
    t1: float
    delta: int
    secs: float = 0.0

    @property
    def seconds(self) -> float:
        return self.secs if self.secs > 0 else max(self.t1 - self.t0, 1e-9)

    @property
    def rate(self) -> float:
        return self.delta / self.seconds


def vm_delta(ds: Dataset, name: str) -> int | None:
    """Change of a /proc/vmstat counter (``rates.vm_counter`` names) over the window."""
    # A counter needs two readings: a series of one sample falls back to
    # the snapshots.
    pts = [(p.t, p.value) for p in ds.vmstat] if len(ds.vmstat) >= 2 else snapshots(ds, "vmstat")
    if len(pts) < 2:
        return None
    a, b = vm_counter(pts[0][1], name), vm_counter(pts[-1][1], name)
    if a is None or b is None:
        return None
    return max(b - a, 0)


def vm_intervals(ds: Dataset, name: str) -> list[Interval]:
    """Per-interval deltas of a counter; an interval missing the name is skipped."""
    up = {u.k: u.value for u in ds.uptime}
    out = []
    for p, q in zip(ds.vmstat, ds.vmstat[1:]):
        a, b = vm_counter(p.value, name), vm_counter(q.value, name)
        secs = elapsed(p, q, up)
        if a is None or b is None or secs <= 0:
            continue
        out.append(Interval(p.t, q.t, max(b - a, 0), secs))
    return out


def vm_window(ds: Dataset) -> tuple[float, float] | None:
    """First and last time /proc/vmstat was read (series, else snapshots)."""
    pts = samples(ds, "vmstat")
    if len(pts) >= 2 and pts[-1][0] > pts[0][0]:
        return pts[0][0], pts[-1][0]
    return None


def window(ds: Dataset) -> tuple[float, float] | None:
    """The sampling window on the bundle clock, from whatever series exists."""
    w = ds.window
    if w:
        return w
    times = [p.t for p in ds.psi] or [p.t for p in ds.procs]
    if times:
        return times[0], times[-1]
    if ds.start.t is not None and ds.end.t is not None:
        return ds.start.t, ds.end.t
    return None
