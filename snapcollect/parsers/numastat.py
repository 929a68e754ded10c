"""Per-NUMA-node files: /sys/devices/system/node/node<N>/numastat and meminfo.

numastat sample (kernel 6.18), page counts since boot::

    numa_hit 1574810
    numa_miss 0
    numa_foreign 0
    interleave_hit 1130
    local_node 1574810
    other_node 0

meminfo sample, kB (HugePages_* are page counts)::

    Node 0 MemTotal:        4286668 kB
    Node 0 MemFree:         4075360 kB
    Node 0 HugePages_Total:     0

Per-node MemTotal need not add up to /proc/meminfo's: memory the buddy
allocator manages outside the node's zones (some hypervisors' hot-added
memory) is counted globally only.
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError, to_int


def parse_node_numastat(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise ParseError(f"node numastat: unexpected line {line.strip()[:80]!r}")
        out[parts[0]] = to_int(parts[1], "node numastat", line)
    if not out:
        raise ParseError("node numastat: empty")
    return out


def parse_node_meminfo(text: str) -> dict[str, int]:
    """``{"MemTotal": 4286668, ...}`` for one node (the node number is dropped)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split()
        # "Node", N, "Name:", value, ["kB"]
        if len(parts) < 4 or parts[0] != "Node" or not parts[2].endswith(":"):
            raise ParseError(f"node meminfo: unexpected line {line.strip()[:80]!r}")
        out[parts[2][:-1]] = to_int(parts[3], "node meminfo", line)
    if not out:
        raise ParseError("node meminfo: empty")
    return out
