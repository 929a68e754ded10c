"""OOM kills, system-wide and in memory cgroups (cgroups at their limit: rules/cgroups.py).

Inputs: BPF ``oom:mark_victim`` events, the kernel log's OOM report, the
vmstat ``oom_kill`` counter (4.13+) and the memory cgroups' counters:
cgroup v2 ``memory.events`` (``max``, ``oom_kill``), cgroup v1
``memory.failcnt`` and ``memory.oom_control`` (``oom_kill`` since 4.13).
"""

from __future__ import annotations

from snapcollect.analysis.cgroups import cgroup_event_rises
from snapcollect.analysis.findings.rule import Hit, rule
from snapcollect.analysis.oom import memcg_of
from snapcollect.analysis.series import vm_window
from snapcollect.analysis.wording import hms, kill_label
from snapcollect.bundle.names import BPF_OOM_KILL, CGROUPS_MEMORY, KMSG, SERIES_PROC_VMSTAT, end_of, start_of


def _kill_sources(kills) -> list[str]:
    arts = []
    for k in kills:
        for s in k.sources or (BPF_OOM_KILL,):
            arts.append(s)
    return arts


@rule(
    key="OOM_KILL", area="oom", severities=("CRIT",),
    detects="The kernel OOM killer killed a process because the system as a whole (not only "
            "a memory cgroup) ran out of memory, or a kill whose scope the bundle cannot tell.",
    title="The kernel OOM-killed {_victims}",
    explanation="{count} process(es) were killed by the kernel's OOM killer {_scope}, first at "
                "{_first}. Whatever they were doing is lost; services may have restarted. Look at "
                "what grew before the kill (timeline, top processes) and at the kernel log's OOM "
                "report for the memory picture at that moment; then add memory, cap the grower "
                "with a memory cgroup limit, or fix the leak.",
    threshold="any kill in the window: BPF oom:mark_victim event, kernel log \"Killed process\", "
              "or vmstat oom_kill rising",
    source="every alerting ruleset (node-exporter, oomd); the kernel's OOM report",
    needs=[(BPF_OOM_KILL, SERIES_PROC_VMSTAT, KMSG)], section="oom")
def oom_kill(m):
    ds = m.ds
    oom = m.oom
    other = oom.other_kills
    counted = oom.counted
    # Kills the counter saw that no record explains, and no cgroup claims.
    unexplained = oom.unexplained
    if not other and not unexplained:
        return None
    labels = [kill_label(k) for k in other]
    if unexplained:
        labels.append(f"{unexplained} process(es) the counter saw without detail")
    known = [k for k in other if k.memcg is not None or k.constraint]
    scope = ("for the whole system" if known and len(known) == len(other) and not unexplained
             else "(scope unknown: no kernel log line says whether a cgroup limit was hit)")
    first = min((k.t for k in other), default=None)
    w = vm_window(ds)
    arts = _kill_sources(other) + ([SERIES_PROC_VMSTAT] if counted else [])
    return Hit("CRIT", {
        "_victims": ", ".join(labels[:3]) + (" and more" if len(labels) > 3 else ""),
        "count": len(other) + unexplained, "_scope": scope,
        "_first": hms(first) if first else "an unknown time (counter only)",
        "vmstat_oom_kill_delta": counted,
        "kills": [{"t": k.t, "pid": k.victim_pid, "comm": k.victim_comm,
                   "anon_rss_kb": k.anon_rss_kb, "constraint": k.constraint,
                   "trigger_comm": k.trigger_comm} for k in other],
    }, arts, (first, max(k.t for k in other)) if other else w)


@rule(
    key="MEMCG_OOM", area="oom", severities=("CRIT",),
    detects="The OOM killer killed a process because its memory cgroup reached its limit "
            "(memory.max, memory.limit_in_bytes).",
    title="Memory cgroup OOM: {_victims} killed in {memcg}",
    explanation="The cgroup {memcg} reached its memory limit and the kernel killed {count} "
                "process(es) in it, first at {_first}. The rest of the host may be fine. Compare "
                "the cgroup's usage with its limit (cgroups section): raise the limit if the "
                "workload legitimately needs more, otherwise find what grew.",
    threshold="any kill in the window: kill constrained by a memcg (CONSTRAINT_MEMCG), or the "
              "cgroup's oom_kill counter rising",
    source="kernel Documentation/admin-guide/cgroup-v2.rst (memory.events oom_kill)",
    needs=[(BPF_OOM_KILL, KMSG, end_of(CGROUPS_MEMORY))], section="oom")
def memcg_oom(m):
    ds = m.ds
    kills = m.oom.memcg_kills
    rises = m.oom.cgroup_rises
    if not kills and not rises:
        return None
    memcgs = [c for c in dict.fromkeys(memcg_of(k) for k in kills) if c]
    memcgs += [path for path, _ in rises if path not in memcgs]
    count = m.oom.memcg_count
    labels = [kill_label(k) for k in kills] or [f"{count} process(es)"]
    first = min((k.t for k in kills), default=None)
    arts = _kill_sources(kills) + ([start_of(CGROUPS_MEMORY), end_of(CGROUPS_MEMORY)] if rises else [])
    return Hit("CRIT", {
        "_victims": ", ".join(labels[:3]) + (" and more" if len(labels) > 3 else ""),
        "memcg": ", ".join(memcgs[:3]) or "a memory cgroup", "count": count,
        "_first": hms(first) if first else "an unknown time (cgroup counter only)",
        "kills": [{"t": k.t, "pid": k.victim_pid, "comm": k.victim_comm, "memcg": memcg_of(k),
                   "anon_rss_kb": k.anon_rss_kb} for k in kills],
        "cgroup_oom_kill_rise": dict(rises),
    }, arts, (first, max(k.t for k in kills)) if kills else vm_window(ds),
        section="oom" if kills else "cgroups")
