"""How long pages stayed in swap before they were faulted back, from BPF.

Reads the parsed ``bpf/swap_residency`` (a kretprobe on the swap slot
allocation of reclaim and a kprobe on the swap cache lookup of a swap-in
fault; collected only where the kernel allows kprobes) and computes once
what the report's section and SWAP_THRASHING show: the histogram in
bcc's log2 buckets, its median bucket, the share of read-back pages that
had been out less than a second, and the same per process.

A page read back within a second of going out is the signature of swap
thrashing: the same pages cycle between memory and disk. Pages swapped
out before the probes were on are not followed, nor are those read back
after the window, so the figures describe the window's own round trips.
"""

from __future__ import annotations

from dataclasses import dataclass

from snapcollect.analysis.bpf import Bucket, bpf_status
from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.vmscan import slot_buckets
from snapcollect.bundle.names import BPF_SWAP_RESIDENCY

SOON_US = 1_000_000          # the BPF program's under_1s: read back within a second of going out


@dataclass(frozen=True)
class ProcessResidency:
    pid: int
    comm: str
    swapins: int
    mean_us: float
    soon_share: float          # of its swap-ins, read back within a second


@dataclass(frozen=True)
class SwapResidencyFacts:
    status: tuple[str, str | None]           # bpf/swap_residency's (status, reason)
    buckets: tuple[Bucket, ...]              # log2 of microseconds, bcc's buckets
    swapped_out: int                         # pages given a swap slot while the probes were on
    read_back: int                           # of them, faulted back in the window
    median: Bucket | None                    # the bucket holding the median read-back
    soon: int                                # read back within a second (processes' rows)
    soon_share: float | None                 # soon / the processes' swap-ins
    processes: tuple[ProcessResidency, ...]  # most swap-ins first
    tracked_entries: int
    map_full: int

    @property
    def ok(self) -> bool:
        return self.status[0] == "ok"


def median_bucket(buckets: tuple[Bucket, ...]) -> Bucket | None:
    total = sum(b.count for b in buckets)
    if not total:
        return None
    seen = 0
    for b in buckets:
        seen += b.count
        if 2 * seen >= total:
            return b
    return buckets[-1]


def swap_residency_facts(ds: Dataset) -> SwapResidencyFacts:
    st = bpf_status(ds).get(BPF_SWAP_RESIDENCY, ("missing", None))
    r = ds.bpf.swap_residency
    if r is None:
        return SwapResidencyFacts(status=st if st[0] != "ok" else ("missing", "no data in the artifact"),
                                  buckets=(), swapped_out=0, read_back=0, median=None, soon=0,
                                  soon_share=None, processes=(), tracked_entries=0, map_full=0)
    buckets = tuple(slot_buckets(r.histogram_us))
    procs = tuple(ProcessResidency(pid=p.pid, comm=p.comm, swapins=p.swapins,
                                   mean_us=p.total_us / p.swapins if p.swapins else 0.0,
                                   soon_share=p.under_1s / p.swapins if p.swapins else 0.0)
                  for p in r.processes if p.swapins)
    ins = sum(p.swapins for p in procs)
    soon = sum(p.under_1s for p in r.processes)
    return SwapResidencyFacts(status=st, buckets=buckets, swapped_out=r.slots_allocated,
                              read_back=r.swapins_matched, median=median_bucket(buckets), soon=soon,
                              soon_share=soon / ins if ins else None, processes=procs,
                              tracked_entries=r.tracked_entries, map_full=r.map_full)
