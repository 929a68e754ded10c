"""/proc/vmstat: virtual memory counters and gauges, ``name value`` lines.

Sample (kernel 6.18)::

    nr_free_pages 1009472
    pgpgin 1734577
    pgscan_kswapd 0
    pgsteal_anon 0

Counters are cumulative since boot (events or pages); ``nr_*`` are gauges
in pages; pgpgin/pgpgout are KiB despite their names. Names change with
kernel versions (before 4.8 the reclaim counters were per zone, e.g.
``pgscan_kswapd_normal``; pgsteal_anon/file appeared in 5.8). The parser
keeps the kernel's names as they are; analysis.rates.vm_counter folds the
old per-zone names.
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError


def parse_vmstat(text: str) -> dict[str, int]:
    words = text.split()
    # One split of the whole text is several times faster than a loop
    # over lines; a file whose words do not pair up is checked line by line
    # to name the bad line.
    if not words or len(words) % 2:
        for line in text.splitlines():
            if line.split() and len(line.split()) != 2:
                raise ParseError(f"vmstat: unexpected line {line.strip()[:80]!r}")
        raise ParseError("vmstat: empty")
    try:
        return dict(zip(words[::2], map(int, words[1::2])))
    except ValueError:
        for line in text.splitlines():
            parts = line.split()
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise ParseError(f"vmstat: unexpected line {line.strip()[:80]!r}") from None
        raise ParseError("vmstat: unexpected content") from None
