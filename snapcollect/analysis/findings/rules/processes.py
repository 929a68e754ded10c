"""Processes: who grew during the window, and who holds most of the RAM.

Input: the per-tick pass over all processes (``series/procs``: the
/proc/PID/stat line, RSS in pages converted to kB by the parser), a
process being told apart from a reused pid by its start time:

    4711 (java) S 1 4711 4711 0 -1 4194560 912 0 0 0 ... 1830 ... 524288 ...
"""

from __future__ import annotations

from snapcollect.analysis.findings.rule import Hit, rule
from snapcollect.analysis.wording import hms, human_kb
from snapcollect.bundle.names import PROCS_TOP, PROC_MEMINFO, SERIES_PROCS, SERIES_PROC_MEMINFO, end_of

HUGE_SHARE_PCT = 50.0     # oomd kill_by_memory_size_or_growth: size_threshold 50%


@rule(
    key="TOP_GROWER", area="processes", severities=("INFO",),
    detects="A large process whose resident memory grew markedly during the window: the usual "
            "suspect when memory runs short.",
    title="{comm} (pid {pid}) grew {_growth}: {_first} -> {_peak}",
    explanation="Between {_t0} and {_t1} {comm} (pid {pid}) went from {_first} to {_peak} RSS + swap "
                "({ratio:.1f}x{_shape}){_others}. If this continues it will push the host into reclaim "
                "and OOM: check whether the growth is expected (cache warm-up, load) or a leak "
                "(the heap-growth and pmap sections show where).",
    threshold="RSS + swap grows >= 1.25x and >= 64 MiB, for a process among the largest 20%",
    source="oomd kill_by_memory_size_or_growth defaults (growth ratio 1.25, size percentile "
           "80); 64 MiB floor: heuristic",
    needs=[SERIES_PROCS], section="top-processes")
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
        "_first": human_kb(g.first_kb), "_peak": human_kb(g.peak_kb),
        "ratio": g.ratio, "_t0": hms(g.first_t), "_t1": hms(g.peak_t), "_others": others,
        "_shape": shape(g),
        "growers": [_growth_facts(x) for x in gs[:5]],
    }, [SERIES_PROCS], (g.first_t, g.peak_t))


def _growth_facts(g) -> dict:
    return {"pid": g.pid, "comm": g.comm, "first_kb": g.first_kb, "peak_kb": g.peak_kb,
            "last_kb": g.last_kb, "growth_kb": g.growth_kb, "first_t": g.first_t,
            "peak_t": g.peak_t, "last_t": g.last_t, "ratio": g.ratio, "rate_kb_s": g.rate_kb_s}


def shape(g) -> str:
    """", 38.5 MiB/s sustained" or ", a step of 1.5 GiB at 12:00:03" (trend.py); "" otherwise."""
    t = g.trend
    if t.kind == "steady":
        return f", {human_kb(t.rate_kb_s)}/s sustained"
    if t.kind == "step":
        return f", a step of {human_kb(t.step_kb)} at {hms(t.step_t1)}"
    return ""


# Time left below which a leak is a WARN: shorter than the time it takes
# to be paged, open the host and act (ten minutes: heuristic, the order of
# an on-call acknowledgement target), so a user will meet the OOM killer
# or the stalls before anyone has fixed it.
LEAK_WARN_S = 600.0


