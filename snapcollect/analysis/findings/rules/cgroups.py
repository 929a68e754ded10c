"""Memory cgroups at or near their limit, from usage against the limit over time.

Input: the model's cgroup series (``analysis.cgroup_series``: the
``series/cgroups/memory`` samples, else the start/end snapshots), v1 and
v2::

    v2: memory.current 536608768  memory.max 536870912  memory.events max 12
    v1: memory.usage_in_bytes 536608768  memory.limit_in_bytes 536870912
        memory.failcnt 0  (stays 0 when memsw.limit equals the limit: the
        memsw counter is the one that hits, memory.memsw.failcnt)

Also the words the reclaim and pressure findings use to say which cgroup
their reclaim ran in and what to do about it (``where_reclaim``).
"""

from __future__ import annotations

from snapcollect.analysis import series
from snapcollect.analysis.cgroup_series import NEAR_PCT, ROOT, CgroupSeries, within
from snapcollect.analysis.findings.rule import Hit, rule
from snapcollect.analysis.meminfo import mem_available_kb
from snapcollect.analysis.wording import human_kb, human_ms
from snapcollect.bundle.names import CGROUPS_MEMORY, SERIES_CGROUPS_MEMORY, end_of

HELD_SHARE = 0.5          # heuristic: "held" = at least half of the time the series covers
UNRECLAIMABLE_SHARE = 0.8  # heuristic: anon + shmem + kernel >= 80% of the limit: reclaim cannot make room
STALL_FELT_MAX_US = 10_000       # heuristic: one 10 ms stall is a hitch a user can notice
STALL_FELT_TOTAL_US = 100_000    # heuristic: or 100 ms stalled in all over the window
HOST_AMPLE_PCT = 10.0     # MemAvailable at or above 10% of MemTotal all along: the host was not short
MAX_TASKS_NAMED = 5


def _mib(b: float | None) -> str:
    return human_kb(b / 1024) if b is not None else "?"


def task_names(m, pids, most: int = MAX_TASKS_NAMED) -> str:
    """"comm (pid N), ..." for the pids, the largest RSS first; pids never seen by the process pass by number."""
    by_pid = {}
    for life in m.lives:
        if life.pid in pids and (life.pid not in by_pid or life.t_last > by_pid[life.pid].t_last):
            by_pid[life.pid] = life
    seen = sorted(by_pid.values(), key=lambda l: (-l.peak_rss_kb, l.pid))
    names = [f"{l.comm} (pid {l.pid})" for l in seen]
    names += [f"pid {p}" for p in pids if p not in by_pid]
    if not names:
        return "not recorded (the bundle has no cgroup.procs of the group)"
    more = len(names) - most
    return ", ".join(names[:most]) + (f" and {more} more" if more > 0 else "")


def fill_words(g: CgroupSeries) -> str:
    f = g.fill
    if f is None:
        return "memory.stat was not read, so what fills it is not known"
    kernel = "kernel" if g.version == 2 else "kernel and other"
    words = (f"anon {_mib(f.anon)}, file cache {_mib(f.file)}, shmem {_mib(f.shmem)}, "
             f"{kernel} {_mib(f.kernel)}")
    if not fill_at_limit(g):
        words += (f" at its fullest sample ({g.peak_pct:.1f}% of the limit); what filled it when it hit the "
                  "limit was not sampled")
    return words


def host_ample(m) -> tuple[bool, int | None]:
    """Did MemAvailable stay at or above HOST_AMPLE_PCT of MemTotal (and its lowest value, kB)?"""
    pts = series.samples(m.ds, "meminfo")
    lows = [(mem_available_kb(v), v.get("MemTotal")) for _t, v in pts]
    lows = [(a, t) for a, t in lows if a is not None and t]
    if not lows:
        return False, None
    low = min(lows, key=lambda x: x[0])
    return all(100.0 * a / t >= HOST_AMPLE_PCT for a, t in lows), low[0]


def stalls_felt(max_us: float, total_us: float) -> bool:
    return max_us >= STALL_FELT_MAX_US or total_us >= STALL_FELT_TOTAL_US


def thrashing_group(m, path: str | None) -> str | None:
    """The thrashing cgroup ``path`` is in, if any (its stalls belong to PAGECACHE_THRASHING)."""
    if path is None:
        return None
    for th in m.thrashing:
        if th.where != "host" and within(path, th.where):
            return th.where
    return None


