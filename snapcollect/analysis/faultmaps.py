"""Where faults land, per process: files faulted in, swap-ins, huge-page faults.

Input: ``bpf/fault_files`` (parsers/fault_files.py: sampled faults and every
major fault per process and mapping, from the fault addresses BPF kept per
2 MiB region), /proc/PID/stat majflt and VmSwap from the process series
(analysis/pidstat.Life), AnonHugePages of the top processes' smaps_rollup,
and the host's /proc/vmstat thp_fault_alloc / thp_fault_fallback.

A major fault in an anonymous or shmem mapping is a page read back from
swap (a swap-in): ``swapins`` names who is slowed by swapping. Major
faults in executable file mappings are code read back from disk: the
working set of code does not stay in memory (``code_refaults``).
No per-process THP fallback count exists without kprobes (the kernel has
no tracepoint for it): THP is the host's vmstat counters beside each
process's AnonHugePages.
"""

from __future__ import annotations

from dataclasses import dataclass

from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.series import vm_delta
from snapcollect.parsers.records import FaultMapping, FaultProcess


@dataclass(frozen=True)
class SwapIns:
    pid: int
    comm: str
    swapins: int                  # BPF: major faults on anonymous/shmem memory
    majflt: int | None            # /proc/PID/stat majflt over the window, where the process was followed
    vmswap_kb: int | None         # VmSwap at its last sight


@dataclass(frozen=True)
class CodeRefaults:
    pid: int
    comm: str
    major_faults: int             # all of the process's
    executable_major_faults: int  # in executable file mappings
    top: FaultMapping             # the code mapping with the most major faults


@dataclass(frozen=True)
class ThpProcess:
    pid: int
    comm: str
    anon_huge_kb: int
    rss_kb: int | None


@dataclass(frozen=True)
class FaultMapFacts:
    processes: tuple[FaultProcess, ...]      # most faults first
    swapins: tuple[SwapIns, ...]             # swap-ins > 0, most first
    code_refaults: tuple[CodeRefaults, ...]  # executable major faults > 0, most first
    hugetlb: tuple[FaultProcess, ...]        # hugetlbfs faults > 0, most first
    thp: tuple[ThpProcess, ...]              # AnonHugePages > 0 of the top processes, most first
    thp_fault_alloc: int | None              # host-wide, over the window
    thp_fault_fallback: int | None
    sample_period: int
    map_full: int
    bad_rows: int


def fault_map_facts(ds: Dataset, lives=()) -> FaultMapFacts | None:
    """None when the bundle has no bpf/fault_files."""
    ff = ds.bpf.fault_files
    thp = tuple(sorted((ThpProcess(p.pid, p.comm, p.anon_huge_kb, p.rss_kb) for p in ds.top
                        if isinstance(p.anon_huge_kb, int) and p.anon_huge_kb > 0),
                       key=lambda t: (-t.anon_huge_kb, t.pid)))
    if ff is None:
        return None
    by_pid = {}
    for life in lives:                      # the latest life of a reused pid
        if life.pid not in by_pid or life.t_last >= by_pid[life.pid].t_last:
            by_pid[life.pid] = life
    swap = []
    for p in ff.processes:
        if p.swapins <= 0:
            continue
        life = by_pid.get(p.pid)
        swap.append(SwapIns(p.pid, p.comm, p.swapins,
                            None if life is None else max(life.last.majflt - life.first.majflt, 0),
                            None if life is None or not life.mem else life.last_swap_kb))
    code = []
    for p in ff.processes:
        exe = [m for m in p.mappings if m.kind == "file" and m.executable and m.major_faults > 0]
        if p.executable_major_faults > 0 and exe:
            code.append(CodeRefaults(p.pid, p.comm, p.major_faults, p.executable_major_faults,
                                     max(exe, key=lambda m: m.major_faults)))
    return FaultMapFacts(
        processes=ff.processes,
        swapins=tuple(sorted(swap, key=lambda s: (-s.swapins, s.pid))),
        code_refaults=tuple(sorted(code, key=lambda c: (-c.executable_major_faults, c.pid))),
        hugetlb=tuple(sorted((p for p in ff.processes if p.hugetlb_faults_estimated or p.hugetlb_major_faults),
                             key=lambda p: (-(p.hugetlb_faults_estimated + p.hugetlb_major_faults), p.pid))),
        thp=thp, thp_fault_alloc=vm_delta(ds, "thp_fault_alloc"),
        thp_fault_fallback=vm_delta(ds, "thp_fault_fallback"),
        sample_period=ff.sample_period, map_full=ff.map_full, bad_rows=ff.bad_rows)
