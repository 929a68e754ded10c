"""/proc/buddyinfo: free blocks per order, per node and zone.

Sample (kernel 6.18)::

    Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3
    Node 0, zone   Normal    957   1180    880    520    235    160    154     99     78     53    149

Column i counts free blocks of 2**i pages (MAX_ORDER 10 on x86-64, so 11
columns; other architectures and configs have more or fewer).
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError, to_int


def parse_buddyinfo(text: str) -> list[dict]:
    """``[{"node": 0, "zone": "Normal", "free": [957, 1180, ...]}, ...]``."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        head, sep, rest = line.partition(", zone")
        parts = rest.split()
        if not sep or not head.startswith("Node ") or len(parts) < 2:
            raise ParseError(f"buddyinfo: unexpected line {line.strip()[:80]!r}")
        out.append({"node": to_int(head[5:].strip(), "buddyinfo", line), "zone": parts[0],
                    "free": [to_int(v, "buddyinfo", line) for v in parts[1:]]})
    return out
