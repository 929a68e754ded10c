"""Signals the rules read: window deltas, per-interval rates, level series.

Everything here is derived from a ``Dataset`` (parsed /proc/vmstat,
/proc/meminfo, /proc/pressure/memory, the per-tick process pass and the
start/end snapshots); nothing reads raw text. Counters are turned into
deltas over the window or over each sampling interval, the way sar does
(``(cur - prev) / interval``); levels (meminfo) stay samples.

/proc/vmstat names moved across kernels; ``vm_value`` hides that:

    pgscan_kswapd 0            (4.8+; before: pgscan_kswapd_dma, _normal, ...)
    pgsteal_kswapd 0           (4.8+; before: pgsteal_kswapd_<zone>)
    allocstall_normal 0        (4.8+, node-LRU series; before: one allocstall)
    workingset_refault_file 0  (5.9+; before: workingset_refault)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.rates import elapsed, vm_counter
from snapcollect.parsers.records import Psi

# How long a level must hold to count as sustained: 30 s (the systemd-oomd
# duration used throughout the catalogue), or half the window when the
# window is shorter than a minute.
SUSTAIN_S = 30.0

_ZONES = ("dma", "dma32", "normal", "movable", "high", "device")


def _sum_prefixed(v: Mapping[str, int], prefix: str, exclude: Iterable[str] = ()) -> int | None:
    names = [n for n in v if n.startswith(prefix) and n[len(prefix):] in _ZONES and n not in exclude]
    if not names:
        return None
    return sum(v[n] for n in names)


def vm_value(v: Mapping[str, int] | None, name: str) -> int | None:
    """A /proc/vmstat counter by its current name, on any kernel (``rates.vm_counter``).

    Pseudo-names besides rates' ``pgsteal`` (kswapd + direct + khugepaged
    + proactive, never adding pgsteal_anon/_file on top: they count the
    same pages again, 5.8+): ``pgscan`` (the same sources, never
    pgscan_direct_throttle) and ``allocstall`` (all zones: per-zone counters since 4.8).
    """
    if not v:
        return None
    if name == "pgscan":
        parts = [vm_counter(v, f"pgscan_{w}") for w in ("kswapd", "direct")]
        parts += [v.get(f"pgscan_{w}") for w in ("khugepaged", "proactive")]
        parts = [p for p in parts if p is not None]
        return sum(parts) if parts else None
    found = vm_counter(v, name)
    if found is not None:
        return found
    if name == "allocstall":
        return _sum_prefixed(v, "allocstall_")        # 4.8+ per-zone names
    if name in ("workingset_refault_file", "workingset_activate_file"):
        return v.get(name.rsplit("_", 1)[0])          # pre-5.9: no anon/file split
    return None


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
    """Change of a counter over the window (first to last vmstat sample)."""
    pts = ds.vmstat
    if len(pts) >= 2:
        a, b = vm_value(pts[0].value, name), vm_value(pts[-1].value, name)
        if a is not None and b is not None:
            return max(b - a, 0)
        return None
    a, b = vm_value(ds.start.vmstat, name), vm_value(ds.end.vmstat, name)
    if a is not None and b is not None:
        return max(b - a, 0)
    return None


def vm_intervals(ds: Dataset, name: str) -> list[Interval]:
    """Per-interval deltas of a counter; an interval missing the name is skipped."""
    up = {u.k: u.value for u in ds.uptime}
    out = []
    for p, q in zip(ds.vmstat, ds.vmstat[1:]):
        a, b = vm_value(p.value, name), vm_value(q.value, name)
        secs = elapsed(p, q, up)
        if a is None or b is None or secs <= 0:
            continue
        out.append(Interval(p.t, q.t, max(b - a, 0), secs))
    return out


def vm_window(ds: Dataset) -> tuple[float, float] | None:
    if len(ds.vmstat) >= 2:
        return ds.vmstat[0].t, ds.vmstat[-1].t
    if ds.start.t is not None and ds.end.t is not None and ds.end.t > ds.start.t:
        return ds.start.t, ds.end.t
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


def min_hold_s(ds: Dataset, want: float = SUSTAIN_S) -> float:
    w = window(ds)
    if not w:
        return want
    return min(want, (w[1] - w[0]) / 2)


# -- levels ---------------------------------------------------------------


def meminfo_points(ds: Dataset) -> list[tuple[float, dict[str, int]]]:
    """Meminfo samples: the series, else the start/end snapshots."""
    if ds.meminfo:
        return [(p.t, dict(p.value)) for p in ds.meminfo]
    out = []
    for snap in (ds.start, ds.end):
        if snap.meminfo is not None and snap.t is not None:
            out.append((snap.t, dict(snap.meminfo)))
    return out


def meminfo_source(ds: Dataset) -> list[str]:
    return ["series/proc/meminfo"] if ds.meminfo else ["proc/meminfo@start", "proc/meminfo@end"]


def mem_available_kb(m: Mapping[str, int]) -> int | None:
    """MemAvailable (3.14+); older kernels: MemFree, as sar does."""
    if "MemAvailable" in m:
        return m["MemAvailable"]
    return m.get("MemFree")


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


# -- pressure -------------------------------------------------------------


def psi_points(ds: Dataset) -> list[tuple[float, Psi]]:
    if ds.psi:
        return [(p.t, p.value) for p in ds.psi]
    out = []
    for snap in (ds.start, ds.end):
        if snap.psi is not None and snap.t is not None:
            out.append((snap.t, snap.psi))
    return out


def psi_source(ds: Dataset) -> list[str]:
    return (["series/proc/pressure/memory"] if ds.psi
            else ["proc/pressure/memory@start", "proc/pressure/memory@end"])


def psi_window_share(ds: Dataset, line: str) -> tuple[float, float, float] | None:
    """(percent of wall time stalled, t0, t1) over the window, as sar's %smem/%fmem."""
    pts = psi_points(ds)
    if len(pts) < 2:
        return None
    (t0, a), (t1, b) = pts[0], pts[-1]
    la, lb = getattr(a, line), getattr(b, line)
    if la is None or lb is None or t1 <= t0:
        return None
    return max(lb.total_us - la.total_us, 0) / ((t1 - t0) * 1e6) * 100, t0, t1


