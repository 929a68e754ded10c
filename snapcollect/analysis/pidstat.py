"""pidstat -r over the whole window, from the per-tick ``procs`` series.

pidstat -r reads minflt (field 10) and majflt (field 12) of
/proc/PID/stat and prints their deltas per second, with VSZ (vsize / 1024),
RSS (rss pages * page size / 1024) and %MEM (RSS / MemTotal) of the
current sample. Here the interval is the whole window, as
``pidstat -r -p ALL <window> 1`` would print it:

- a process is identified by (pid, starttime), so a reused pid is a new
  process, not a counter that went backwards;
- a process present at the first tick counts faults from that tick; one
  started during the window counts every fault since its start (the
  stat counters begin at zero at fork), as pidstat counts a new task;
- rates divide by the time the process was seen alive in the window
  (first to last sight, or start to last sight); one that exited early
  has its last sight as its end; VSZ, RSS and %MEM are from the last
  sight;
- ticks where the collector skipped a process (a blocked /proc read) are
  just missing samples; the first and last sight are what count.

Sample input line (``procs`` series, kernel 6.18)::

    7303 (sc (fix) x) 2) S 7273 7269 2897 0 -1 4194304 14708 0 0 0 ... 72109 73478144 16121 ...\t0\t0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from snapcollect.parsers.records import Point, ProcSample


@dataclass(frozen=True)
class Life:
    """One process (pid, starttime) across the window: first, last and largest sight."""

    pid: int
    starttime: int
    first: ProcSample
    last: ProcSample
    t_first: float
    t_last: float
    k_first: int
    k_last: int
    samples: int
    peak_rss_kb: int = 0
    peak_t: float = 0.0
    rss: tuple[tuple[float, int], ...] = ()     # (t, RSS kB) of every sight
    # (t, RSS + VmSwap kB) of every sight. VmSwap is read on some ticks
    # only (collect/sources/processes.py): between two reads the last one
    # read stands, which is what the process held then to within a pass.
    mem: tuple[tuple[float, int], ...] = ()

    @property
    def last_swap_kb(self) -> int:
        return self.mem[-1][1] - self.rss[-1][1] if self.mem and self.rss else 0

    @property
    def comm(self) -> str:
        return self.last.comm


def lives(procs: Sequence[Point[dict[int, ProcSample]]]) -> list[Life]:
    """Every process seen in the series, by (pid, starttime), in one pass.

    This is the one definition of a process's life in the window: the
    pidstat table, the ps/top and growth tables, the process findings and
    the timeline all read it (``model.Model.lives``).
    """
    first: dict[tuple[int, int], tuple[Point, ProcSample]] = {}
    last: dict[tuple[int, int], tuple[Point, ProcSample]] = {}
    rss: dict[tuple[int, int], list[tuple[float, int]]] = {}
    mem: dict[tuple[int, int], list[tuple[float, int]]] = {}
    swap: dict[tuple[int, int], int] = {}
    peak: dict[tuple[int, int], tuple[int, float]] = {}
    for point in procs:
        for pid, s in point.value.items():
            key = (pid, s.starttime)
            if key not in first:
                first[key] = (point, s)
                rss[key] = []
                mem[key] = []
                peak[key] = (s.rss_kb, point.t)
            last[key] = (point, s)
            rss[key].append((point.t, s.rss_kb))
            if s.swap_kb is not None:
                swap[key] = s.swap_kb
            mem[key].append((point.t, s.rss_kb + swap.get(key, 0)))
            if s.rss_kb > peak[key][0]:
                peak[key] = (s.rss_kb, point.t)
    out = []
    for key, (p0, s0) in first.items():
        p1, s1 = last[key]
        out.append(Life(key[0], key[1], s0, s1, p0.t, p1.t, p0.k, p1.k, len(rss[key]),
                        peak[key][0], peak[key][1], tuple(rss[key]), tuple(mem[key])))
    return out


@dataclass(frozen=True)
class PidstatRow:
    pid: int
    uid: int | None
    comm: str
    minflt: int              # faults counted in the window
    majflt: int
    seconds: float           # time the rates are over
    minflt_s: float
    majflt_s: float
    vsz_kb: int
    rss_kb: int
    mem_pct: float
    t_from: float            # start of the counted span (epoch s)
    t_to: float              # last sight
    started_in_window: bool
    exited_in_window: bool


def pidstat_r(procs: Sequence[Point[dict[int, ProcSample]]], mem_total_kb: int | None,
              uptime: Sequence[Point[float]] = (), clk_tck: int = 100,
              all_lives: Sequence[Life] | None = None) -> list[PidstatRow]:
    """Per-process fault rates over the window, highest minflt/s first.

    ``uptime`` (the proc/uptime series) places a process's start on the
    bundle's clock (``all_lives``: the ``lives`` of ``procs``, when already
    computed); without it a process first seen after the first tick
    is counted from its first sight.
    """
    if not procs:
        return []
    t0, t_end = procs[0].t, procs[-1].t
    k0, k_end = procs[0].k, procs[-1].k
    up = {p.k: p.value for p in uptime}
    up0 = up.get(k0)
    rows = []
    for life in (lives(procs) if all_lives is None else all_lives):
        started = life.k_first != k0
        exited = life.k_last != k_end
        minflt = life.last.minflt - life.first.minflt
        majflt = life.last.majflt - life.first.majflt
        t_from = life.t_first
        born_s = life.starttime / clk_tck
        if started and up0 is not None and born_s > up0:
            # Born during the window: its counters started at zero then.
            minflt, majflt = life.last.minflt, life.last.majflt
            t_from = t0 + (born_s - up0)
        seconds = life.t_last - t_from
        if seconds <= 0:
            # Seen once, right at its start: no span to divide by.
            if minflt == 0 and majflt == 0:
                continue
            seconds = None
        rss = life.last.rss_kb
        rows.append(PidstatRow(
            pid=life.pid, uid=life.last.uid, comm=life.last.comm, minflt=minflt, majflt=majflt,
            seconds=seconds or 0.0, minflt_s=minflt / seconds if seconds else 0.0,
            majflt_s=majflt / seconds if seconds else 0.0, vsz_kb=life.last.vsize_kb, rss_kb=rss,
            mem_pct=100.0 * rss / mem_total_kb if mem_total_kb else 0.0, t_from=t_from, t_to=life.t_last,
            started_in_window=started, exited_in_window=exited))
    rows.sort(key=lambda r: (-r.minflt_s, -r.majflt_s, r.pid))
    return rows


def pidstat_r_intervals(procs: Sequence[Point[dict[int, ProcSample]]],
                        mem_total_kb: int | None) -> list[PidstatRow]:
    """pidstat -r with an interval (``pidstat -r -p ALL 1``): one row per process and interval.

    A process is counted in an interval when the same (pid, starttime) is
    in both samples; like pidstat, which prints only active tasks, a row
    is kept when its fault counters moved or its RSS changed. Rates divide
    by the wall time between the two samples; VSZ, RSS and %MEM are those
    of the interval's end. Rows are in time order, then by pid.
    """
    rows: list[PidstatRow] = []
    for prev, cur in zip(procs, procs[1:]):
        dt = cur.t - prev.t
        if dt <= 0:
            continue
        for pid in sorted(cur.value):
            s1, s0 = cur.value[pid], prev.value.get(pid)
            if s0 is None or s0.starttime != s1.starttime:
                continue
            minflt, majflt = s1.minflt - s0.minflt, s1.majflt - s0.majflt
            if minflt == 0 and majflt == 0 and s1.rss_kb == s0.rss_kb:
                continue
            rows.append(PidstatRow(
                pid=pid, uid=s1.uid, comm=s1.comm, minflt=minflt, majflt=majflt, seconds=dt,
                minflt_s=minflt / dt, majflt_s=majflt / dt, vsz_kb=s1.vsize_kb, rss_kb=s1.rss_kb,
                mem_pct=100.0 * s1.rss_kb / mem_total_kb if mem_total_kb else 0.0, t_from=prev.t, t_to=cur.t,
                started_in_window=False, exited_in_window=False))
    return rows
