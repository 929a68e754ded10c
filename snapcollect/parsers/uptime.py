"""/proc/uptime: seconds since boot, and idle seconds summed over CPUs.

Sample::

    12345.67 45678.90

sysstat divides counter deltas by the delta of the first field (its
interval), so rates here do too (``analysis.rates``).
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError


def parse_uptime(text: str) -> float:
    """The first field: seconds since boot."""
    try:
        return float(text.split()[0])
    except (IndexError, ValueError):
        raise ParseError(f"uptime: unexpected content {text.strip()[:40]!r}") from None
