"""Major page faults: pages read from disk (or swap) on access.

Input: /proc/vmstat ``pgmajfault`` per interval (sar -B majflt/s), and for
attribution the per-process ``majflt`` of /proc/PID/stat (field 12) from
the per-tick process pass, or BPF's major faults per process.

    pgfault 1826493
    pgmajfault 5172
"""

from __future__ import annotations

from snapcollect.analysis.findings.rule import Hit, rule
from snapcollect.analysis.findings.signals import min_hold_s, sustained_intervals
from snapcollect.analysis.series import vm_intervals
from snapcollect.analysis.wording import hms
from snapcollect.bundle.names import SERIES_PROCS, SERIES_PROC_VMSTAT

MAJFLT_WARN = 500.0     # node-exporter mixin (NodeMemoryMajorPagesFaults: > 500/s)
MAJFLT_HIGH = 1000.0    # common alert rules


def top_major_faulters(m, n: int = 3) -> list[dict]:
    """The processes with the most major faults; those under 10% of the first are left out."""
    ds = m.ds
    if ds.bpf.majfaults_by_proc:
        items = sorted(ds.bpf.majfaults_by_proc.items(), key=lambda x: -x[1])
        out = [{"pid": pid, "comm": comm, "majflt": c} for (pid, comm), c in items[:n] if c > 0]
    else:
        # Faults over the samples where the process was seen.
        counted = sorted(((max(p.last.majflt - p.first.majflt, 0), p) for p in m.lives), key=lambda x: -x[0])
        out = [{"pid": p.pid, "comm": p.comm, "majflt": c} for c, p in counted[:n] if c > 0]
    return [p for p in out if p["majflt"] * 10 >= out[0]["majflt"]]


@rule(
    key="MAJOR_FAULTS", area="faults", severities=("HIGH", "WARN"),
    detects="A sustained rate of major page faults: tasks wait for disk reads of pages that "
            "were evicted or never loaded.",
    title="Major faults: {peak:.0f}/s at peak, over {level:.0f}/s for {held_s:.0f} s",
    explanation="From {_start} to {_end} tasks took {rate:.0f} major faults per second on average "
                "(each one a disk read the task waits for). {_who}Memory is too small for the "
                "working set (page cache thrashing, swap-ins) or a program maps large files "
                "cold. Check swap-in rate and refaults.",
    threshold="majflt/s > 500 (WARN) or > 1000 (HIGH) in every interval for >= 30 s (or half "
              "the window)",
    source="node-exporter mixin (major page faults > 500/s); common alert rules (1000/s)",
    needs=[SERIES_PROC_VMSTAT], section="sar-B")
def major_faults(m):
    ds = m.ds
    ivs = vm_intervals(ds, "pgmajfault")
    for level, sev in ((MAJFLT_HIGH, "HIGH"), (MAJFLT_WARN, "WARN")):
        run = sustained_intervals(ivs, lambda i: i.rate > level, min_hold_s(ds))
        if not run:
            continue
        top = top_major_faulters(m)
        who = ""
        if top:
            who = "Most of them: " + ", ".join(f"{p['comm']} (pid {p['pid']}, {p['majflt']})"
                                               for p in top) + ". "
        secs = run[-1].t1 - run[0].t0
        arts = [SERIES_PROC_VMSTAT] + ([SERIES_PROCS] if ds.procs else [])
        return Hit(sev, {
            "peak": max(i.rate for i in run), "level": level, "held_s": secs,
            "rate": sum(i.delta for i in run) / secs, "_start": hms(run[0].t0),
            "_end": hms(run[-1].t1), "_who": who, "top_processes": top,
        }, arts, (run[0].t0, run[-1].t1), section="sar-B")
    return None
