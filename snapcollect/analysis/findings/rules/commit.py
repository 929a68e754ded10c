"""Virtual memory commitment against RAM + swap and the commit limit.

Inputs: /proc/meminfo (kB) and vm.overcommit_memory from /proc/sys/vm:

    CommitLimit:    12342040 kB
    Committed_AS:    2818924 kB
    overcommit_memory = 0
"""

from __future__ import annotations

from snapcollect.analysis import series
from snapcollect.analysis.findings.rule import Hit, rule
from snapcollect.analysis.findings.signals import min_hold_s, sustained
from snapcollect.analysis.wording import hms, human_kb
from snapcollect.bundle.names import PROC_MEMINFO, PROC_SYS_VM, SERIES_PROC_MEMINFO, end_of

COMMIT_INFO_PCT = 100.0      # sar -r %commit above 100: more promised than RAM + swap
STRICT_HIGH_PCT = 90.0       # heuristic share of CommitLimit under strict accounting


@rule(
    key="OVERCOMMIT", area="commit", severities=("HIGH", "INFO"),
    detects="More virtual memory promised to processes than RAM + swap can back (and, under "
            "strict accounting, close to the limit where allocations fail).",
    title="{_title_detail}",
    explanation="{_detail} Committed memory is what processes have reserved, not what they "
                "use; with the default heuristic overcommit it only matters if they all "
                "touch it. Under strict accounting (vm.overcommit_memory=2) malloc and fork "
                "fail with ENOMEM at CommitLimit.",
    threshold="%commit = Committed_AS / (MemTotal + SwapTotal) > 100 (INFO); with "
              "vm.overcommit_memory=2 and Committed_AS >= 90% of CommitLimit (HIGH); held >= 30 s "
              "(or half the window)",
    source="sar(1) man page (%commit); kernel Documentation/mm/overcommit-accounting.rst; 90%: "
           "heuristic",
    needs=[(SERIES_PROC_MEMINFO, end_of(PROC_MEMINFO))], section="sar-r")
def overcommit(m):
    ds = m.ds
    pts = series.samples(ds, "meminfo")
    mode = (ds.end.sysvm or ds.start.sysvm or {}).get("overcommit_memory", "").strip()
    hold = min_hold_s(ds)
    if mode == "2":
        samples = [(t, 100.0 * m["Committed_AS"] / m["CommitLimit"]
                    if m.get("CommitLimit") and "Committed_AS" in m else None) for t, m in pts]
        run = sustained(samples, lambda v: v >= STRICT_HIGH_PCT, hold)
        if run:
            m = [m for t, m in pts if run.t0 <= t <= run.t1][-1]
            return Hit("HIGH", {
                "_title_detail": f"Strict overcommit: {max(run.values):.0f}% of CommitLimit "
                                f"committed",
                "_detail": f"With vm.overcommit_memory=2, Committed_AS reached "
                          f"{human_kb(m['Committed_AS'])} of CommitLimit "
                          f"{human_kb(m['CommitLimit'])} from {hms(run.t0)} to {hms(run.t1)}.",
                "commit_limit_pct": max(run.values), "Committed_AS_kb": m["Committed_AS"],
                "CommitLimit_kb": m["CommitLimit"], "overcommit_memory": mode,
            }, series.sources(ds, "meminfo") + [end_of(PROC_SYS_VM)], (run.t0, run.t1))
    samples = [(t, 100.0 * m["Committed_AS"] / (m["MemTotal"] + m.get("SwapTotal", 0))
                if m.get("MemTotal") and "Committed_AS" in m else None) for t, m in pts]
    run = sustained(samples, lambda v: v > COMMIT_INFO_PCT, hold)
    if run is None:
        return None
    m = [m for t, m in pts if run.t0 <= t <= run.t1][-1]
    return Hit("INFO", {
        "_title_detail": f"Memory overcommitted: %commit {max(run.values):.0f}%",
        "_detail": f"Committed_AS reached {human_kb(m['Committed_AS'])}, {max(run.values):.0f}% of "
                  f"RAM + swap ({human_kb(m['MemTotal'] + m.get('SwapTotal', 0))}).",
        "commit_pct": max(run.values), "Committed_AS_kb": m["Committed_AS"],
        "overcommit_memory": mode or None,
    }, series.sources(ds, "meminfo"), (run.t0, run.t1))
