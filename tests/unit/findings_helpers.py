"""Small hand-built Datasets for the findings rules.

The baseline is a quiet host: the real /proc/meminfo, /proc/vmstat,
slabinfo, zoneinfo, buddyinfo, /proc/sys/vm and cgroup v1 captures of
tests/fixtures/kernel-6.18 (kernel 6.18, 24 GiB, idle), held constant over
the window (so every counter's delta is 0), PSI at zero, and the real
process list of procs-1. A test changes only what its rule reads:

    ds = build(vmstat={"pswpin": ramp(100), "pswpout": ramp(100)})

A value is a constant, or a function of the tick index k returning the
absolute value at that tick (``ramp`` makes a counter rising by a fixed
amount per tick).
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Union

from snapcollect.analysis.dataset import Dataset, Snapshot
from snapcollect.parsers.buddyinfo import parse_buddyinfo
from snapcollect.parsers.cgroups import parse_cgroups
from snapcollect.parsers.meminfo import parse_meminfo
from snapcollect.parsers.procs import parse_procs
from snapcollect.parsers.records import (BpfData, CompactionStall, KmsgLine, OomKill, Point, ProcSample,
                                         Psi, PsiLine, ReclaimStall)
from snapcollect.parsers.slabinfo import parse_slabinfo
from snapcollect.parsers.sysctl import parse_name_values
from snapcollect.parsers.vmstat import parse_vmstat
from snapcollect.parsers.zoneinfo import parse_zoneinfo

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "kernel-6.18")
T0 = 1_795_314_000.0          # the window's first tick, epoch seconds
GIB_KB = 1024 * 1024


def fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as fh:
        return fh.read()


BASE_MEMINFO = parse_meminfo(fixture("meminfo"))
BASE_VMSTAT = parse_vmstat(fixture("vmstat"))
BASE_SLABINFO = parse_slabinfo(fixture("slabinfo"))
BASE_ZONEINFO = parse_zoneinfo(fixture("zoneinfo"))
BASE_BUDDYINFO = parse_buddyinfo(fixture("buddyinfo"))
BASE_SYSVM = parse_name_values(fixture("sys-vm"))
BASE_CGROUPS_RAW = json.loads(fixture("cgroups-v1.json"))
# The capture's test group sat at its 64 MiB limit; the quiet baseline gives
# it room (1 GiB), so only what a test sets up is near a limit.
BASE_CGROUPS_RAW["groups"]["/snapfix"]["memory.limit_in_bytes"] = f"{1 << 30}\n"
BASE_PROCS = parse_procs(fixture("procs-1"))
MEMTOTAL = BASE_MEMINFO["MemTotal"]

Value = Union[int, float, Callable[[int], Any]]


def ramp(per_tick: float, start: int = 0, ticks: range | None = None) -> Callable[[int], int]:
    """A counter rising by ``per_tick`` at every tick (only within ``ticks`` when given)."""
    def f(k: int) -> int:
        if ticks is None:
            return int(start + per_tick * k)
        return int(start + per_tick * sum(1 for j in range(1, k + 1) if j in ticks))
    return f


def _at(v: Value, k: int):
    return v(k) if callable(v) else v


def psi(some_avg10: float = 0.0, full_avg10: float | None = 0.0, some_total: int = 0,
        full_total: int = 0) -> Psi:
    line = lambda a, t: PsiLine(a, a, a, t)  # noqa: E731
    return Psi(line(some_avg10, some_total), None if full_avg10 is None else line(full_avg10, full_total))


def psi_ramp(some_pct: float = 0.0, full_pct: float = 0.0, some_avg10: Value = None,
             full_avg10: Value = None, interval: float = 1.0, no_full: bool = False):
    """PSI whose totals grow by the given share of each interval."""
    def f(k: int) -> Psi:
        sa = _at(some_avg10, k) if some_avg10 is not None else some_pct
        fa = _at(full_avg10, k) if full_avg10 is not None else full_pct
        return psi(sa, None if no_full else fa, int(k * interval * 1e6 * some_pct / 100),
                   int(k * interval * 1e6 * full_pct / 100))
    return f


def proc(pid: int, comm: str, rss_kb: int, majflt: int = 0, minflt: int = 0,
         swap_kb: int | None = None, starttime: int = 1000) -> ProcSample:
    return ProcSample(pid=pid, comm=comm, state="S", ppid=1, minflt=minflt, majflt=majflt,
                      vsize_kb=rss_kb * 2, rss_kb=rss_kb, uid=0, swap_kb=swap_kb, starttime=starttime)


def kmsg(offset_s: float, text: str, before_window: bool = False, seq: int = 0) -> KmsgLine:
    return KmsgLine(seq=seq, ts_us=int(offset_s * 1e6), t=T0 + offset_s, prio=3, text=text,
                    before_window=before_window)


def build(n: int = 31, interval: float = 1.0, *, vmstat: dict[str, Value] | None = None,
          meminfo: dict[str, Value] | None = None, psi_at: Callable[[int], Psi] | None = None,
          procs: Callable[[int], dict[int, ProcSample]] | None = None,
          kmsg_lines: list[KmsgLine] | None = None, bpf: BpfData | None = None,
          start: dict[str, Any] | None = None, end: dict[str, Any] | None = None,
          missing: dict[str, tuple[str, str | None]] | None = None,
          drop: tuple[str, ...] = (), numa: Callable[[int], dict[int, dict[str, int]]] | None = None,
          page_size: int = 4096, memcgs: Callable[[int], dict[str, Any]] | None = None,
          deepdive: list | None = None, delays: list | str | None = "quiet") -> Dataset:
    """A Dataset of ``n`` ticks ``interval`` seconds apart.

    ``drop`` removes inputs as an unprivileged or old-kernel run would:
    "vmstat", "meminfo", "psi", "procs", "numa", "kmsg", "slabinfo",
    "zoneinfo", "buddyinfo", "cgroups", "sysvm" (then list them in
    ``missing`` to give a reason). ``memcgs(k)`` gives the followed
    cgroups at tick k (the ``series/cgroups/memory`` series; its first and
    last ticks are also the snapshots' groups). ``deepdive``: the --pid
    deep dive's processes (none by default: a run without --pid).
    ``delays``: the delay accounting reads (``delay/taskstats``); by default
    every process reads zero waits with accounting already on; None: a
    bundle without them.
    """
    vmstat = vmstat or {}
    meminfo = meminfo or {}
    times = [T0 + k * interval for k in range(n)]

    def vm(k):
        v = dict(BASE_VMSTAT)
        v.update({name: _at(x, k) for name, x in vmstat.items() if _at(x, k) is not None})
        for name, x in vmstat.items():
            if _at(x, k) is None:
                v.pop(name, None)
        return v

    def mem(k):
        m = dict(BASE_MEMINFO)
        for name, x in meminfo.items():
            val = _at(x, k)
            if val is None:
                m.pop(name, None)
            else:
                m[name] = val
        return m

    psi_at = psi_at or (lambda k: psi())
    procs = procs or (lambda k: BASE_PROCS)
    numa = numa or (lambda k: {0: {"numa_hit": 1_000_000, "numa_miss": 0, "numa_foreign": 0}})
    ds = Dataset(manifest={"artifacts": [{"name": "kmsg", "status": "ok"}]}, host={"page_size": page_size},
                 interval_s=interval, page_size=page_size, start=Snapshot(), end=Snapshot(),
                 missing=dict(missing or {}))
    ds.uptime = [Point(k, times[k], 1000.0 + k * interval) for k in range(n)]
    if "vmstat" not in drop:
        ds.vmstat = [Point(k, times[k], vm(k)) for k in range(n)]
    if "meminfo" not in drop:
        ds.meminfo = [Point(k, times[k], mem(k)) for k in range(n)]
    if "psi" not in drop:
        ds.psi = [Point(k, times[k], psi_at(k)) for k in range(n)]
    if "procs" not in drop:
        ds.procs = [Point(k, times[k], procs(k)) for k in range(n)]
    if "numa" not in drop:
        ds.numa = [Point(k, times[k], numa(k)) for k in range(n)]
    if "kmsg" in drop:
        ds.manifest = {"artifacts": []}
    else:
        ds.kmsg = list(kmsg_lines or [])
    ds.bpf = bpf or BpfData()
    ds.deepdive = list(deepdive or [])
    if delays == "quiet":
        ds.delays = delay_reads(ds) if ds.procs else []
        ds.manifest = dict(ds.manifest, delayacct={"state": "already on"})
    elif delays is not None:
        ds.delays = list(delays)
        ds.manifest = dict(ds.manifest, delayacct={"state": "already on"})
    series_of = memcgs
    if series_of is not None:
        ds.memcgs = [Point(k, times[k], series_of(k)) for k in range(n)]
    memcgs = parse_cgroups(json.dumps(BASE_CGROUPS_RAW))["groups"]
    for phase, k, over in (("start", 0, start or {}), ("end", n - 1, end or {})):
        snap = Snapshot(
            t=times[k],
            meminfo=None if "meminfo" in drop else mem(k),
            vmstat=None if "vmstat" in drop else vm(k),
            psi=None if "psi" in drop else psi_at(k),
            slabinfo=None if "slabinfo" in drop else list(BASE_SLABINFO),
            zoneinfo=None if "zoneinfo" in drop else BASE_ZONEINFO,
            buddyinfo=None if "buddyinfo" in drop else BASE_BUDDYINFO,
            sysvm=None if "sysvm" in drop else dict(BASE_SYSVM),
            memcgs=None if "cgroups" in drop else dict(series_of(k) if series_of else memcgs),
            cgroups=None if "cgroups" in drop else BASE_CGROUPS_RAW,
            numastat=None if "numa" in drop else numa(k),
        )
        for key, value in over.items():
            setattr(snap, key, value)
        setattr(ds, phase, snap)
    return ds


def memcg(path: str, usage: int, limit: int | None, **events: int):
    """A parsed v1 memory cgroup record with the given counters."""
    from snapcollect.parsers.records import MemCgroup
    return MemCgroup(path=path, version=1, usage_bytes=usage, limit_bytes=limit, events=dict(events))


def oom_kill(offset_s: float, pid: int, comm: str, memcg: bool | None = True, **kw) -> OomKill:
    return OomKill(t=T0 + offset_s, victim_pid=pid, victim_comm=comm, memcg=memcg,
                   sources=("bpf/oom_kill",), **kw)


def stall(offset_s: float, pid: int, comm: str, latency_ms: float, kind: str = "direct") -> ReclaimStall:
    return ReclaimStall(t=T0 + offset_s, latency_us=latency_ms * 1000, pid=pid, comm=comm, kind=kind,
                        order=0, gfp_flags="GFP_HIGHUSER_MOVABLE", nr_reclaimed=32)


def compaction(offset_s: float, pid: int, comm: str, latency_ms: float) -> CompactionStall:
    return CompactionStall(t=T0 + offset_s, latency_us=latency_ms * 1000, pid=pid, comm=comm,
                           status="COMPACT_COMPLETE")


def bpf(**kw) -> BpfData:
    """BpfData with every collector reported ok, and the given events."""
    b = BpfData(available={"bpf/oom_kill": ("ok", None), "bpf/reclaim": ("ok", None),
                           "bpf/compaction": ("ok", None), "bpf/fault_files": ("ok", None),
                           "bpf/shrinkers": ("ok", None), "bpf/shrinker_slow": ("ok", None),
                           "bpf/kswapd_runs": ("ok", None), "bpf/migration": ("ok", None)})
    for k, v in kw.items():
        setattr(b, k, v)
    return b


def fault_process(pid: int = 4242, comm: str = "app", swapins: int = 0, code: int = 0, file_major: int = 0,
                  hugetlb: int = 0, code_path: str = "/usr/bin/app"):
    """One process of bpf/fault_files: ``swapins`` on [heap], ``code`` major faults in its executable,
    ``file_major`` in a data file, ``hugetlb`` sampled faults in a hugetlbfs file."""
    from snapcollect.parsers.records import FaultMapping, FaultProcess

    maps = []
    if swapins:
        maps.append(FaultMapping("[heap]", "anon", False, 128 * 10, swapins, 0))
    if code:
        maps.append(FaultMapping(code_path, "file", True, 0, code, 0))
    if file_major:
        maps.append(FaultMapping("/data/big.db", "file", False, 0, file_major, 0))
    if hugetlb:
        maps.append(FaultMapping("/dev/hugepages/seg", "hugetlb", False, hugetlb, 0, 0))
    major = swapins + code + file_major
    return FaultProcess(pid=pid, comm=comm, faults_estimated=sum(m.faults_estimated for m in maps),
                        major_faults=major, swapins=swapins, hugetlb_faults_estimated=hugetlb,
                        hugetlb_major_faults=0, executable_major_faults=code, mappings=tuple(maps))


def fault_files(*procs, **kw):
    from snapcollect.parsers.records import FaultFiles

    return FaultFiles(processes=tuple(procs), sample_period=128, **kw)


def dive_target(pid: int = 4242, held: list[int] | None = None, outstanding: int = 0, exited: bool = False):
    """A --pid deep dive of one process; ``held``: the bytes its one stack held at each second."""
    from snapcollect.parsers.deepdive import DeepDiveTarget, HeldSample, StackBytes

    held = held if held is not None else [0, 0, 0]
    stacks = (StackBytes(("_start", "main", "leak_here"), outstanding, outstanding // 4096, stack_id=7),) \
        if outstanding else ()
    return DeepDiveTarget(pid=pid, comm="app", allocator="glibc", probed=("malloc", "free"),
                          calls={"malloc": 1000, "free": 1000 - outstanding // 4096},
                          exited_at=T0 + 10 if exited else None, outstanding=stacks,
                          outstanding_older_than_s=1.0, outstanding_total_bytes=outstanding,
                          held=tuple(HeldSample(T0 + i, {7: b}) for i, b in enumerate(held)))


def run(key: str, ds: Dataset):
    """(finding or None, skip reason or None) of one rule."""
    from snapcollect.analysis.findings.engine import evaluate, get_rule

    findings, skipped = evaluate(ds, [get_rule(key)])
    return (findings[0] if findings else None), (skipped[0].reason if skipped else None)


def slab(name: str, num_slabs: int, objs: int | None = None):
    """A slabinfo record of one-page slabs of 192-byte objects (dentry-like)."""
    from snapcollect.parsers.records import SlabCache
    objs = objs if objs is not None else num_slabs * 21
    return SlabCache(name=name, active_objs=objs, num_objs=objs, objsize=192, objperslab=21,
                     pagesperslab=1, active_slabs=num_slabs, num_slabs=num_slabs)


__all__ = ["build", "ramp", "psi", "psi_ramp", "proc", "kmsg", "memcg", "oom_kill", "stall",
           "compaction", "bpf", "run", "slab", "T0", "GIB_KB", "MEMTOTAL", "BASE_PROCS",
           "BASE_SLABINFO", "BASE_MEMINFO"]


def delay_reads(ds, waits: dict | None = None, counted: bool | None = True):
    """First and last delay accounting reads (delay/taskstats) of the dataset's window:
    ``waits``: pid -> (comm, swap-in s, reclaim s) over the window; every other
    process of the last procs sample reads zero."""
    from snapcollect.parsers.taskstats import DelayRead

    t0, t1 = ds.procs[0].t, ds.procs[-1].t
    pids = {pid: (getattr(p, "comm", "") or "", 0.0, 0.0) for pid, p in ds.procs[-1].value.items()}
    pids.update(waits or {})
    out = []
    for pid, (comm, swapin_s, reclaim_s) in sorted(pids.items()):
        for t, k in ((t0, 0), (t1, 1)):
            n = 100 * k if swapin_s or reclaim_s else 0
            out.append(DelayRead(t, pid, comm, "start" if k == 0 else "end",
                                 {"swapin": n, "freepages": n, "thrashing": 0, "compact": 0},
                                 {"swapin": int(k * swapin_s * 1e9), "freepages": int(k * reclaim_s * 1e9),
                                  "thrashing": 0, "compact": 0}, counted, 1000))
    return out


def shrinker(callback: str = "super_cache_scan", calls: int = 10, total_ms: float = 5.0, max_ms: float = 1.0,
             nid: int = 0, freed: int = 100, scanned: int = 200):
    """One bpf/shrinkers row."""
    from snapcollect.parsers.records import ShrinkerStats

    return ShrinkerStats(callback=callback, address="0xffffffff81400000", nid=nid, calls=calls,
                         total_ns=int(total_ms * 1e6), max_ns=int(max_ms * 1e6), freed=freed, scanned=scanned)


def kswapd_run(offset_s: float, awake_s: float | None, nid: int = 0, order: int = 0, wakes: int = 1):
    """One bpf/kswapd_runs record; ``awake_s`` None: already running when tracing began."""
    from snapcollect.parsers.records import KswapdRun

    return KswapdRun(t=T0 + offset_s, nid=nid, order=order,
                     awake_ns=None if awake_s is None else int(awake_s * 1e9), wakes=wakes)


def migration(reason: str = "compaction", succeeded: int = 1000, failed: int = 0, mode: str | None = "MIGRATE_ASYNC",
              pid: int | None = None, comm: str | None = None, calls: int = 10):
    """One bpf/migration row: per (reason, mode) when ``pid`` is None, else per process and reason."""
    from snapcollect.parsers.records import MigrationCount

    return MigrationCount(reason=reason, mode=None if pid is not None else mode, pid=pid, comm=comm, calls=calls,
                          succeeded=succeeded, failed=failed, thp_succeeded=0, thp_failed=0, thp_split=0,
                          large_folio_split=0)
