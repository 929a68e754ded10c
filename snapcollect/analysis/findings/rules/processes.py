"""Processes: who grew during the window, and who holds most of the RAM.

Input: the per-tick pass over all processes (``series/procs``: the
/proc/PID/stat line, RSS in pages converted to kB by the parser), a
process being told apart from a reused pid by its start time:

    4711 (java) S 1 4711 4711 0 -1 4194560 912 0 0 0 ... 1830 ... 524288 ...
"""

from __future__ import annotations

from snapcollect.analysis.findings.rule import Hit, rule
from snapcollect.analysis.wording import hms, human_kb

HUGE_SHARE_PCT = 50.0     # oomd kill_by_memory_size_or_growth: size_threshold 50%


@rule(
    key="TOP_GROWER", area="processes", severities=("INFO",),
    detects="A large process whose resident memory grew markedly during the window: the usual "
            "suspect when memory runs short.",
    title="{comm} (pid {pid}) grew {_growth}: {_first} -> {_peak}",
    explanation="Between {_t0} and {_t1} {comm} (pid {pid}) went from {_first} to {_peak} RSS "
                "({ratio:.1f}x){_others}. If this continues it will push the host into reclaim "
                "and OOM: check whether the growth is expected (cache warm-up, load) or a leak "
                "(the heap-growth and pmap sections show where).",
    threshold="RSS grows >= 1.25x and >= 64 MiB, for a process among the largest 20%",
    source="oomd kill_by_memory_size_or_growth defaults (growth ratio 1.25, size percentile "
           "80); 64 MiB floor: heuristic",
    needs=["series/procs"], section="top-processes")
def top_grower(m):
    gs = m.suspects
    if not gs:
        return None
    g = gs[0]
    others = ""
    if len(gs) > 1:
        others = "; also " + ", ".join(f"{x.comm} (pid {x.pid}) +{human_kb(x.growth_kb)}" for x in gs[1:4])
    return Hit("INFO", {
        "comm": g.comm, "pid": g.pid, "_growth": human_kb(g.growth_kb),
        "_first": human_kb(g.first_rss_kb), "_peak": human_kb(g.peak_rss_kb),
        "ratio": g.ratio, "_t0": hms(g.first_t), "_t1": hms(g.peak_t), "_others": others,
        "growers": [_growth_facts(x) for x in gs[:5]],
    }, ["series/procs"], (g.first_t, g.peak_t))


def _growth_facts(g) -> dict:
    return {"pid": g.pid, "comm": g.comm, "first_rss_kb": g.first_rss_kb, "peak_rss_kb": g.peak_rss_kb,
            "last_rss_kb": g.last_rss_kb, "growth_kb": g.growth_kb, "first_t": g.first_t,
            "peak_t": g.peak_t, "last_t": g.last_t, "ratio": g.ratio}


@rule(
    key="HUGE_PROCESS", area="processes", severities=("INFO",),
    detects="One process holding half of the RAM or more: it is the OOM killer's first choice "
            "and the first place to look.",
    title="{comm} (pid {pid}) holds {pct:.0f}% of RAM ({_rss})",
    explanation="{comm} (pid {pid}) had {_rss} resident at {_at}, {pct:.0f}% of MemTotal. Whether "
                "this is expected (a database's buffer pool, a JVM heap) decides whether the host "
                "is simply too small or the process is misconfigured; its pmap section shows "
                "what the memory is.",
    threshold="RSS >= 50% of MemTotal",
    source="oomd kill_by_memory_size_or_growth default size_threshold 50%",
    needs=[("series/procs", "procs/top"), ("series/proc/meminfo", "proc/meminfo@end")],
    section="top-processes")
def huge_process(m):
    ds = m.ds
    # The MemTotal the ps/top table's %MEM divides by.
    total = m.mem_total_kb
    if not total:
        return None
    best = None
    for p in m.lives:
        if best is None or p.peak_rss_kb > best[0]:
            best = (p.peak_rss_kb, p.pid, p.comm, p.peak_t, "series/procs")
    if best is None:
        for d in ds.top:
            if d.rss_kb and (best is None or d.rss_kb > best[0]):
                best = (d.rss_kb, d.pid, d.comm, ds.end.t, "procs/top")
    if best is None:
        return None
    rss, pid, comm, t, art = best
    pct = 100.0 * rss / total
    if pct < HUGE_SHARE_PCT:
        return None
    return Hit("INFO", {"comm": comm, "pid": pid, "pct": pct, "_rss": human_kb(rss), "rss_kb": rss,
                        "_at": hms(t), "MemTotal_kb": total}, [art], (t, t) if t else None)
