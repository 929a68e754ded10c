"""/proc/meminfo fields across kernels.

``MemAvailable`` (3.14+, mm/page_alloc.c si_mem_available) estimates the
memory available to start new work without swapping. Older kernels do
not have it; sysstat then reads MemFree for kbavail, and so does every
reader here (the sar -r table, the memory findings, the verdict)::

    MemTotal:       24684084 kB
    MemFree:        23160964 kB
    MemAvailable:   24085748 kB
"""

from __future__ import annotations

from typing import Mapping


def mem_available_kb(m: Mapping[str, int]) -> int | None:
    """MemAvailable (3.14+); older kernels: MemFree, as sar does."""
    if "MemAvailable" in m:
        return m["MemAvailable"]
    return m.get("MemFree")
