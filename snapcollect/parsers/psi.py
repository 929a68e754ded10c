"""/proc/pressure/memory (and cgroup v2 memory.pressure): PSI, 4.20+.

Sample (kernel 6.18, a memory cgroup swapping)::

    some avg10=19.83 avg60=7.32 avg300=1.74 total=5844079
    full avg10=19.74 avg60=7.26 avg300=1.73 total=5803851

avg* are percentages of wall time over 10/60/300 s; total is cumulative
stall time in microseconds. The ``full`` line is always present for
memory, but be lenient: a missing line is ``None``.
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError
from snapcollect.parsers.records import Psi, PsiLine


def _line(line: str) -> tuple[str, PsiLine]:
    kind, *pairs = line.split()
    vals: dict[str, str] = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep:
            raise ParseError(f"pressure: unexpected field {p!r} in {line.strip()[:80]!r}")
        vals[k] = v
    try:
        return kind, PsiLine(float(vals["avg10"]), float(vals["avg60"]), float(vals["avg300"]),
                             int(vals["total"]))
    except (KeyError, ValueError):
        raise ParseError(f"pressure: unexpected line {line.strip()[:80]!r}") from None


def parse_psi(text: str) -> Psi:
    lines = dict(_line(line) for line in text.splitlines() if line.strip())
    if "some" not in lines:
        raise ParseError("pressure: no 'some' line")
    return Psi(some=lines["some"], full=lines.get("full"))
