"""Processes by memory: the ps/top view, PSS of the top N, growth over the window.

Growth has one definition here, read by the growth table, the TOP_GROWER
and MEMORY_LEAK findings and the timeline alike: a process's RSS + swap
from its first sight to its peak (``Growth``), with its shape (a
sustained rate or a step, ``analysis/trend.py``). A suspect (``suspects``) is a grower that also
passes oomd's kill_by_memory_size_or_growth thresholds.

Inputs are the per-tick ``procs`` series (RSS = field 24 of
/proc/PID/stat in pages, VmSwap from status) and, for the top N chosen
at the end, smaps_rollup (Pss, 4.14+) and smaps. RSS counts shared pages
in every process that maps them; PSS divides each shared page among its
sharers, so PSS adds up across processes and RSS does not.

Sample smaps_rollup (kernel 6.18)::

    55595bbe4000-7ffceeaab000 ---p 00000000 00:00 0                          [rollup]
    Rss:               64620 kB
    Pss:               60069 kB
    Swap:                  0 kB
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from snapcollect.analysis.pidstat import Life, lives
from snapcollect.analysis.trend import Trend, trend
from snapcollect.parsers.records import Mapping_, Point, ProcDetail, ProcSample


@dataclass(frozen=True)
class ProcMemory:
    pid: int
    uid: int | None
    comm: str
    state: str
    vsz_kb: int
    rss_kb: int
    swap_kb: int | None
    mem_pct: float
    rss_first_kb: int        # RSS at its first sight in the window
    t_first: float
    t_last: float
    present_at_end: bool

    @property
    def growth_kb(self) -> int:
        return self.rss_kb - self.rss_first_kb

    @property
    def growth_ratio(self) -> float | None:
        return self.rss_kb / self.rss_first_kb if self.rss_first_kb else None


def process_memory(procs: Sequence[Point[dict[int, ProcSample]]], mem_total_kb: int | None,
                   all_lives: Sequence[Life] | None = None) -> list[ProcMemory]:
    """Every process of the window with its first and last RSS, largest last RSS first."""
    if not procs:
        return []
    k_end = procs[-1].k
    out = []
    for life in (lives(procs) if all_lives is None else all_lives):
        s = life.last
        out.append(ProcMemory(pid=life.pid, uid=s.uid, comm=s.comm, state=s.state, vsz_kb=s.vsize_kb,
                              rss_kb=s.rss_kb, swap_kb=s.swap_kb,
                              mem_pct=100.0 * s.rss_kb / mem_total_kb if mem_total_kb else 0.0,
                              rss_first_kb=life.first.rss_kb, t_first=life.t_first, t_last=life.t_last,
                              present_at_end=life.k_last == k_end))
    out.sort(key=lambda p: (-p.rss_kb, p.pid))
    return out


def top_by_rss(memory: Sequence[ProcMemory], n: int = 15) -> list[ProcMemory]:
    """The ps/top view at the end of the window: live processes by RSS (``process_memory``)."""
    return [p for p in memory if p.present_at_end and p.rss_kb > 0][:n]


# oomd kill_by_memory_size_or_growth: growth ratio 1.25 and the largest 20%
# (growing_size_percentile 80); a 64 MiB floor (heuristic) so that a small
# process doubling is not a suspect.
GROWTH_RATIO = 1.25
SIZE_PERCENTILE = 80
MIN_SUSPECT_KB = 64 * 1024
MIN_GROWTH_KB = 1024        # the growth table's floor: 1 MiB


@dataclass(frozen=True)
class Growth:
    """A process's memory growth in the window, RSS + swap, from its first sight to its peak.

    Swap counts because a process pushed out to swap still holds that
    memory: ranking by RSS alone hides the leaker once it swaps. ``trend``
    tells a sustained rate from a step (analysis/trend.py).
    """

    pid: int
    comm: str
    first_kb: int           # RSS + VmSwap at the first sight
    peak_kb: int
    last_kb: int
    last_swap_kb: int       # VmSwap at the last sight (the last one read)
    first_t: float
    peak_t: float
    last_t: float
    crossed_t: float        # first sample at GROWTH_RATIO and MIN_SUSPECT_KB above the first (else the peak)
    trend: Trend

    @property
    def growth_kb(self) -> int:
        return self.peak_kb - self.first_kb

    @property
    def ratio(self) -> float:
        return self.peak_kb / max(self.first_kb, 1)

    @property
    def rate_kb_s(self) -> float | None:
        """The sustained rate of growth; None for a step or an irregular growth."""
        return self.trend.rate_kb_s


def growth(all_lives: Sequence[Life], min_kb: int = MIN_GROWTH_KB) -> list[Growth]:
    """Processes seen at least twice whose RSS + swap peak is ``min_kb`` or more above their first sight."""
    out = []
    for life in all_lives:
        if life.samples < 2 or not life.mem:
            continue
        shape = trend(life.mem)
        if shape is None or shape.rise_kb < min_kb:
            continue
        base = shape.first_kb
        crossed = next((t for t, kb in life.mem
                        if kb >= GROWTH_RATIO * max(base, 1) and kb - base >= MIN_SUSPECT_KB), shape.t_peak)
        out.append(Growth(life.pid, life.comm, base, shape.peak_kb, shape.last_kb, life.last_swap_kb,
                          life.t_first, shape.t_peak, life.t_last, crossed, shape))
    out.sort(key=lambda g: (-g.growth_kb, g.pid))
    return out


def suspects(all_lives: Sequence[Life], grown: Sequence[Growth]) -> list[Growth]:
    """Growers among the largest 20% (by peak RSS + swap) that grew >= 1.25x and >= 64 MiB, biggest first."""
    tracked = [life for life in all_lives if life.samples >= 2 and life.mem]
    if not tracked:
        return []
    sizes = sorted(max(kb for _, kb in life.mem) for life in tracked)
    cut = sizes[min(int(len(sizes) * SIZE_PERCENTILE / 100), len(sizes) - 1)]
    return [g for g in grown if g.peak_kb >= cut and g.growth_kb >= MIN_SUSPECT_KB
            and g.peak_kb >= GROWTH_RATIO * max(g.first_kb, 1)]


def top_by_pss(top: Sequence[ProcDetail]) -> list[ProcDetail]:
    """The top-N detail processes by PSS (RSS where PSS is unknown)."""
    return sorted(top, key=lambda d: -(d.pss_kb if d.pss_kb is not None else (d.rss_kb or 0)))


@dataclass(frozen=True)
class MappingSplit:
    """pmap -x totals of one process and their anonymous / file / shared split (kB)."""

    kbytes: int
    rss_kb: int
    dirty_kb: int
    pss_kb: int
    swap_kb: int
    anon_rss_kb: int       # Anonymous: private anonymous pages (heap, stacks, CoW copies)
    file_rss_kb: int       # Rss - Anonymous of mappings backed by a file or shmem
    shared_rss_kb: int     # Shared_Clean + Shared_Dirty: pages mapped by other processes too


def mapping_split(mappings: Sequence[Mapping_]) -> MappingSplit:
    return MappingSplit(
        kbytes=sum(m.kbytes for m in mappings), rss_kb=sum(m.rss_kb for m in mappings),
        dirty_kb=sum(m.dirty_kb for m in mappings), pss_kb=sum(m.pss_kb for m in mappings),
        swap_kb=sum(m.swap_kb for m in mappings), anon_rss_kb=sum(m.anonymous_kb for m in mappings),
        file_rss_kb=sum(m.rss_kb - m.anonymous_kb for m in mappings),
        shared_rss_kb=sum(m.shared_kb for m in mappings))


def largest_mappings(mappings: Sequence[Mapping_], n: int = 20) -> list[Mapping_]:
    """pmap -x rows sorted by RSS, largest first (address breaks ties, as pmap's order)."""
    return sorted(mappings, key=lambda m: (-m.rss_kb, m.address))[:n]
