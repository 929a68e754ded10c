"""Memory cgroups over time: usage against the limit, what fills a group, its refaults and reclaim.

Input: the ``series/cgroups/memory`` samples (else the start and end
snapshots), parsed by ``parsers.cgroups`` into ``MemCgroup``. The figures
of memory.stat that explain usage, by hierarchy (both hierarchical, as
usage is)::

    v2 memory.stat: anon 512000  file 1024  shmem 0  kernel 4096 (5.18+; before:
                    slab + kernel_stack + pagetables + percpu + sock)
                    workingset_refault_file 10 (5.9+; before: workingset_refault)
                    pgscan 32  pgsteal 30
    v1 memory.stat: total_rss 512000  total_cache 1024  total_shmem 0
                    total_workingset_refault_file 10 (no pgscan/pgsteal in v1)

The effective limit is v2 memory.max, or memory.high when that is lower
(tasks are throttled there); v1 memory.limit_in_bytes. v1 charges kernel
memory to usage, so "kernel and other" is usage - rss - cache there.

Reclaim at a cgroup's limit is not in /proc/vmstat's pgscan_kswapd or
pgscan_direct (what sar -B prints): mm/vmscan.c counts those only when
``!cgroup_reclaim(sc)``, but pgscan_anon/pgscan_file and
pgsteal_anon/pgsteal_file (5.8+) count every reclaim. Their difference is
the memory-cgroup reclaim of the whole host (``memcg_reclaim``, over
``analysis.sar.cgroup_reclaim``, the figure sar -B's section prints), the
only measure of it on v1, whose memory.stat has no pgscan. Checked on 6.18: a
cat of a 200 MiB file in a 64 MiB v1 group raised pgscan_file and
pgsteal_file by 137,728 and pgscan_kswapd/direct by 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from snapcollect.analysis import series
from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.rates import window_seconds
from snapcollect.analysis.sar import cgroup_reclaim
from snapcollect.bundle.names import (CGROUPS_MEMORY, SERIES_CGROUPS_MEMORY, SERIES_PROC_MEMINFO,
                                      SERIES_PROC_VMSTAT, end_of, start_of)
from snapcollect.parsers.records import MemCgroup

ROOT = "/"
NEAR_PCT = 90.0
AT_PCT = 99.0
# Counters of memory.events (v2) and the v1 counters the parser puts there
# that say the limit was hit or the OOM killer ran.
LIMIT_EVENTS = ("max", "oom", "oom_kill", "oom_group_kill", "failcnt", "memsw_failcnt")


@dataclass(frozen=True)
class Fill:
    """What a group's usage is made of at one moment, bytes (None: not in memory.stat)."""

    anon: int | None
    file: int | None            # page cache without shmem
    shmem: int | None
    kernel: int | None          # v2 kernel memory; v1 usage - rss - cache (kernel and other)

    @property
    def unreclaimable(self) -> int:
        """What reclaim cannot drop without swap: anon, shmem, kernel."""
        return (self.anon or 0) + (self.shmem or 0) + (self.kernel or 0)

    def largest(self) -> str:
        parts = {"anon": self.anon or 0, "file cache": self.file or 0, "shmem": self.shmem or 0,
                 "kernel": self.kernel or 0}
        return max(parts, key=lambda k: parts[k])


@dataclass(frozen=True)
class Sample:
    t: float
    usage_bytes: int | None
    limit_bytes: int | None     # effective limit at that moment; None: none
    file_bytes: int | None

    @property
    def pct(self) -> float | None:
        if self.usage_bytes is None or not self.limit_bytes:
            return None
        return 100.0 * self.usage_bytes / self.limit_bytes


@dataclass(frozen=True)
class CgroupSeries:
    """One memory cgroup over the window."""

    path: str
    version: int
    samples: tuple[Sample, ...]
    source: tuple[str, ...]                # the artifacts the figures come from
    covered_s: float                       # first to last sample
    at_near_s: float                       # time at >= NEAR_PCT of the limit
    at_limit_s: float                      # time at >= AT_PCT of the limit
    worst: Sample | None                   # the sample closest to the limit (else the largest)
    fill: Fill | None                      # at the worst sample
    refaults_file: int | None              # pages refaulted over the window
    refaults_anon: int | None
    scanned: int | None                    # v2 memory.stat pgscan over the window (v1: None)
    stolen: int | None
    events: dict[str, int]                 # LIMIT_EVENTS that rose, by how much
    file_avg_bytes: float | None           # the group's page cache over the window, on average
    tasks: tuple[int, ...] = ()            # its own and its followed descendants' pids, first seen first
    own_tasks: tuple[int, ...] = field(default=())
    # Every task it held (its descendants' too) was the collector's: the
    # run's own group, which no finding is about.
    collector_only: bool = False

    @property
    def limit_bytes(self) -> int | None:
        return self.worst.limit_bytes if self.worst is not None else None

    @property
    def peak_pct(self) -> float | None:
        return self.worst.pct if self.worst is not None else None

    @property
    def timed(self) -> bool:
        """Whether time at the limit was measured: only the series samples the group
        through the window; two snapshots give rates, not how long it was held."""
        return self.covered_s > 0 and self.source == (SERIES_CGROUPS_MEMORY,)

    def rate(self, n: int | None) -> float | None:
        """Per second over the series, of a window count."""
        return None if n is None or self.covered_s <= 0 else n / self.covered_s


