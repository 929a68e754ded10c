"""System-wide /proc and /sys memory files, read as raw text.

Snapshot files (start and end of the window) and the cheap files read at
every tick, each with a size cap (the callers add the timeout). Some take
kernel locks a sick host may hold for long: slabinfo slab_mutex,
zoneinfo and pagetypeinfo each zone's lock. Interfaces and the kernels
that brought them:

- /proc/meminfo, /proc/vmstat, /proc/buddyinfo, /proc/zoneinfo, /proc/swaps
- /proc/slabinfo: mode 0400 since 2.6.37 ("mm: restrict access to slab
  files under procfs and sysfs"), so ``denied`` without root
- /proc/pagetypeinfo: 2.6.24; root only since 5.4 ("mm, vmstat: hide
  /proc/pagetypeinfo from normal users")
- /proc/pressure/memory: 4.20 with CONFIG_PSI; EOPNOTSUPP with psi=0
- /proc/sys/vm/*: dumped as ``name = value`` lines. ``stat_refresh`` is
  skipped: reading it flushes every CPU's counters (work on every CPU),
  which is not ours to do on a struggling host.
- /sys/kernel/mm/transparent_hugepage/**: 2.6.38; per-size
  ``hugepages-<N>kB`` directories since 6.8 (mTHP)
"""

from __future__ import annotations

from snapcollect.bundle.names import (PROC_BUDDYINFO, PROC_LOADAVG, PROC_MEMINFO, PROC_PAGETYPEINFO,
                                      PROC_PRESSURE_MEMORY, PROC_SLABINFO, PROC_SWAPS, PROC_SYSVIPC_SHM,
                                      PROC_UPTIME, PROC_VMSTAT, PROC_ZONEINFO)
from snapcollect.collect.sources import Outcome, dump_dir, read_capped

KIB = 1024
MIB = 1024 * KIB

# artifact source name -> (path, size cap). Order is priority: cheap and
# important first, so a deadline cuts what matters least.
SNAPSHOT_FILES: dict[str, tuple[str, int]] = {
    PROC_MEMINFO: ("/proc/meminfo", 64 * KIB),
    PROC_VMSTAT: ("/proc/vmstat", 64 * KIB),
    PROC_PRESSURE_MEMORY: ("/proc/pressure/memory", 4 * KIB),
    PROC_SWAPS: ("/proc/swaps", 256 * KIB),
    PROC_UPTIME: ("/proc/uptime", 4 * KIB),
    PROC_LOADAVG: ("/proc/loadavg", 4 * KIB),
    PROC_BUDDYINFO: ("/proc/buddyinfo", 64 * KIB),
    PROC_SLABINFO: ("/proc/slabinfo", 4 * MIB),
    PROC_ZONEINFO: ("/proc/zoneinfo", 4 * MIB),
    PROC_PAGETYPEINFO: ("/proc/pagetypeinfo", 1 * MIB),
    # SysV shared memory segments: size, cpid/lpid, nattch; rss and swap
    # columns only on newer kernels (the parser reads the header); bytes.
    PROC_SYSVIPC_SHM: ("/proc/sysvipc/shm", 4 * MIB),
}

# Read at every tick.
TICK_FILES: dict[str, tuple[str, int]] = {
    PROC_VMSTAT: ("/proc/vmstat", 64 * KIB),
    PROC_MEMINFO: ("/proc/meminfo", 64 * KIB),
    PROC_PRESSURE_MEMORY: ("/proc/pressure/memory", 4 * KIB),
    PROC_UPTIME: ("/proc/uptime", 4 * KIB),
}

SYSVM_DIR = "/proc/sys/vm"
THP_DIR = "/sys/kernel/mm/transparent_hugepage"
_SYSVM_SKIP = frozenset({"stat_refresh"})


def read_file(source: str) -> Outcome:
    path, cap = SNAPSHOT_FILES.get(source) or TICK_FILES[source]
    got = read_capped(path, cap)
    if got.status == "denied":
        got.reason = f"{path}: {got.reason} (readable by root only)"
    elif got.status == "missing" and got.reason and not got.reason.startswith("/"):
        got.reason = f"{path}: {got.reason}"
    return got


def sysvm() -> tuple[Outcome, list[str]]:
    """/proc/sys/vm as ``name = value`` lines, and what could not be read."""
    return dump_dir(SYSVM_DIR, 256 * KIB, skip=_SYSVM_SKIP)


def thp() -> tuple[Outcome, list[str]]:
    """Transparent hugepage settings and counters, recursively."""
    return dump_dir(THP_DIR, 256 * KIB, recursive=True)
