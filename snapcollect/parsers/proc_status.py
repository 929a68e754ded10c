"""/proc/PID/status: ``Name: value`` lines, kept as text.

Sample (kernel 6.18)::

    Name:   python3
    VmRSS:     64620 kB
    VmSwap:        0 kB
"""

from __future__ import annotations


def parse_status(text: str) -> dict[str, str]:
    """``{"Name": "python3", "VmRSS": "64620 kB", ...}``; lines without a colon are skipped."""
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k] = v.strip()
    return out


def kb_field(status: dict[str, str], name: str) -> int | None:
    """A ``NNN kB`` field of a parsed status as an int, None when absent or not a number."""
    v = status.get(name)
    try:
        return int(str(v).split()[0]) if v is not None else None
    except (ValueError, IndexError):
        return None