def where_reclaim(m, stall_groups) -> tuple[str | None, str]:
    """(the cgroup the reclaim ran in, advice that fits it) for the given stalls.

    A group is named when most of the stalled time was in its tasks. The
    advice is about the group's limit when the host had memory to spare
    (so host sysctls such as vm.min_free_kbytes would not help), else about
    the host's free memory.
    """
    total = sum(g.total_us for g in stall_groups)
    top = next((g for g in stall_groups if g.path not in (None, ROOT)), None)
    ample, low = host_ample(m)
    if top is not None and total > 0 and top.total_us >= 0.5 * total:
        g = m.cgroups.get(top.path)
        lim = f" (limit {_mib(g.limit_bytes)}, up to {g.peak_pct:.1f}% used)" if g and g.peak_pct else ""
        if ample:
            return top.path, (f"The reclaim ran at the limit of memory cgroup {top.path}{lim}, not for "
                              f"lack of host memory (MemAvailable stayed at or above {human_kb(low)}): "
                              f"raise that group's memory limit, or reduce what fills it (see "
                              f"MEMCG_AT_LIMIT); host settings such as vm.min_free_kbytes do not help here.")
        return top.path, (f"Most of it was in memory cgroup {top.path}{lim}, and the host was short of "
                          f"memory too: raise the group's limit only with memory to back it; free memory "
                          f"on the host (or raise vm.min_free_kbytes / vm.watermark_scale_factor so "
                          f"kswapd starts earlier).")
    return None, ("kswapd could not keep free memory above the low watermark, or a cgroup is at its "
                  "limit. Free memory (or raise the limit), or raise vm.min_free_kbytes / "
                  "vm.watermark_scale_factor so kswapd starts earlier.")


def fill_at_limit(g: CgroupSeries) -> bool:
    """Was memory.stat read at a sample near the limit (so it says what filled the group there)?"""
    return g.fill is not None and g.peak_pct is not None and g.peak_pct >= NEAR_PCT


def squeezed(g: CgroupSeries) -> bool:
    """Did anon, shmem and kernel memory, read near the limit, fill the group?

    Then its page cache has the rest of the limit only: when that cache
    thrashes, the cause is what fills the group, and the limit is the
    finding, not the thrashing alone.
    """
    return fill_at_limit(g) and g.fill.unreclaimable >= UNRECLAIMABLE_SHARE * g.limit_bytes


def _state(m, g: CgroupSeries) -> tuple[str, str] | None:
    """(severity, state) of one group: at its limit, close to it, or None."""
    if g.path == ROOT or g.collector_only or not g.limit_bytes or g.worst is None or g.peak_pct is None:
        return None
    if g.timed:
        held = g.at_limit_s >= HELD_SHARE * g.covered_s
        near = g.at_near_s >= HELD_SHARE * g.covered_s
    else:                      # one sample: that is all there is
        held = g.peak_pct >= 99.0
        near = g.peak_pct >= 90.0
    hits = any(g.events.get(e) for e in ("max", "failcnt", "memsw_failcnt"))
    if not (held or near or hits):
        return None
    at = held or hits
    if not at:
        return "INFO", "near"
    if thrashing_group(m, g.path) and not squeezed(g):
        return "INFO", "at"     # what its tasks feel is the thrashing (PAGECACHE_THRASHING)
    # Without memory.stat read near the limit what filled it there is
    # unknown (two snapshots of a group that emptied in between): it is
    # not called harmless cache.
    unreclaimable = not fill_at_limit(g) or squeezed(g)
    mine = [s for s in m.stall_groups if s.path is not None and within(s.path, g.path)]
    felt = stalls_felt(max((s.max_us for s in mine), default=0), sum(s.total_us for s in mine))
    return ("WARN" if unreclaimable or felt else "INFO"), "at"


@rule(
    key="MEMCG_AT_LIMIT", area="oom", severities=("WARN", "INFO"),
    detects="A memory cgroup held at (or close to) its limit over the window, from usage against "
            "the limit at every sample, not only the limit-hit counters: allocations in it must "
            "reclaim inside the group, then fail or be OOM-killed.",
    title="Memory cgroup {group} {_state}",
    explanation="{group} used {_usage} of its {_limit} limit at worst ({pct:.1f}%), {_held}. What "
                "fills it: {_fill}. Its tasks: {_tasks}. {_reclaim}{_advice}",
    threshold="usage >= 99% of the limit (v2 memory.max, or memory.high when lower; v1 "
              "limit_in_bytes) for >= half the series, or memory.events max / failcnt / memsw.failcnt "
              "rising: WARN when anon + shmem + kernel fill >= 80% of the limit (or memory.stat is "
              "missing) or its tasks' reclaim stalls reach 10 ms (or 100 ms in all), else INFO (also "
              "when its page cache thrashes and anon + shmem + kernel do not fill it: PAGECACHE_THRASHING); usage >= 90% for >= half the series: INFO",
    source="kernel Documentation/admin-guide/cgroup-v2.rst (memory.max, memory.events), "
           "cgroup-v1/memory.rst (failcnt); 99% / 90% / 80% / 10 ms: heuristic",
    needs=[(SERIES_CGROUPS_MEMORY, end_of(CGROUPS_MEMORY))], section="cgroups")