def effective_limit(g: MemCgroup) -> int | None:
    lims = [x for x in (g.limit_bytes, g.high_bytes if g.version == 2 else None) if x]
    return min(lims) if lims else None


def _stat(g: MemCgroup, name: str) -> int | None:
    if g.version == 1:
        v = g.stat.get("total_" + name)
        return v if v is not None else g.stat.get(name)
    return g.stat.get(name)


def fill_of(g: MemCgroup) -> Fill | None:
    s = g.stat
    if not s:
        return None
    if g.version == 2:
        kernel = s.get("kernel")
        if kernel is None:
            parts = [s.get(k) for k in ("slab", "kernel_stack", "pagetables", "percpu", "sock")]
            if parts[0] is None:
                parts[0] = (s.get("slab_reclaimable") or 0) + (s.get("slab_unreclaimable") or 0) or None
            kernel = sum(p for p in parts if p) if any(p is not None for p in parts) else None
        file, shmem = s.get("file"), s.get("shmem")
        if file is not None and shmem is not None:
            file = max(0, file - shmem)      # v2 "file" includes shmem
        return Fill(anon=s.get("anon"), file=file, shmem=shmem, kernel=kernel)
    rss, cache, shmem = _stat(g, "rss"), _stat(g, "cache"), _stat(g, "shmem")
    file = max(0, cache - (shmem or 0)) if cache is not None else None
    other = None
    if g.usage_bytes is not None and rss is not None and cache is not None:
        other = max(0, g.usage_bytes - rss - cache)
    return Fill(anon=rss, file=file, shmem=shmem, kernel=other)


def _file_bytes(g: MemCgroup) -> int | None:
    f = fill_of(g)
    return None if f is None else f.file


def _refault(g: MemCgroup, kind: str) -> int | None:
    v = _stat(g, f"workingset_refault_{kind}")
    if v is None and kind == "file" and g.version == 2:
        v = g.stat.get("workingset_refault")      # 4.x-5.8: file only
    return v


def _rise(values: list[int | None]) -> int | None:
    """A counter's rise over the samples, resets (a group made again) not counted back."""
    got = [v for v in values if v is not None]
    if len(got) < 2:
        return None
    return sum(max(0, b - a) for a, b in zip(got, got[1:]))


def samples(ds: Dataset) -> tuple[list[tuple[float, dict[str, MemCgroup]]], tuple[str, ...]]:
    """The groups at each sample: the series, else the start and end snapshots."""
    if ds.memcgs:
        return [(p.t, p.value) for p in ds.memcgs], (SERIES_CGROUPS_MEMORY,)
    out = []
    for snap, phase in ((ds.start, "start"), (ds.end, "end")):
        if snap.memcgs and snap.t is not None:
            out.append((snap.t, snap.memcgs))
    return out, (start_of(CGROUPS_MEMORY), end_of(CGROUPS_MEMORY)) if out else ()


def _counter_readings(ds: Dataset, path: str, seq: list[tuple[float, MemCgroup]],
                      source: tuple[str, ...]) -> list[MemCgroup]:
    """The readings a group's counters (events, refaults, reclaim) rise over.

    The series reads a group only once it is chosen (re-chosen every few
    reads) and, on a slow host, only when a tick leaves it time: a group
    that filled and was OOM-killed before its first series read enters the
    series with the kill counted already, and its rise over the series
    alone would be 0. The start and end snapshots read every group and
    bracket the series; counters only go up (a reset is not a rise, see
    _rise), so the rise over snapshot + series + snapshot is the window's."""
    groups = [g for _t, g in seq]
    if source != (SERIES_CGROUPS_MEMORY,):
        return groups
    before = (ds.start.memcgs or {}).get(path) if ds.start.t is not None and ds.start.t < seq[0][0] else None
    after = (ds.end.memcgs or {}).get(path) if ds.end.t is not None and ds.end.t > seq[-1][0] else None
    return ([before] if before is not None else []) + groups + ([after] if after is not None else [])


def _descendants(path: str, paths) -> list[str]:
    pre = path.rstrip("/") + "/"
    return [p for p in paths if p.startswith(pre)]


