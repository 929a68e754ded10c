"""Anonymous THP faults that fell back to 4 KiB pages, per process, from BPF.

Reads the parsed ``bpf/thp_faults`` (a kretprobe on
do_huge_pmd_anonymous_page, the anonymous fault of a PMD range that THP
may back; collected only with --thp-fallback, where the kernel allows
kprobes) and computes once what the report's section and THP_FALLBACK
show: the host's attempts and fallbacks while the probe was on, and per
process its attempts, fallbacks and fallback share, most fallbacks first.

A fallback (VM_FAULT_FALLBACK) is a fault that went on with 4 KiB pages:
no huge page could be allocated (fragmented memory, defrag settings), it
could not be charged to the memory cgroup, or the range did not fit. The
kernel's own counter (/proc/vmstat thp_fault_fallback) has the host's
count; this names who paid it.
"""

from __future__ import annotations

from dataclasses import dataclass

from snapcollect.analysis.bpf import bpf_status
from snapcollect.analysis.dataset import Dataset
from snapcollect.bundle.names import BPF_THP_FAULTS


@dataclass(frozen=True)
class ProcessThpFaults:
    pid: int
    comm: str
    attempts: int
    fallbacks: int
    other: int

    @property
    def fallback_share(self) -> float:
        return self.fallbacks / self.attempts if self.attempts else 0.0


@dataclass(frozen=True)
class ThpFaultFacts:
    status: tuple[str, str | None]              # bpf/thp_faults's (status, reason)
    attempts: int                               # host-wide, while the probe was on
    fallbacks: int
    other: int
    processes: tuple[ProcessThpFaults, ...]     # most fallbacks first
    tracked_entries: int
    map_full: int
    warnings: tuple[str, ...] = ()              # rows the parser left out

    @property
    def ok(self) -> bool:
        return self.status[0] == "ok"

    @property
    def fallback_share(self) -> float | None:
        return self.fallbacks / self.attempts if self.attempts else None

    @property
    def mapped(self) -> int:
        """Faults that mapped a huge page (or the huge zero page)."""
        return max(self.attempts - self.fallbacks - self.other, 0)

    @property
    def top(self) -> ProcessThpFaults | None:
        """The process with the most fallbacks, when any fell back."""
        return self.processes[0] if self.processes and self.processes[0].fallbacks else None


def thp_fault_facts(ds: Dataset) -> ThpFaultFacts:
    st = bpf_status(ds).get(BPF_THP_FAULTS, ("missing", None))
    r = ds.bpf.thp_faults
    if r is None:
        return ThpFaultFacts(status=st if st[0] != "ok" else ("missing", "no data in the artifact"),
                             attempts=0, fallbacks=0, other=0, processes=(), tracked_entries=0, map_full=0)
    procs = tuple(sorted((ProcessThpFaults(p.pid, p.comm, p.attempts, p.fallbacks, p.other)
                          for p in r.processes if p.attempts),
                         key=lambda p: (-p.fallbacks, -p.attempts, p.pid)))
    return ThpFaultFacts(status=st, attempts=r.attempts, fallbacks=r.fallbacks, other=r.other,
                         processes=procs, tracked_entries=r.tracked_entries, map_full=r.map_full,
                         warnings=tuple(r.warnings))
