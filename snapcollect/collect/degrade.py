"""What the collector leaves out when memory is short, decided once before the BPF start.

The memory the collector may still use (headroom.py: its cgroup's limit
and its ancestors', MemAvailable) is read once, after the start snapshot.
Below what a BPF compile needs, the BPF process is not started
(bpf_start.may_start). Below ``DETAIL_NEED_KB``, the end's per-process
detail (smaps, pmap -x: up to 32 MiB of text per process, read by
several workers at once) covers fewer processes. Each decision is
written to the manifest (``degraded``) with the figure it was taken on.
"""

from __future__ import annotations

from snapcollect.collect.headroom import Headroom

# Room for a few concurrent smaps/pmap reads of large processes on top of
# the collector's own ~25 MB.
DETAIL_NEED_KB = 128 * 1024
DETAIL_TOP_WHEN_SHORT = 3


def detail_top(top: int, room: Headroom) -> tuple[int, str | None]:
    """How many processes get the end's detail, and why fewer than asked."""
    if top <= DETAIL_TOP_WHEN_SHORT or not room.short_of(DETAIL_NEED_KB):
        return top, None
    return DETAIL_TOP_WHEN_SHORT, (f"process detail (smaps, pmap -x) for the top {DETAIL_TOP_WHEN_SHORT} "
                                   f"processes instead of {top}: {room.free_kb // 1024} MiB left under "
                                   f"{room.source}")
