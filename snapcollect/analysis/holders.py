"""Who holds the memory the kernel cannot simply take back: swap and locked memory.

A finding that says "swap is 90% used" or "Unevictable grew" is only
half an answer: the reader then has to find the process. The bundle
already says who, so these are named here, once, for every rule:

- swap: VmSwap of each process (``procs/memory@end``, every process at
  one moment), else the last VmSwap the per-tick pass read
  (``series/procs``);
- locked: VmLck (mlock(2), mlockall(2), MAP_LOCKED) of each process,
  SysV segments locked with SHM_LOCK (their rss), and ramfs mounts
  (ramfs pages are never reclaimed; statvfs gives no usage for them).

The collector's own processes are already left out of both inputs
(``dataset._without``).
"""

from __future__ import annotations

from dataclasses import dataclass

from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.wording import human_kb
from snapcollect.bundle.names import FS_MEMFS, PROCS_MEMORY, PROC_SYSVIPC_SHM, SERIES_PROCS, end_of

TOP = 5


@dataclass(frozen=True)
class Holder:
    what: str            # "process", "sysv", "ramfs"
    name: str            # "java (pid 4711)", "SysV segment 32770 (key 0x0)", "/mnt/ram"
    kb: int | None
    pid: int | None = None
    artifact: str = ""


def swap_holders(ds: Dataset, lives=(), n: int = TOP) -> list[Holder]:
    """The ``n`` processes holding the most swap, largest first."""
    rows = ds.end.proc_memory
    if rows:
        got = [Holder("process", f"{p.comm} (pid {p.pid})", p.swap_kb, p.pid, end_of(PROCS_MEMORY))
               for p in rows if p.swap_kb]
    else:
        end_k = ds.procs[-1].k if ds.procs else None
        got = [Holder("process", f"{life.comm} (pid {life.pid})", life.last_swap_kb, life.pid, SERIES_PROCS)
               for life in lives if life.last_swap_kb > 0 and life.k_last == end_k]
    got.sort(key=lambda h: (-(h.kb or 0), h.pid or 0))
    return got[:n]


def locked_holders(ds: Dataset, n: int = TOP) -> list[Holder]:
    """Locked memory at the end: processes by VmLck, SHM_LOCKed segments, ramfs mounts."""
    procs = [Holder("process", f"{p.comm} (pid {p.pid})", p.locked_kb, p.pid, end_of(PROCS_MEMORY))
             for p in ds.end.proc_memory or [] if p.locked_kb]
    procs.sort(key=lambda h: (-(h.kb or 0), h.pid or 0))
    segs = [Holder("sysv", f"SysV segment {s.shmid} (key {s.key:#x}, created by pid {s.cpid})",
                   (s.rss_bytes if s.rss_bytes is not None else s.size_bytes) // 1024, None,
                   end_of(PROC_SYSVIPC_SHM))
            for s in ds.end.shm or [] if s.locked]
    segs.sort(key=lambda h: -(h.kb or 0))
    ramfs = [Holder("ramfs", m.mount_point, None, None, end_of(FS_MEMFS))
             for m in ds.end.memfs or [] if m.fstype == "ramfs"]
    return procs[:n] + segs[:n] + ramfs[:n]


def sentence(holders: list[Holder], verb: str) -> str:
    """"java (pid 4711) 1.2 GiB, ..." as a sentence ending in a space, or "" when none."""
    if not holders:
        return ""
    parts = [f"{h.name} {human_kb(h.kb)}" if h.kb is not None else f"{h.name} (ramfs: size not counted)"
             for h in holders]
    return f"{verb}: " + ", ".join(parts) + ". "
