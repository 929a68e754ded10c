"""Output of ``vmstat -s`` (procps-ng): a list of labelled counters.

Sample (procps-ng 4.0.2)::

         24684084 K total memory
           518912 K used memory
           412556 K swap cache
          5167613 K paged in
           714198 pages swapped in
       1795313379 boot time

Labels are kept verbatim (their wording differs between procps
versions: "pages paged in" in 3.3, "K paged in" in 4.0).
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError, to_int


def parse_vmstat_s(text: str) -> list[tuple[str, int, str]]:
    """``[(label, value, unit)]`` in output order; unit is "K" or ""."""
    out = []
    for line in text.splitlines():
        parts = line.split(None, 1)
        if not parts:
            continue
        if len(parts) != 2:
            raise ParseError(f"vmstat -s: unexpected line {line.strip()[:80]!r}")
        value = to_int(parts[0], "vmstat -s", line)
        label = parts[1].strip()
        unit = ""
        if label.startswith("K "):
            unit, label = "K", label[2:]
        out.append((label, value, unit))
    if not out:
        raise ParseError("vmstat -s: empty")
    return out
