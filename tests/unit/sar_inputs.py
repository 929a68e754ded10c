"""Small Datasets built in memory for the sar and pidstat tests."""

from __future__ import annotations

from snapcollect.analysis.dataset import Dataset, Snapshot
from snapcollect.parsers.records import Point, ProcSample, Psi, PsiLine

T0 = 1_800_000_000.0


def dataset(vmstat=(), meminfo=(), uptime=(), psi=(), procs=(), dt=1.0) -> Dataset:
    """Series given as lists of values; sample k is at T0 + k * dt."""
    ds = Dataset(manifest={"interval_s": dt}, host={}, interval_s=dt, page_size=4096, start=Snapshot(),
                 end=Snapshot())
    ds.vmstat = [Point(k, T0 + k * dt, v) for k, v in enumerate(vmstat)]
    ds.meminfo = [Point(k, T0 + k * dt, v) for k, v in enumerate(meminfo)]
    ds.uptime = [Point(k, T0 + k * dt, v) for k, v in enumerate(uptime)]
    ds.psi = [Point(k, T0 + k * dt, v) for k, v in enumerate(psi)]
    ds.procs = [Point(k, T0 + k * dt, v) for k, v in enumerate(procs)]
    return ds


def psi(some_avg10, some_total, full_avg10, full_total) -> Psi:
    return Psi(PsiLine(some_avg10, 1.0, 0.5, some_total), PsiLine(full_avg10, 0.5, 0.25, full_total))


def proc(pid, comm="p", minflt=0, majflt=0, rss_kb=4, starttime=100, vsize_kb=1000, uid=0, swap_kb=0):
    return ProcSample(pid, comm, "S", 1, minflt, majflt, vsize_kb, rss_kb, uid, swap_kb, starttime)
