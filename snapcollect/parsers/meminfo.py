"""/proc/meminfo: system memory, one ``Name: value [kB]`` per line.

Sample (kernel 6.18)::

    MemTotal:       24684084 kB
    MemFree:        24467712 kB
    MemAvailable:   24408788 kB
    HugePages_Total:       0

Values are kB except the ``HugePages_*`` fields, which are page counts.
Fields come and go with kernel versions: MemAvailable appeared in 3.14,
KReclaimable in 4.20, SecPageTables in 6.1, Zswap/Zswapped in 5.19; the
parser keeps whatever the kernel printed and analysis treats every field
as optional.
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError, to_int


def parse_meminfo(text: str) -> dict[str, int]:
    """``{"MemTotal": 24684084, ...}`` in kB (HugePages_* in pages)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts or len(parts) > 2 or (len(parts) == 2 and parts[1] != "kB"):
            raise ParseError(f"meminfo: unexpected line {line.strip()[:80]!r}")
        out[key.strip()] = to_int(parts[0], "meminfo", line)
    if not out:
        raise ParseError("meminfo: empty")
    return out
