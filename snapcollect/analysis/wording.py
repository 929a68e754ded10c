"""How the sentences of analysis write a time, a size, a latency, an OOM victim.

Findings, timeline events and the verdict are sentences ("java (pid 4711)
grew 1.2 GiB: 310.5 MiB -> 1.5 GiB") that analysis composes, and that
every output (Markdown, HTML, PDF, JSON) prints as they are: the verdict
is built from the findings' titles, and JSON consumers get the same
words as the reader. So the few words those sentences need are written
here, once; the numbers themselves travel as typed values in the
finding's evidence. Tables and every other number of the report are
formatted by ``report.formatting`` from raw values.
"""

from __future__ import annotations

import time

from snapcollect.parsers.records import OomKill


def hms(t: float | None) -> str:
    """Bundle-clock time as HH:MM:SS UTC (the report's time column)."""
    if t is None:
        return "?"
    return time.strftime("%H:%M:%S", time.gmtime(t))


def human_kb(kb: float | None) -> str:
    """A size in kB as the sentence says it: ``1.5 GiB``, ``310.5 MiB``, ``512 kB``."""
    if kb is None:
        return "?"
    for unit, div in (("GiB", 1024 ** 2), ("MiB", 1024)):
        if abs(kb) >= div:
            return f"{kb / div:.1f} {unit}"
    return f"{kb:.0f} kB"


def human_ms(us: float) -> str:
    """A latency in microseconds as milliseconds (one decimal below 10 ms)."""
    ms = us / 1000
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def kill_label(k: OomKill) -> str:
    """``java (pid 4711, anon-rss 1.2 GiB)``."""
    s = f"{k.victim_comm} (pid {k.victim_pid}"
    if k.anon_rss_kb is not None:
        s += f", anon-rss {human_kb(k.anon_rss_kb)}"
    return s + ")"