def memcg_at_limit(m):
    graded = []
    for g in m.cgroups.values():
        st = _state(m, g)
        if st is not None:
            graded.append((st, g))
    if not graded:
        return None
    order = {"WARN": 0, "INFO": 1}
    graded.sort(key=lambda x: (order[x[0][0]], x[0][1] != "at", -x[1].at_limit_s, -(x[1].peak_pct or 0),
                               x[1].path))
    (sev, state), g = graded[0]
    tasks = task_names(m, g.tasks)
    first_task = task_names(m, g.tasks, most=1) if g.tasks else ""
    tail = f"; tasks: {first_task}" if first_task else ""
    headroom = g.limit_bytes - (g.worst.usage_bytes or 0)
    mine = [s for s in m.stall_groups if s.path is not None and within(s.path, g.path)]
    events = ", ".join(f"{k} +{v}" for k, v in sorted(g.events.items()))
    if state == "near":
        title = (f"is close to its limit: {g.peak_pct:.0f}% ({_mib(g.worst.usage_bytes)} of "
                 f"{_mib(g.limit_bytes)}){tail}")
        held = (f"at 90% of it or more for {g.at_near_s:.0f} s of {g.covered_s:.0f} s" if g.timed
                else "at the end of the window (no cgroup series: how long is not known)")
        reclaim = (f"Nothing in the group reached the limit in the window, so no task had to reclaim "
                   f"for it yet; {_mib(headroom)} is left before it does. ")
        advice = "If the workload is meant to grow, raise the limit before it gets there."
    else:
        filled = g.fill.largest() if fill_at_limit(g) else "unknown"
        if g.timed and g.at_limit_s >= HELD_SHARE * g.covered_s:
            title = (f"held at its limit ({_mib(g.limit_bytes)}) for {g.at_limit_s:.0f} s of "
                     f"{g.covered_s:.0f} s, filled by {filled}{tail}")
        else:
            title = f"hit its limit ({_mib(g.limit_bytes)}): {events}, filled by {filled}{tail}"
        held = ((f"at 99% of it or more for {g.at_limit_s:.0f} s of {g.covered_s:.0f} s" if g.timed
                 else "how long at the limit is not known (no cgroup series, only the start and end snapshots)")
                + (f" (limit events: {events})" if events else ""))
        if mine:
            n = sum(len(s.stalls) for s in mine)
            reclaim = (f"Its tasks stalled in reclaim {n} time(s), {human_ms(sum(s.total_us for s in mine))} "
                       f"in all, the longest {human_ms(max(s.max_us for s in mine))}. ")
        else:
            reclaim = "No reclaim stall of its tasks was recorded. "
        if thrashing_group(m, g.path) and sev == "WARN":
            advice = ("Anon, shmem and kernel memory fill it and leave its page cache too little room, so "
                      "the cache thrashes (PAGECACHE_THRASHING): its tasks read their files and code back "
                      "from disk. Raise the group's limit (memory.max, v1 memory.limit_in_bytes) to what "
                      "the workload needs, or find what grows in it.")
        elif thrashing_group(m, g.path):
            advice = "Its page cache thrashes: see PAGECACHE_THRASHING."
        elif sev == "WARN" and not fill_at_limit(g):
            advice = ("Each limit hit means reclaim inside the group and, if it cannot free enough, an OOM "
                      "kill. Raise the group's limit (memory.max, v1 memory.limit_in_bytes) to what the "
                      "workload needs, or reduce its memory.")
        elif sev == "WARN":
            advice = ("Reclaim cannot make room: anon, shmem and kernel memory fill it, and they go only "
                      "to swap. The next allocations stall in reclaim or end in an OOM kill inside the "
                      "group. Raise the group's limit (memory.max, v1 memory.limit_in_bytes) to what the "
                      "workload needs, or find what grows in it.")
        else:
            advice = ("Mostly page cache, which reclaim drops cheaply: normal for a group that reads "
                      "files, unless its tasks stall.")
    def timed(seconds: float) -> float | None:
        # measured over time only with the series; from two snapshots it is unknown
        return seconds if g.timed else None

    return Hit(sev, {
        "group": g.path, "_state": title, "_usage": _mib(g.worst.usage_bytes), "_limit": _mib(g.limit_bytes),
        "pct": g.peak_pct, "_held": held, "_fill": fill_words(g), "_tasks": tasks, "_reclaim": reclaim,
        "_advice": advice,
        "usage_bytes": g.worst.usage_bytes, "limit_bytes": g.limit_bytes, "at_limit_s": timed(g.at_limit_s),
        "at_near_s": timed(g.at_near_s), "covered_s": g.covered_s, "events_rise": dict(g.events),
        "fill": None if g.fill is None else {"anon": g.fill.anon, "file": g.fill.file, "shmem": g.fill.shmem,
                                             "kernel": g.fill.kernel},
        "tasks": list(g.tasks[:20]),
        "groups": [{"path": x.path, "severity": s[0], "state": s[1], "pct": x.peak_pct,
                    "at_limit_s": x.at_limit_s, "limit_bytes": x.limit_bytes} for s, x in graded[:5]],
    }, list(g.source), (g.samples[0].t, g.samples[-1].t) if len(g.samples) > 1 else series.vm_window(m.ds))
