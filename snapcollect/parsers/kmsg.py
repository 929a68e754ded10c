"""Kernel log records of the ``kmsg`` stream (from /dev/kmsg, 3.5+).

The collector stores one JSON record per message::

    {"seq": 345, "ts_us": 681491492, "prio": 6, "facility": 0,
     "text": "Adding 262140k swap on /var/tmp/snapfix.swap.  Priority:-2 ...",
     "before_window": true}

/dev/kmsg escapes every byte below 0x20 or from 0x7f up, and the
backslash, as ``\\xHH``. A record may hold several lines: 6.1 sends the
OOM killer's "Memory cgroup stats" block as one record joined with
``\\x0a`` (6.5+ sends one record per line), so a record becomes one
``KmsgLine`` per line, all with the record's seq and time.

``ts_us`` is the kernel's timestamp (local_clock, which runs with
CLOCK_MONOTONIC and, like it, stops during suspend); the manifest's
``clock`` pair (wall and monotonic read together) converts it to the
bundle's wall clock.
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError
from snapcollect.parsers.records import KmsgLine

# A newline inside a record, as /dev/kmsg escapes it.
_ESCAPED_NEWLINE = "\\x0a"


def parse_kmsg(records: list[dict], clock: dict | None = None) -> list[KmsgLine]:
    """Records in kernel order; ``t`` is None when the bundle has no clock pair."""
    wall = mono = None
    if clock and "wall" in clock and "monotonic" in clock:
        wall, mono = float(clock["wall"]), float(clock["monotonic"])
    out = []
    for r in records:
        try:
            ts = int(r["ts_us"])
            t = wall + ts / 1e6 - mono if wall is not None else None
            seq, prio, before = int(r["seq"]), int(r.get("prio", 6)), bool(r.get("before_window"))
            text = str(r.get("text", ""))
        except (KeyError, TypeError, ValueError):
            raise ParseError(f"kmsg: record without seq/ts_us: {str(r)[:80]!r}") from None
        lines = text.split(_ESCAPED_NEWLINE)
        if len(lines) > 1 and not lines[-1]:
            lines.pop()         # the record ended with a newline
        out.extend(KmsgLine(seq=seq, ts_us=ts, t=t, prio=prio, text=line, before_window=before)
                   for line in lines)
    # Stable: the lines of one record keep their order.
    out.sort(key=lambda k: k.seq)
    return out
