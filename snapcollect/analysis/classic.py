"""``free -w`` and ``vmstat -s`` recomputed from /proc/meminfo and /proc/vmstat.

Definitions of procps-ng 4.0 (Debian 12), library/meminfo.c:

- free's *cache* is Cached + SReclaimable, *buffers* is Buffers,
  *shared* is Shmem, *available* is MemAvailable (MemFree on kernels
  before 3.14, which lack it), *used* is total - available;
- vmstat -s prints the same used and cache figures ("used memory",
  "swap cache" - which despite its label is that cache, not SwapCached),
  Active/Inactive, and from /proc/vmstat pgpgin/pgpgout (KiB) and
  pswpin/pswpout (pages).

procps 3.3 (older distributions) computed *used* as total - free -
buffers - cache; the report says which definition it shows.

Sample /proc/meminfo lines used::

    MemTotal:       24684084 kB
    MemAvailable:   24165160 kB
    SReclaimable:      96564 kB
"""

from __future__ import annotations

from typing import Mapping


def free_w(m: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """The ``Mem:`` and ``Swap:`` lines of ``free -w``, in kB."""
    total = m.get("MemTotal", 0)
    available = m.get("MemAvailable", m.get("MemFree", 0))
    cache = m.get("Cached", 0) + m.get("SReclaimable", 0)
    swap_total, swap_free = m.get("SwapTotal", 0), m.get("SwapFree", 0)
    return {
        "Mem": {"total": total, "used": total - available, "free": m.get("MemFree", 0),
                "shared": m.get("Shmem", 0), "buffers": m.get("Buffers", 0), "cache": cache,
                "available": available},
        "Swap": {"total": swap_total, "used": swap_total - swap_free, "free": swap_free},
    }


# (label as procps 4.0 prints it, unit, function of (meminfo, vmstat))
VMSTAT_S_MEMORY = (
    ("total memory", "K", lambda m, v: m.get("MemTotal")),
    ("used memory", "K", lambda m, v: free_w(m)["Mem"]["used"]),
    ("active memory", "K", lambda m, v: m.get("Active")),
    ("inactive memory", "K", lambda m, v: m.get("Inactive")),
    ("free memory", "K", lambda m, v: m.get("MemFree")),
    ("buffer memory", "K", lambda m, v: m.get("Buffers")),
    ("swap cache", "K", lambda m, v: free_w(m)["Mem"]["cache"]),
    ("total swap", "K", lambda m, v: m.get("SwapTotal")),
    ("used swap", "K", lambda m, v: free_w(m)["Swap"]["used"]),
    ("free swap", "K", lambda m, v: m.get("SwapFree")),
)
VMSTAT_S_PAGING = (
    ("paged in", "K", lambda m, v: v.get("pgpgin")),
    ("paged out", "K", lambda m, v: v.get("pgpgout")),
    ("pages swapped in", "", lambda m, v: v.get("pswpin")),
    ("pages swapped out", "", lambda m, v: v.get("pswpout")),
)


def vmstat_s(meminfo: Mapping[str, int], vmstat: Mapping[str, int]) -> list[tuple[str, int | None, str]]:
    """The memory and paging lines of ``vmstat -s``: ``[(label, value, unit)]``.

    The CPU tick, interrupt, context switch, boot time and fork lines come
    from /proc/stat, which the bundle does not sample; the report takes
    them from the verbatim command output when it is there.
    """
    return [(label, fn(meminfo, vmstat), unit) for label, unit, fn in VMSTAT_S_MEMORY + VMSTAT_S_PAGING]
