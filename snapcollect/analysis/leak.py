"""Growth as a leak: a sustained rate, and the time left until memory runs out at that rate.

A grower (``processes.Growth``) whose RSS + swap rose at a steady rate
(``trend``: a line fits it; a step is never extrapolated) is a leak
candidate. What runs out first decides the time left:

- its memory cgroup's limit, when it has one: ``limit - usage`` at the
  end (``procs/memory@end`` gives the process's cgroup and that group's
  usage and limit; else the group's figures in ``cgroups/memory@end``);
  the kernel reclaims, then OOM-kills inside the group when it is full;
- the host's MemAvailable at the end (``series/proc/meminfo``), the
  estimate of what can be allocated without swapping.

The smaller one wins; both are kept so the finding can say which it
used. Only processes alive at the end of the window, and still growing then,
have a time left: one that stopped growing (flat for ``STOPPED_INTERVALS``
intervals after its peak) is not extrapolated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from snapcollect.analysis import series
from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.meminfo import mem_available_kb
from snapcollect.analysis.processes import MIN_SUSPECT_KB, Growth
from snapcollect.bundle.names import CGROUPS_MEMORY, PROCS_MEMORY, SERIES_PROCS, end_of

MIN_LEAK_KB = MIN_SUSPECT_KB        # growth worth calling a leak: TOP_GROWER's 64 MiB floor
STOPPED_INTERVALS = 3               # no new peak for this many intervals: it stopped growing


@dataclass(frozen=True)
class Leak:
    growth: Growth
    rate_kb_s: float
    cgroup: str | None              # the process's memory cgroup at the end ("" / None: unknown)
    cgroup_limit_kb: int | None     # None: no limit (or unknown)
    cgroup_usage_kb: int | None
    available_kb: int | None        # MemAvailable at the end
    headroom_kb: int | None         # what runs out first, kB
    runs_out: str | None            # "cgroup" or "MemAvailable"
    seconds_left: float | None
    artifacts: tuple[str, ...]
    stopped_t: float | None = None  # its peak, when it stopped growing before the end

    @property
    def pid(self) -> int:
        return self.growth.pid


def _cgroup_of(ds: Dataset, pid: int) -> tuple[str | None, int | None, int | None, str | None]:
    """(cgroup path, limit kB, usage kB, artifact) of ``pid`` at the end."""
    rows = ds.end.proc_memory or []
    path = next((p.cgroup for p in rows if p.pid == pid), None)
    if not path:
        return None, None, None, None
    lim = (ds.end.cgroup_limits or {}).get(path)
    if lim is not None and lim.usage_bytes is not None:
        return (path, None if lim.limit_bytes is None else lim.limit_bytes // 1024, lim.usage_bytes // 1024,
                end_of(PROCS_MEMORY))
    g = (ds.end.memcgs or {}).get(path)
    if g is not None and g.usage_bytes is not None:
        return (path, None if g.limit_bytes is None else g.limit_bytes // 1024, g.usage_bytes // 1024,
                end_of(CGROUPS_MEMORY))
    return path, None, None, end_of(PROCS_MEMORY)


def leaks(ds: Dataset, grown: Sequence[Growth]) -> list[Leak]:
    """The steady growers of >= ``MIN_LEAK_KB``, with their time left; soonest to run out first."""
    end_t = ds.procs[-1].t if ds.procs else None
    meminfo, mi_art, _ = series.at(ds, "meminfo", "end")
    available = mem_available_kb(meminfo) if meminfo else None
    out = []
    for g in grown:
        rate = g.rate_kb_s
        if rate is None or rate <= 0 or g.growth_kb < MIN_LEAK_KB:
            continue
        arts = [SERIES_PROCS]
        path, limit, usage, cg_art = (None, None, None, None)
        alive = end_t is not None and g.last_t >= end_t
        stopped = g.peak_t if g.last_t - g.peak_t >= STOPPED_INTERVALS * ds.interval_s else None
        alive = alive and stopped is None
        if alive:
            path, limit, usage, cg_art = _cgroup_of(ds, g.pid)
        options = []
        if alive and limit is not None and usage is not None:
            options.append((max(0, limit - usage), "cgroup"))
            arts.append(cg_art)
        if alive and available is not None:
            options.append((available, "MemAvailable"))
            arts.append(mi_art)
        headroom, which = min(options) if options else (None, None)
        out.append(Leak(g, rate, path, limit, usage, available, headroom, which,
                        headroom / rate if headroom is not None else None, tuple(dict.fromkeys(arts)),
                        stopped))
    out.sort(key=lambda x: (x.seconds_left if x.seconds_left is not None else float("inf"), -x.rate_kb_s))
    return out