def cgroup_series(ds: Dataset) -> dict[str, CgroupSeries]:
    """Every followed group over the window, by path."""
    pts, source = samples(ds)
    by_path: dict[str, list[tuple[float, MemCgroup]]] = {}
    for t, groups in pts:
        for path, g in groups.items():
            by_path.setdefault(path, []).append((t, g))
    own: dict[str, list[int]] = {}
    ours: set[str] = set()
    for path, seq in by_path.items():
        seen: dict[int, None] = {}
        for _t, g in seq:
            for pid in g.tasks:
                if pid in ds.collector_pids:          # never named as a group's task
                    ours.add(path)
                else:
                    seen.setdefault(pid, None)
        own[path] = list(seen)
    out = {}
    for path, seq in by_path.items():
        seq.sort(key=lambda x: x[0])
        smp = tuple(Sample(t, g.usage_bytes, effective_limit(g), _file_bytes(g)) for t, g in seq)
        covered = smp[-1].t - smp[0].t if len(smp) > 1 else 0.0
        near = at = 0.0
        for a, b in zip(smp, smp[1:]):
            # Each sample stands for the time until the next one.
            if a.pct is not None and a.pct >= NEAR_PCT:
                near += b.t - a.t
            if a.pct is not None and a.pct >= AT_PCT:
                at += b.t - a.t
        with_pct = [s for s in smp if s.pct is not None]
        if with_pct:
            # The fullest sample, the latest of those within half a point of it: a group
            # held at its limit sits at 99.x% in every sample, and what fills it is best
            # told by the last of them (an early one may catch a workload still starting).
            top = max(s.pct for s in with_pct)
            worst = max((s for s in with_pct if s.pct >= top - 0.5), key=lambda s: s.t)
        else:
            worst = max(smp, key=lambda s: (s.usage_bytes or 0, s.t))
        worst_g = next(g for t, g in seq if t == worst.t)
        groups = _counter_readings(ds, path, seq, source)
        events = {}
        for e in LIMIT_EVENTS:
            r = _rise([g.events.get(e) for g in groups])
            if r:
                events[e] = r
        files = [s.file_bytes for s in smp if s.file_bytes is not None]
        tasks = dict.fromkeys(own[path])
        for d in _descendants(path, by_path):
            tasks.update(dict.fromkeys(own[d]))
        out[path] = CgroupSeries(
            path=path, version=worst_g.version, samples=smp, source=source, covered_s=covered,
            at_near_s=near, at_limit_s=at, worst=worst, fill=fill_of(worst_g),
            refaults_file=_rise([_refault(g, "file") for g in groups]),
            refaults_anon=_rise([_refault(g, "anon") for g in groups]),
            scanned=_rise([g.stat.get("pgscan") for g in groups]) if worst_g.version == 2 else None,
            stolen=_rise([g.stat.get("pgsteal") for g in groups]) if worst_g.version == 2 else None,
            events=events, file_avg_bytes=sum(files) / len(files) if files else None,
            tasks=tuple(tasks) if path != ROOT else (), own_tasks=tuple(own[path]),
            collector_only=path != ROOT and not tasks and any(within(p, path) for p in ours))
    return out


def task_cgroups(groups: dict[str, CgroupSeries]) -> dict[int, str]:
    """pid -> the deepest followed group listing it in cgroup.procs."""
    out: dict[int, str] = {}
    for path in sorted(groups, key=lambda p: p.count("/")):
        for pid in groups[path].own_tasks:
            out[pid] = path
    return out


@dataclass(frozen=True)
class MemcgReclaim:
    """Reclaim at cgroup limits, host-wide, from /proc/vmstat (see the module docstring)."""

    scanned: int
    stolen: int
    seconds: float
    scanned_per_s: float                   # sar.cgroup_reclaim: what the sar -B section says
    stolen_per_s: float
    peak_stolen_per_s: float               # the busiest interval


_GLOBAL_STEAL = ("pgsteal_kswapd", "pgsteal_direct", "pgsteal_khugepaged", "pgsteal_proactive")


def memcg_reclaim(ds: Dataset) -> MemcgReclaim | None:
    """Pages scanned and stolen by memory-cgroup reclaim over the window, or None (before 5.8)."""
    rates = cgroup_reclaim(ds)
    if rates is None:
        return None
    span = window_seconds(ds.vmstat, ds.uptime)
    peak = 0.0
    for p, q in zip(ds.vmstat, ds.vmstat[1:]):
        dt = q.t - p.t
        if dt <= 0:
            continue
        d = {k: q.value.get(k, 0) - p.value.get(k, 0) for k in ("pgsteal_anon", "pgsteal_file") + _GLOBAL_STEAL}
        peak = max(peak, max(0, d["pgsteal_anon"] + d["pgsteal_file"] - sum(d[k] for k in _GLOBAL_STEAL)) / dt)
    return MemcgReclaim(scanned=round(rates[0] * span), stolen=round(rates[1] * span), seconds=span,
                        scanned_per_s=rates[0], stolen_per_s=rates[1], peak_stolen_per_s=peak)