# -- processes ------------------------------------------------------------


@dataclass(frozen=True)
class ProcTrack:
    """One process (pid + starttime) across the per-tick pass."""

    pid: int
    comm: str
    first_t: float
    last_t: float
    first_rss_kb: int
    last_rss_kb: int
    peak_rss_kb: int
    peak_t: float
    minflt: int          # over the samples where it was seen
    majflt: int
    samples: int
    rss: tuple[tuple[float, int], ...]


def track_processes(ds: Dataset) -> list[ProcTrack]:
    acc: dict[tuple[int, int], dict] = {}
    for p in ds.procs:
        for pid, s in p.value.items():
            key = (pid, s.starttime)
            a = acc.get(key)
            if a is None:
                acc[key] = a = {"comm": s.comm, "first": s, "first_t": p.t, "peak": s.rss_kb,
                                "peak_t": p.t, "rss": []}
            a["last"], a["last_t"], a["comm"] = s, p.t, s.comm
            a["rss"].append((p.t, s.rss_kb))
            if s.rss_kb > a["peak"]:
                a["peak"], a["peak_t"] = s.rss_kb, p.t
    out = []
    for (pid, _), a in acc.items():
        f, la = a["first"], a["last"]
        out.append(ProcTrack(pid, a["comm"], a["first_t"], a["last_t"], f.rss_kb, la.rss_kb,
                             a["peak"], a["peak_t"], max(la.minflt - f.minflt, 0),
                             max(la.majflt - f.majflt, 0), len(a["rss"]), tuple(a["rss"])))
    return out


# -- formatting -----------------------------------------------------------


def hms(t: float | None) -> str:
    """Bundle-clock time as HH:MM:SS UTC (the report's time column)."""
    if t is None:
        return "?"
    return time.strftime("%H:%M:%S", time.gmtime(t))


def human_kb(kb: float | None) -> str:
    if kb is None:
        return "?"
    for unit, div in (("GiB", 1024 ** 2), ("MiB", 1024)):
        if abs(kb) >= div:
            return f"{kb / div:.1f} {unit}"
    return f"{kb:.0f} kB"


def human_ms(us: float) -> str:
    ms = us / 1000
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def page_kb(ds: Dataset) -> float:
    return (ds.page_size or 4096) / 1024


# -- OOM kills --------------------------------------------------------------


def is_memcg_kill(k) -> bool:
    return bool(k.memcg) or (k.constraint or "") == "CONSTRAINT_MEMCG"


