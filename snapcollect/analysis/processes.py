"""Processes by memory: the ps/top view, PSS of the top N, growth over the window.

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

from snapcollect.analysis.pidstat import lives
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


def process_memory(procs: Sequence[Point[dict[int, ProcSample]]], mem_total_kb: int | None) -> list[ProcMemory]:
    """Every process of the window with its first and last RSS, largest last RSS first."""
    if not procs:
        return []
    k_end = procs[-1].k
    out = []
    for life in lives(procs):
        s = life.last
        out.append(ProcMemory(pid=life.pid, uid=s.uid, comm=s.comm, state=s.state, vsz_kb=s.vsize_kb,
                              rss_kb=s.rss_kb, swap_kb=s.swap_kb,
                              mem_pct=100.0 * s.rss_kb / mem_total_kb if mem_total_kb else 0.0,
                              rss_first_kb=life.first.rss_kb, t_first=life.t_first, t_last=life.t_last,
                              present_at_end=life.k_last == k_end))
    out.sort(key=lambda p: (-p.rss_kb, p.pid))
    return out


def top_by_rss(procs: Sequence[Point[dict[int, ProcSample]]], mem_total_kb: int | None,
               n: int = 15) -> list[ProcMemory]:
    """The ps/top view at the end of the window: live processes by RSS."""
    return [p for p in process_memory(procs, mem_total_kb) if p.present_at_end and p.rss_kb > 0][:n]


def top_growers(procs: Sequence[Point[dict[int, ProcSample]]], mem_total_kb: int | None,
                n: int = 10, min_kb: int = 1024) -> list[ProcMemory]:
    """Processes whose RSS grew most from first to last sight (at least ``min_kb``)."""
    grown = [p for p in process_memory(procs, mem_total_kb) if p.growth_kb >= min_kb]
    grown.sort(key=lambda p: (-p.growth_kb, p.pid))
    return grown[:n]


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
