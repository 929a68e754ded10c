"""Output of ``free -w`` (procps-ng), kept to cross-check /proc/meminfo.

Sample (procps-ng 4.0.2, kB)::

                   total        used        free      shared     buffers       cache   available
    Mem:        24684084      518924    24013860        8872        1472      412544    24165160
    Swap:              0           0           0
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError, to_int


def parse_free(text: str) -> dict[str, dict[str, int]]:
    """``{"Mem": {"total": ..., "used": ..., ...}, "Swap": {...}}`` (kB)."""
    lines = [l for l in text.splitlines() if l.strip()]
    if not lines or "total" not in lines[0]:
        raise ParseError("free: missing the 'total used free ...' header")
    header = lines[0].split()
    out: dict[str, dict[str, int]] = {}
    for line in lines[1:]:
        label, sep, rest = line.partition(":")
        if not sep:
            raise ParseError(f"free: unexpected line {line.strip()[:80]!r}")
        values = rest.split()
        out[label.strip()] = {h: to_int(v, "free", line) for h, v in zip(header, values)}
    if "Mem" not in out:
        raise ParseError("free: no 'Mem:' line")
    return out