def _duration(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


@rule(
    key="MEMORY_LEAK", area="processes", severities=("WARN", "INFO"),
    detects="A process whose memory (RSS + swap) grew at a steady rate through the window, and "
            "how long until its cgroup's limit or the host's available memory runs out at that "
            "rate.",
    title="{comm} (pid {pid}) grows {_rate}/s: {_left}",
    explanation="From {_t0} to {_t1} {comm} (pid {pid}) grew at a steady {_rate}/s (a straight line "
                "fits its RSS + swap, r^2 {r2:.2f}), from {_first} to {_peak}. {_outlook} A "
                "steady rise that does not level off is how a leak looks; a cache warming up "
                "levels off. Check its heap-growth and pmap sections for where the memory goes, "
                "and restart or limit it before it runs out.",
    threshold="RSS + swap grows >= 64 MiB at a steady rate (least-squares line, r^2 >= 0.8, >= 3 "
              "intervals, no single interval holding half the rise); WARN when the time left at "
              "that rate is < 10 min",
    source="heuristic: 10 min is the order of an on-call acknowledgement target; the 64 MiB floor "
           "is TOP_GROWER's",
    needs=[SERIES_PROCS], section="top-processes")
def memory_leak(m):
    if not m.leaks:
        return None
    lk = m.leaks[0]
    g = lk.growth
    t = g.trend
    if lk.seconds_left is None:
        alive = bool(m.ds.procs) and g.last_t >= m.ds.procs[-1].t
        if lk.stopped_t is not None:
            left = f"until {hms(lk.stopped_t)}, then it stopped growing"
            outlook = "It stopped growing before the end of the window, so nothing is extrapolated."
        elif alive:
            left = "no limit or MemAvailable to extrapolate against"
            outlook = "The bundle has no cgroup limit or MemAvailable at the end to say when memory runs out."
        else:
            left = f"it ended at {hms(g.last_t)}"
            outlook = "It was gone before the end of the window."
        sev = "INFO"
    else:
        where = (f"its cgroup {lk.cgroup} ({human_kb(lk.cgroup_usage_kb)} of its {human_kb(lk.cgroup_limit_kb)} "
                 f"limit used)" if lk.runs_out == "cgroup" else
                 f"MemAvailable ({human_kb(lk.available_kb)} at the end)")
        left = f"{where.split(' (')[0]} runs out in {_duration(lk.seconds_left)} at this rate"
        outlook = (f"At this rate the {human_kb(lk.headroom_kb)} left in {where} is gone in "
                   f"{_duration(lk.seconds_left)}.")
        sev = "WARN" if lk.seconds_left < LEAK_WARN_S else "INFO"
    return Hit(sev, {
        "comm": g.comm, "pid": g.pid, "_rate": human_kb(lk.rate_kb_s), "_left": left, "r2": t.r2,
        "_t0": hms(t.fit_t0), "_t1": hms(t.fit_t1), "_first": human_kb(g.first_kb),
        "_peak": human_kb(g.peak_kb), "_outlook": outlook,
        "rate_kb_s": lk.rate_kb_s, "growth_kb": g.growth_kb, "first_kb": g.first_kb, "peak_kb": g.peak_kb,
        "seconds_left": lk.seconds_left, "headroom_kb": lk.headroom_kb, "runs_out": lk.runs_out,
        "cgroup": lk.cgroup, "cgroup_limit_kb": lk.cgroup_limit_kb, "cgroup_usage_kb": lk.cgroup_usage_kb,
        "MemAvailable_kb": lk.available_kb, "stopped_t": lk.stopped_t,
    }, list(lk.artifacts), (t.fit_t0, t.fit_t1))


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
    needs=[(SERIES_PROCS, PROCS_TOP), (SERIES_PROC_MEMINFO, end_of(PROC_MEMINFO))],
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
            best = (p.peak_rss_kb, p.pid, p.comm, p.peak_t, SERIES_PROCS)
    if best is None:
        for d in ds.top:
            if d.rss_kb and (best is None or d.rss_kb > best[0]):
                best = (d.rss_kb, d.pid, d.comm, ds.end.t, PROCS_TOP)
    if best is None:
        return None
    rss, pid, comm, t, art = best
    pct = 100.0 * rss / total
    if pct < HUGE_SHARE_PCT:
        return None
    return Hit("INFO", {"comm": comm, "pid": pid, "pct": pct, "_rss": human_kb(rss), "rss_kb": rss,
                        "_at": hms(t), "MemTotal_kb": total}, [art], (t, t) if t else None)
