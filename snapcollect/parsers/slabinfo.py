"""/proc/slabinfo, format version 2.1 (SLUB and SLAB, 2.6.x onward).

Sample (kernel 6.18)::

    slabinfo - version: 2.1
    # name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables ...
    dentry             38472  38472    192   21    1 : tunables    0    0    0 : slabdata   1832   1832      0

Readable by root only (0400 since 2.6.37). With SLUB the
tunables are zeros; a kernel built with CONFIG_SLAB statistics appends a
``: globalstat`` and ``: cpustat`` part, which is ignored.
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError, to_int
from snapcollect.parsers.records import SlabCache


def parse_slabinfo(text: str) -> list[SlabCache]:
    lines = text.splitlines()
    if not lines or not lines[0].startswith("slabinfo - version:"):
        raise ParseError("slabinfo: missing the 'slabinfo - version' header")
    version = lines[0].split(":", 1)[1].split()[0]
    if version != "2.1":
        raise ParseError(f"slabinfo: version {version} is not supported (2.1 is)")
    out = []
    for line in lines[1:]:
        if not line.strip() or line.startswith("#"):
            continue
        head, _, rest = line.partition(":")
        fields = head.split()
        slabdata = rest.split("slabdata", 1)
        if len(fields) != 6 or len(slabdata) != 2 or len(slabdata[1].split()) < 2:
            raise ParseError(f"slabinfo: unexpected line {line.strip()[:80]!r}")
        n = [to_int(v, "slabinfo", line) for v in fields[1:]]
        sd = [to_int(v, "slabinfo", line) for v in slabdata[1].split()[:2]]
        out.append(SlabCache(fields[0], n[0], n[1], n[2], n[3], n[4], sd[0], sd[1]))
    return out
