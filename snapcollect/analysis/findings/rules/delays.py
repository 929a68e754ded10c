"""Processes slowed by memory: swap-in, direct reclaim and thrashing waits.

Input: kernel delay accounting per process (``delay/taskstats``: taskstats
netlink, ``swapin_delay_total``, ``freepages_delay_total``,
``thrashing_delay_total``, in ns, summed over the process's threads),
through the model's ``delays`` fact (analysis/delays.py).

Thresholds. 5% of the window waiting for swap-in is the level at which a
process's latency visibly suffers: it matches the WARN level of host PSI
``full`` used by PSI_PRESSURE (5%), now for one process, and 20% (HIGH) is
where systemd-oomd's default ManagedOOMMemoryPressureLimit (60% "some"
over 30 s) is a third of the way: a fifth of the time stalled on disk
reads is a process doing little else. Reclaim and thrashing waits use the
same levels: time a task spends in direct reclaim or waiting for a page
of its working set that was just evicted is time it is not running, like
a swap-in. The shares are of wall time; a process with many threads can
pass 100%.

Processes the kernel kept no delay record for (started before the
collector switched delay accounting on: ``DelayFacts.uncounted``) are never
read as "did not wait": a finding names them as not counted, and no rule
concludes anything from their zeros.
"""

from __future__ import annotations

from snapcollect.analysis.findings.rule import Hit, rule
from snapcollect.bundle.names import DELAY_TASKSTATS

WARN_SHARE = 0.05
HIGH_SHARE = 0.20
MAX_NAMED = 5


def _uncounted(d) -> str:
    """The followed processes whose zeros mean no record, not no wait."""
    if not d.uncounted:
        return ""
    names = ", ".join(f"{p.comm or '?'} (pid {p.pid})" for p in d.uncounted[:MAX_NAMED])
    more = f" and {len(d.uncounted) - MAX_NAMED} more" if len(d.uncounted) > MAX_NAMED else ""
    return (f" Not counted: {names}{more}, started before delay accounting was switched on (the kernel "
            "keeps no delay record for them; they may have waited too).")


def _over(mdl, kinds: tuple[str, ...]):
    d = mdl.delays
    if d is None or d.window_s <= 0:
        return None, []
    worst = []
    for p in d.procs:
        share = sum(p.share.get(k, 0.0) for k in kinds)
        if share >= WARN_SHARE:
            worst.append((share, p))
    worst.sort(key=lambda sp: (-sp[0], sp[1].pid))
    return d, worst


@rule(
    key="SWAPIN_STALLS", area="swap", severities=("HIGH", "WARN"),
    detects="A process spent a noticeable part of the window blocked reading its own pages back "
            "from swap: it is slowed by swapping, not merely holding swap.",
    title="{_name} (pid {pid}) waited {ms:.0f} ms for swap-in ({pct:.1f}% of the window, {count} waits)",
    explanation="Kernel delay accounting ({_state}) shows {_list}.{_uncounted} Each wait is a page fault that "
                "had to read the page from swap. The process's working set does not fit in the "
                "memory it is allowed: raise its (cgroup) limit, or find what pushed it out.",
    threshold="swap-in wait >= 5% of the window (WARN), >= 20% (HIGH), per process",
    source="kernel delay accounting (Documentation/accounting/delay-accounting.rst); levels of "
           "PSI_PRESSURE applied to one process",
    needs=[DELAY_TASKSTATS], section="delays")
def swapin_stalls(mdl):
    d, worst = _over(mdl, ("swapin",))
    if not worst:
        return None
    share, p = worst[0]
    listed = "; ".join(f"{q.comm or '?'} (pid {q.pid}) {q.wait_ms['swapin']:.0f} ms in "
                       f"{q.count.get('swapin', 0)} swap-ins, {100 * s:.1f}%" for s, q in worst[:MAX_NAMED])
    return Hit("HIGH" if share >= HIGH_SHARE else "WARN",
               {"_name": p.comm or "?", "pid": p.pid, "ms": p.wait_ms["swapin"], "pct": 100 * share,
                "count": p.count.get("swapin", 0), "_state": d.state, "_list": listed,
                "_uncounted": _uncounted(d),
                "window_s": d.window_s,
                "processes": [{"pid": q.pid, "name": q.comm, "swapin_ms": round(q.wait_ms["swapin"], 1),
                               "swapins": q.count.get("swapin", 0), "share": round(s, 4)}
                              for s, q in worst[:MAX_NAMED]]},
               [DELAY_TASKSTATS], None)


@rule(
    key="MEMORY_WAIT_BY_PROCESS", area="reclaim", severities=("HIGH", "WARN"),
    detects="A process spent a noticeable part of the window in direct reclaim or waiting for "
            "thrashing pages: memory, not CPU or I/O, is what slows it.",
    title="{_name} (pid {pid}) waited {ms:.0f} ms on reclaim and thrashing ({pct:.1f}% of the window){_where}",
    explanation="Kernel delay accounting ({_state}) shows {_list}.{_uncounted} Direct reclaim is the process "
                "freeing memory itself before its allocation can go on; a thrashing wait is a "
                "page of its working set read back right after it was evicted. {_advice}",
    threshold="direct reclaim + thrashing wait >= 5% of the window (WARN), >= 20% (HIGH), per process",
    source="kernel delay accounting (freepages_delay_total, thrashing_delay_total); levels of "
           "PSI_PRESSURE applied to one process",
    needs=[DELAY_TASKSTATS], section="delays")
def memory_wait_by_process(mdl):
    d, worst = _over(mdl, ("freepages", "thrashing"))
    if not worst:
        return None
    share, p = worst[0]

    def ms(q):
        return q.wait_ms.get("freepages", 0.0) + q.wait_ms.get("thrashing", 0.0)
    listed = "; ".join(f"{q.comm or '?'} (pid {q.pid}) {q.wait_ms.get('freepages', 0.0):.0f} ms reclaim, "
                       f"{q.wait_ms.get('thrashing', 0.0):.0f} ms thrashing, {100 * s:.1f}%"
                       for s, q in worst[:MAX_NAMED])
    # reclaim inside a memory cgroup: the group's limit is the lever (MEMCG_AT_LIMIT names it)
    group = mdl.task_cgroup.get(p.pid)
    group = group if group and group != "/" else None
    where = f" in memory cgroup {group}" if group else ""
    advice = (f"It runs in memory cgroup {group}: raise that group's memory limit or reduce what runs in "
              "it (see MEMCG_AT_LIMIT)." if group else
              "Give its cgroup more memory or reduce what competes with it.")
    return Hit("HIGH" if share >= HIGH_SHARE else "WARN",
               {"_name": p.comm or "?", "pid": p.pid, "ms": ms(p), "pct": 100 * share, "_state": d.state,
                "_where": where, "_advice": advice, "cgroup": group,
                "_uncounted": _uncounted(d),
                "_list": listed, "window_s": d.window_s,
                "processes": [{"pid": q.pid, "name": q.comm,
                               "reclaim_ms": round(q.wait_ms.get("freepages", 0.0), 1),
                               "thrashing_ms": round(q.wait_ms.get("thrashing", 0.0), 1), "share": round(s, 4)}
                              for s, q in worst[:MAX_NAMED]]},
               [DELAY_TASKSTATS], None)
