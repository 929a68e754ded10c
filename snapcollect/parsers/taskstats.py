"""Parser of the ``delay/taskstats`` stream: per-process delay accounting reads.

Each record is one taskstats reply the collector got (``struct taskstats``
of ``include/uapi/linux/taskstats.h``, summed over a thread group): ``t``,
``pid``, ``comm``, ``phase`` (start / tick / end) and the delay counts and
totals in ns (``swapin_*``, ``freepages_*`` for direct reclaim,
``thrashing_*``, ``compact_*``, ...), ``starttime`` (stat field 22, clock
ticks since boot) and ``counted``: false for a process started before the
collector switched delay accounting on, which the kernel gave no delay
record (its zeros are not "no wait"); absent or not a boolean: unknown
(None). Hostile input: a record that is not
an object, has no integer pid or time, or carries a non-integer counter is
dropped and counted, never raised on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("swapin", "freepages", "thrashing", "compact")
MAX_NS = 1 << 63


@dataclass(frozen=True)
class DelayRead:
    t: float
    pid: int
    comm: str
    phase: str
    counts: dict[str, int] = field(default_factory=dict)     # kind -> number of waits
    totals_ns: dict[str, int] = field(default_factory=dict)  # kind -> summed wait, ns
    counted: bool | None = None      # False: started before delay accounting was switched on
    starttime: int | None = None     # clock ticks since boot


def _int(v) -> int | None:
    if type(v) is int and 0 <= v < MAX_NS:
        return v
    return None


def parse_delay_records(records) -> tuple[list[DelayRead], int]:
    """(reads sorted by time, how many records were dropped as malformed)."""
    out: list[DelayRead] = []
    bad = 0
    for rec in records if isinstance(records, list) else []:
        if not isinstance(rec, dict):
            bad += 1
            continue
        pid, t = _int(rec.get("pid")), rec.get("t")
        if pid is None or type(t) not in (int, float) or t != t or abs(t) > 1e12:
            bad += 1
            continue
        counts, totals = {}, {}
        for kind in KINDS:
            c, d = _int(rec.get(f"{kind}_count")), _int(rec.get(f"{kind}_delay_total"))
            if c is not None and d is not None:
                counts[kind], totals[kind] = c, d
        comm = rec.get("comm")
        phase = rec.get("phase")
        counted = rec.get("counted")
        out.append(DelayRead(float(t), pid, comm[:64] if isinstance(comm, str) else "",
                             phase if isinstance(phase, str) else "", counts, totals,
                             counted if type(counted) is bool else None, _int(rec.get("starttime"))))
    out.sort(key=lambda r: (r.t, r.pid))
    return out, bad