# Page cache thrashing: the file pages that came back from disk over the
# window amount to the whole cache at least once (the cache turned over
# with data it had just evicted), at least MIN_REFAULT_BYTES of them.
# Refaults count only pages whose shadow entry was still there, i.e.
# pages evicted recently enough that a bigger cache would have kept them
# (mm/workingset.c); a larger-than-cache file read in a loop refaults at
# every pass without ever being activated.
TURNOVER = 1.0
MIN_REFAULT_BYTES = 64 << 20
REFAULT_STEAL_PCT = 50.0


@dataclass(frozen=True)
class Thrashing:
    where: str                             # a cgroup path, or "host"
    refaults: int                          # file pages refaulted over the window
    refault_bytes: int
    cache_bytes: float                     # the file cache, on average over the window
    turnover: float                        # refault_bytes / cache_bytes
    stolen: int | None                     # file pages reclaimed (steal), when known
    refault_steal_pct: float | None
    seconds: float
    source: tuple[str, ...]

    @property
    def refault_bytes_per_s(self) -> float:
        return self.refault_bytes / self.seconds if self.seconds > 0 else 0.0


def _thrashing(where, refaults, cache, stolen, page, seconds, source) -> Thrashing | None:
    if refaults is None or not cache or cache <= 0:
        return None
    rb = refaults * page
    pct = 100.0 * refaults / stolen if stolen else None
    if rb < MIN_REFAULT_BYTES or rb / cache < TURNOVER:
        return None
    if pct is not None and pct < REFAULT_STEAL_PCT:
        return None
    return Thrashing(where, refaults, rb, cache, rb / cache, stolen, pct, seconds, source)


def thrashing(ds: Dataset, groups: dict[str, CgroupSeries]) -> list[Thrashing]:
    """Where the page cache thrashes: each non-root group, then the host; most refaulted first."""
    out = []
    page = ds.page_size
    for path, g in groups.items():
        if path == ROOT:
            continue
        th = _thrashing(path, g.refaults_file, g.file_avg_bytes, g.stolen, page, g.covered_s, g.source)
        if th is not None:
            out.append(th)
    # A parent's counters hold its children's: name the child when it has
    # most of the parent's refaults.
    out = [th for th in out if not any(o.where != th.where and within(o.where, th.where)
                                         and o.refaults >= 0.8 * th.refaults for o in out)]
    out.sort(key=lambda x: (-x.refaults, x.where))
    pts = series.samples(ds, "meminfo")
    caches = [(m.get("Active(file)") or 0) + (m.get("Inactive(file)") or 0) for _t, m in pts
              if "Active(file)" in m or "Inactive(file)" in m]
    ref = series.vm_delta(ds, "workingset_refault_file")
    if ref is None:
        ref = series.vm_delta(ds, "workingset_refault")
    stolen = series.vm_delta(ds, "pgsteal_file")
    win = series.vm_window(ds)
    host = _thrashing("host", ref, sum(caches) * 1024 / len(caches) if caches else None, stolen, page,
                      (win[1] - win[0]) if win else 0.0, (SERIES_PROC_VMSTAT, SERIES_PROC_MEMINFO))
    if host is not None:
        out.append(host)
    return out


@dataclass(frozen=True)
class GroupStalls:
    """The BPF reclaim stalls of the tasks of one followed cgroup (None: tasks in no followed group)."""

    path: str | None
    stalls: tuple                          # ReclaimStall records
    total_us: float
    max_us: float
    pids: tuple[int, ...]


def stalls_by_cgroup(stalls, task_cgroup: dict[int, str]) -> tuple[GroupStalls, ...]:
    """Reclaim stalls grouped by the cgroup of the stalling task, most stalled first.

    The memcg reclaim tracepoints carry no cgroup id; a task's group comes
    from the cgroup.procs the series read (the deepest group listing it).
    """
    by: dict[str | None, list] = {}
    for s in stalls:
        by.setdefault(task_cgroup.get(s.pid), []).append(s)
    out = [GroupStalls(path, tuple(ss), sum(s.latency_us for s in ss), max(s.latency_us for s in ss),
                       tuple(dict.fromkeys(s.pid for s in ss))) for path, ss in by.items()]
    out.sort(key=lambda g: (-g.total_us, g.path or ""))
    return tuple(out)


def within(path: str, group: str) -> bool:
    """Is ``path`` the cgroup ``group`` or one of its descendants?"""
    return path == group or path.startswith(group.rstrip("/") + "/")
