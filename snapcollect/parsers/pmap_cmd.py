"""Output of ``pmap -x PID`` (procps-ng), kept to cross-check smaps.

Sample (procps-ng 4.0.2)::

    7065:   /usr/bin/python3 -c ...
    Address           Kbytes     RSS   Dirty Mode  Mapping
    000055b10a42b000       4       4       0 r---- python3.11
    00007f69a17a5000   49156   49156   49156 rw---   [ anon ]
    ---------------- ------- ------- -------
    total kB           71760   64620   58288
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError, to_int


def parse_pmap_x(text: str) -> tuple[list[dict], dict[str, int]]:
    """(rows, total): rows of {address, kbytes, rss_kb, dirty_kb, mode, mapping}."""
    rows: list[dict] = []
    total: dict[str, int] | None = None
    seen_header = False
    for line in text.splitlines():
        if line.startswith("Address"):
            seen_header = True
            continue
        if not seen_header or not line.strip() or line.startswith("---"):
            continue
        if line.startswith("total"):
            parts = line.split()
            if len(parts) < 5:
                raise ParseError(f"pmap -x: unexpected total line {line.strip()[:80]!r}")
            total = {"kbytes": to_int(parts[2], "pmap", line), "rss_kb": to_int(parts[3], "pmap", line),
                     "dirty_kb": to_int(parts[4], "pmap", line)}
            continue
        parts = line.split(None, 5)
        if len(parts) < 6:
            raise ParseError(f"pmap -x: unexpected line {line.strip()[:80]!r}")
        try:
            address = int(parts[0], 16)
        except ValueError:
            raise ParseError(f"pmap -x: address {parts[0][:20]!r} is not hexadecimal") from None
        rows.append({"address": address, "kbytes": to_int(parts[1], "pmap", line),
                     "rss_kb": to_int(parts[2], "pmap", line), "dirty_kb": to_int(parts[3], "pmap", line),
                     "mode": parts[4], "mapping": parts[5].strip()})
    if not seen_header or total is None:
        raise ParseError("pmap -x: no 'Address ... Mapping' header or no 'total kB' line")
    return rows, total
