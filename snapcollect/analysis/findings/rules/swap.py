"""Swap filling up and swap thrashing.

Inputs: /proc/meminfo SwapTotal/SwapFree (kB) over the window, and the
/proc/vmstat counters of pages swapped in and out (sar -W):

    pswpin 18231
    pswpout 40477
"""

from __future__ import annotations

from snapcollect.analysis import series
from snapcollect.analysis.findings.rule import Hit, rule
from snapcollect.analysis.holders import sentence, swap_holders
from snapcollect.analysis.findings.signals import min_hold_s, page_kb, sustained
from snapcollect.analysis.series import vm_intervals
from snapcollect.analysis.wording import hms, human_kb
from snapcollect.bundle.names import (BPF_SWAP_RESIDENCY, PROC_MEMINFO, SERIES_PROC_MEMINFO, SERIES_PROC_PRESSURE_MEMORY,
                                      SERIES_PROC_VMSTAT, end_of)

SWAP_WARN_PCT = 80.0
SWAP_HIGH_PCT = 90.0
THRASH_MIN_INTERVALS = 3         # heuristic: one interval of both is noise
THRASH_HIGH_FMEM = 5.0           # PSI_PRESSURE's WARN level


def _used_pct(m) -> float | None:
    total = m.get("SwapTotal")
    if not total:
        return None
    return 100.0 * (total - m.get("SwapFree", 0)) / total


@rule(
    key="SWAP_FILLING", area="swap", severities=("HIGH", "WARN"),
    detects="Swap space mostly used: little room left before RAM and swap are both gone.",
    title="Swap {pct:.0f}% used ({_used} of {_total}){_most}",
    explanation="From {_start} to {_end} more than {level:.0f}% of swap was in use. {_who}Swapped-out "
                "pages are slow to get back and, once swap is full, the OOM killer is next: check "
                "whether these processes are still growing (growth table) and restart or limit "
                "the one that leaks.",
    threshold="%swpused > 80 (WARN), > 90 (HIGH), held >= 30 s (or half the window)",
    source="common alert rules (node-exporter swap 80%); systemd-oomd SwapUsedLimit=90%",
    needs=[(SERIES_PROC_MEMINFO, end_of(PROC_MEMINFO))], section="sar-S")
def swap_filling(mdl):
    ds = mdl.ds
    pts = series.samples(ds, "meminfo")
    samples = [(t, _used_pct(m)) for t, m in pts]
    for level, sev in ((SWAP_HIGH_PCT, "HIGH"), (SWAP_WARN_PCT, "WARN")):
        run = sustained(samples, lambda v: v > level, min_hold_s(ds))
        if run is None:
            continue
        t, m = [(t, m) for t, m in pts if run.t0 <= t <= run.t1][-1]
        used = m["SwapTotal"] - m.get("SwapFree", 0)
        who = swap_holders(ds, mdl.lives)
        arts = series.sources(ds, "meminfo") + sorted({h.artifact for h in who})
        return Hit(sev, {"pct": _used_pct(m), "_used": human_kb(used), "_total": human_kb(m["SwapTotal"]),
                         "level": level, "_start": hms(run.t0), "_end": hms(run.t1),
                         "swpused_pct_max": max(run.values), "SwapTotal_kb": m["SwapTotal"],
                         "swap_used_kb": used, "_who": sentence(who, "Holding the most swap at the end"),
                         "_most": f", {human_kb(who[0].kb)} of it by {who[0].name}" if who else "",
                         "holders": [{"pid": h.pid, "name": h.name, "swap_kb": h.kb} for h in who]},
                   arts, (run.t0, run.t1))
    return None


@rule(
    key="SWAP_THRASHING", area="swap", severities=("HIGH", "WARN"),
    detects="Pages swapped out and swapped back in during the same intervals: the working set "
            "does not fit in memory, and time goes to disk I/O.",
    title="Swap thrashing: swap-in and swap-out together in {both} of {n} intervals",
    explanation="Between {_start} and {_end} the kernel swapped {_pin} pages in ({_in_mb}) and "
                "{_pout} out ({_out_mb}), both in {both} intervals, peaking at {peak_in:.0f} in/s "
                "and {peak_out:.0f} out/s; memory pressure (full) was {fmem:.1f}% of the window. "
                "{_who}{_residency}The working set is larger than the memory it is allowed: raise the "
                "(cgroup) limit or shrink the workload; more swap will not help.",
    threshold="pswpin and pswpout both > 0 in >= 3 intervals (WARN); HIGH when PSI %fmem >= 5",
    source="\"Linux performance analysis in 60,000 ms\" (vmstat si/so non-zero); heuristic "
           "count of intervals",
    needs=[SERIES_PROC_VMSTAT], section="sar-W")
def swap_thrashing(m):
    ds = m.ds
    ins = {(i.t0, i.t1): i for i in vm_intervals(ds, "pswpin")}
    outs = vm_intervals(ds, "pswpout")
    pairs = [(ins[(o.t0, o.t1)], o) for o in outs if (o.t0, o.t1) in ins]
    both = [(i, o) for i, o in pairs if i.delta > 0 and o.delta > 0]
    if len(both) < min(THRASH_MIN_INTERVALS, max(len(pairs), 1)) or not both:
        return None
    fmem = m.psi_full.pct if m.psi_full else 0.0
    sev = "HIGH" if fmem >= THRASH_HIGH_FMEM else "WARN"
    pin = sum(i.delta for i, _ in pairs)
    pout = sum(o.delta for _, o in pairs)
    kb = page_kb(ds)
    # Who holds swap (VmSwap): the likely thrasher.
    holders = swap_holders(ds, m.lives, 1)
    who = f"{holders[0].name} held the most swap ({human_kb(holders[0].kb)}). " if holders else ""
    arts = [SERIES_PROC_VMSTAT] + ([SERIES_PROC_PRESSURE_MEMORY] if ds.psi else [])
    arts += [h.artifact for h in holders]
    res = m.swap_residency
    residency, soon_pct = "", None
    if res is not None and res.ok and res.read_back and res.soon_share is not None:
        soon_pct = res.soon_share * 100
        median = f", the median between {res.median.low:,} and {res.median.high:,} us" if res.median else ""
        residency = (f"Of {res.read_back:,} pages read back whose swap-out was seen, {soon_pct:.0f}% had been "
                     f"out less than a second{median} (BPF kprobes). ")
        arts.append(BPF_SWAP_RESIDENCY)
    return Hit(sev, {
        "both": len(both), "n": len(pairs), "_pin": pin, "_pout": pout,
        "_in_mb": human_kb(pin * kb), "_out_mb": human_kb(pout * kb),
        "peak_in": max(i.rate for i, _ in both), "peak_out": max(o.rate for _, o in both),
        "fmem": fmem, "_start": hms(both[0][0].t0), "_end": hms(both[-1][0].t1), "_who": who,
        "pswpin_delta": pin, "pswpout_delta": pout, "_residency": residency,
        "read_back_soon_pct": soon_pct,
    }, arts, (both[0][0].t0, both[-1][0].t1))