def oom_kills(ds: Dataset) -> list:
    """OOM kills in the window: BPF events, completed from the kernel log.

    BPF ``oom:mark_victim`` has no constraint nor memcg on this kernel; the
    kernel log's ``oom-kill:`` line has them. Kills only the log saw (no
    BPF) are added. Matched by victim pid.
    """
    from dataclasses import replace

    from snapcollect.analysis.findings.kmsg_events import oom_kills_from_kmsg

    logged = oom_kills_from_kmsg([ln for ln in ds.kmsg if not ln.before_window])
    by_pid = {k.victim_pid: k for k in logged}
    out = []
    seen = set()
    for k in ds.bpf.oom_kills:
        log = by_pid.get(k.victim_pid)
        if log is not None:
            k = replace(
                k, memcg=k.memcg if k.memcg is not None else log.memcg,
                constraint=k.constraint or log.constraint, oom_memcg=k.oom_memcg or log.oom_memcg,
                task_memcg=k.task_memcg or log.task_memcg,
                anon_rss_kb=k.anon_rss_kb if k.anon_rss_kb is not None else log.anon_rss_kb,
                trigger_comm=k.trigger_comm or log.trigger_comm,
                sources=tuple(dict.fromkeys(k.sources + log.sources)))
        out.append(k)
        seen.add(k.victim_pid)
    out += [k for k in logged if k.victim_pid not in seen]
    out.sort(key=lambda k: k.t)
    return out


def kill_label(k) -> str:
    s = f"{k.victim_comm} (pid {k.victim_pid}"
    if k.anon_rss_kb is not None:
        s += f", anon-rss {human_kb(k.anon_rss_kb)}"
    return s + ")"


# -- memory cgroups ---------------------------------------------------------


def cgroups(snap) -> dict:
    """Parsed memory cgroups of a snapshot by path (``parsers.cgroups.MemCgroup``)."""
    groups = getattr(snap, "memcgs", None)
    if groups is not None:
        return dict(groups)
    raw = getattr(snap, "cgroups", None)
    if isinstance(raw, Mapping):        # a Snapshot built without the loader
        import json

        from snapcollect.parsers.cgroups import parse_cgroups
        return dict(parse_cgroups(json.dumps(raw))["groups"])
    return {}


# The root of a hierarchy is not a group that can be "at its limit" or
# "the cgroup that reclaimed": it has no limit, and its memory.stat (v2)
# or counters (v1 with use_hierarchy) are the totals of its children.
ROOT = "/"


def cgroup_event_rises(ds: Dataset, event: str, field: str = "events") -> list[tuple]:
    """Non-root cgroups whose ``event`` counter (in ``events`` or ``stat``) rose between the snapshots."""
    a, b = cgroups(ds.start), cgroups(ds.end)
    out = []
    for path, g in b.items():
        if path == ROOT:
            continue
        prev = a.get(path)
        now, before = getattr(g, field), getattr(prev, field, None)
        # A group missing at the start has no baseline: its counter may be old.
        if prev is None or event not in now or event not in before:
            continue
        rise = now[event] - before[event]
        if rise > 0:
            out.append((g, rise))
    out.sort(key=lambda x: -x[1])
    return out


@dataclass(frozen=True)
class CgroupPressure:
    """A cgroup's memory.pressure over the window, from its ``total`` counters.

    The avg10/60/300 of a group whose tasks were killed or went idle stop
    moving, while ``total`` (microseconds stalled) still counts: the share
    of the window comes from the totals, like host PSI (``psi_window_share``).
    """

    some_pct: float
    full_pct: float | None
    some_us: int
    full_us: int | None
    window_s: float


def cgroup_pressure(ds: Dataset) -> dict[str, CgroupPressure]:
    """Per cgroup path with memory.pressure at both snapshots: stall share of the window."""
    a, b = cgroups(ds.start), cgroups(ds.end)
    if ds.start.t is None or ds.end.t is None or ds.end.t <= ds.start.t:
        return {}
    window = ds.end.t - ds.start.t
    out = {}
    for path, g in b.items():
        prev = a.get(path)
        if g.pressure is None or prev is None or prev.pressure is None:
            continue
        some = max(g.pressure.some.total_us - prev.pressure.some.total_us, 0)
        full = None
        if g.pressure.full is not None and prev.pressure.full is not None:
            full = max(g.pressure.full.total_us - prev.pressure.full.total_us, 0)
        out[path] = CgroupPressure(some_pct=100.0 * some / (window * 1e6),
                                   full_pct=None if full is None else 100.0 * full / (window * 1e6),
                                   some_us=some, full_us=full, window_s=window)
    return out
