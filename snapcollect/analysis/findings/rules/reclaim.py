"""Page reclaim: scanning, direct reclaim stalls, efficiency, refaults, drops.

Inputs: /proc/vmstat counters over the window (sar -B) and, when BPF ran,
the direct/memcg reclaim begin-end pairs (``vmscan:mm_vmscan_*_begin/end``
tracepoints, as drsnoop):

    pgscan_kswapd 0              pgsteal_kswapd 0        (4.8+; before: per zone)
    pgscan_direct 0              pgsteal_direct 0
    pgscan_direct_throttle 0     allocstall_normal 0     (4.8+: per zone)
    workingset_refault_file 0    workingset_activate_file 0   (5.9+)
    pgsteal_file 0               drop_pagecache 1        (pgsteal_file 5.8+)
"""

from __future__ import annotations

from snapcollect.analysis.bpf import percentile, stalls_by_process
from snapcollect.analysis.cgroups import cgroup_event_rises
from snapcollect.analysis.findings.rule import Hit, SkipRule, rule
from snapcollect.analysis.findings.signals import page_kb
from snapcollect.analysis.series import vm_delta, vm_window
from snapcollect.analysis.wording import hms, human_kb, human_ms

STALL_HIGH_US = 100_000          # heuristic: one stall of 100 ms is felt by users
VMEFF_LOW_PCT = 30.0             # sar(1): below 30% the VM "is having some difficulty"
MIN_SCANNED = 1024               # heuristic floor: a few pages scanned say nothing of efficiency
REFAULT_PCT = 50.0               # heuristic
MIN_REFAULTS = 1024              # heuristic floor


def _d(ds, name):
    return vm_delta(ds, name)


@rule(
    key="PAGE_SCANNING", area="reclaim", severities=("INFO",),
    detects="The kernel scanned page lists to reclaim memory: memory is saturated (the USE "
            "method's saturation signal), even if nothing stalls yet.",
    title="Page reclaim active: {scanned} pages scanned ({_kswapd} by kswapd, {_direct} direct)",
    explanation="The kernel had to look for pages to free ({_scanned_mb}). Reclaim by kswapd in the "
                "background is normal under load; direct reclaim means allocating tasks did it "
                "themselves (see DIRECT_RECLAIM_STALLS). Watch pgscank/s and pgscand/s in sar -B.",
    threshold="d(pgscan_kswapd) + d(pgscan_direct) > 0 over the window",
    source="USE method (Brendan Gregg), memory saturation: page scanning",
    needs=["series/proc/vmstat"], section="sar-B")
def page_scanning(m):
    ds = m.ds
    k, d = _d(ds, "pgscan_kswapd"), _d(ds, "pgscan_direct")
    if k is None and d is None:
        raise SkipRule("needs pgscan_kswapd/pgscan_direct in /proc/vmstat")
    total = (k or 0) + (d or 0)
    if total <= 0:
        return None
    return Hit("INFO", {"scanned": total, "_kswapd": k or 0, "_direct": d or 0,
                        "_scanned_mb": human_kb(total * page_kb(ds)),
                        "pgscan_kswapd_delta": k, "pgscan_direct_delta": d},
               ["series/proc/vmstat"], vm_window(ds))


def reclaim_by_process(stalls) -> list[dict]:
    """Stalls per (pid, comm) as the reclaim section counts them, worst single stall first."""
    out = [{"pid": a["pid"], "comm": a["comm"], "stalls": a["count"], "total_us": a["total_us"],
            "p99_us": a["p99_us"], "max_us": a["max_us"], "max_t": a["max_t"],
            "kinds": a["kinds"].split("/") if a["kinds"] else []}
           for a in sorted(stalls_by_process(stalls), key=lambda a: (a["first_t"], a["pid"]))]
    out.sort(key=lambda x: -x["max_us"])
    return out


@rule(
    key="DIRECT_RECLAIM_STALLS", area="reclaim", severities=("HIGH", "WARN"),
    detects="Allocating tasks had to reclaim memory themselves (direct or memory-cgroup "
            "reclaim) and stalled while doing it.",
    title="Allocating tasks stalled in reclaim: {_summary}",
    explanation="{_detail} A task in direct reclaim is not doing its own work: this is latency "
                "users feel. kswapd could not keep free memory above the low watermark, or a "
                "cgroup is at its limit. Free memory (or raise the limit), or raise "
                "vm.min_free_kbytes / vm.watermark_scale_factor so kswapd starts earlier.",
    threshold="d(pgscan_direct) > 0 or allocstall rising, or BPF reclaim stalls (WARN); HIGH "
              "when one stall >= 100 ms",
    source="sar(1) pgscand/s; drsnoop (bcc); 100 ms: heuristic",
    needs=[("series/proc/vmstat", "bpf/reclaim")], section="sar-B")
def direct_reclaim_stalls(m):
    ds = m.ds
    scand, stalls_ct = _d(ds, "pgscan_direct"), _d(ds, "allocstall")
    bpf = list(ds.bpf.reclaim)
    # Reclaim at a cgroup limit never reaches /proc/vmstat's pgscan_*:
    # mm/vmscan.c counts there only when !cgroup_reclaim(sc). cgroup v2's
    # memory.stat pgscan_direct shows it, and so does BPF.
    cg = cgroup_event_rises(ds, "pgscan_direct", "stat")
    if not bpf and not scand and not stalls_ct and not cg:
        return None
    facts = {"pgscan_direct_delta": scand, "allocstall_delta": stalls_ct,
             "cgroup_pgscan_direct_rise": {g.path: r for g, r in cg[:5]}}
    arts = ["series/proc/vmstat"] if (scand or stalls_ct) else []
    if cg:
        arts += ["cgroups/memory@start", "cgroups/memory@end"]
    tr = vm_window(ds)
    sev = "WARN"
    if bpf:
        procs = reclaim_by_process(bpf)
        w = procs[0]
        lat = [s.latency_us for s in bpf]
        sev = "HIGH" if w["max_us"] >= STALL_HIGH_US else "WARN"
        kinds = sorted({s.kind for s in bpf})
        facts.update({
            "_summary": f"{len(procs)} task(s), worst {w['comm']} (pid {w['pid']}) "
                       f"{human_ms(w['max_us'])}",
            "_detail": f"BPF saw {len(bpf)} {'/'.join(kinds)} reclaim stall(s) between "
                      f"{hms(min(s.t for s in bpf))} and {hms(max(s.t for s in bpf))}: "
                      f"p99 {human_ms(percentile(lat, 0.99))}, max {human_ms(max(lat))} "
                      f"({w['comm']}, pid {w['pid']}, at {hms(w['max_t'])}).",
            "stalls": len(bpf), "max_us": max(lat), "p99_us": percentile(lat, 0.99),
            "by_process": [{k: v for k, v in p.items()} for p in procs[:10]],
        })
        arts.append("bpf/reclaim")
        tr = (min(s.t for s in bpf), max(s.t + s.latency_us / 1e6 for s in bpf))
        return Hit(sev, facts, arts, tr, section="reclaim")
    no_bpf = "BPF not collected" if not ds.bpf.available else "no stall recorded"
    if scand or stalls_ct:
        summary = f"{scand or 0} pages scanned directly, {stalls_ct or 0} allocation stalls"
        detail = (f"vmstat shows pgscan_direct +{scand or 0} ({human_kb((scand or 0) * page_kb(ds))}) "
                  f"and allocstall +{stalls_ct or 0} over the window (no BPF latencies: {no_bpf}).")
    else:
        g, r = cg[0]
        summary = f"{r} pages scanned at the limit of memory cgroup {g.path}"
        detail = (f"memory.stat pgscan_direct of {g.path} rose by {r} ({human_kb(r * page_kb(ds))}) over "
                  f"the window (no BPF latencies: {no_bpf}).")
    facts.update({"_summary": summary, "_detail": detail})
    return Hit(sev, facts, arts, tr, section="sar-B" if (scand or stalls_ct) else "cgroups")


@rule(
    key="DIRECT_RECLAIM_THROTTLED", area="reclaim", severities=("HIGH",),
    detects="Direct reclaimers were put to sleep because the emergency (pfmemalloc) reserves "
            "ran low: memory is at the min watermark.",
    title="Direct reclaim throttled {n} time(s): memory at the emergency reserve",
    explanation="vmstat pgscan_direct_throttle rose by {n}: allocating tasks were made to wait "
                "for kswapd because free memory fell to half the min watermark, which the "
                "kernel keeps for its own emergencies. This precedes OOM kills and hangs; free "
                "memory now.",
    threshold="d(pgscan_direct_throttle) > 0",
    source="kernel mm/vmscan.c (throttle_direct_reclaim, allow_direct_reclaim)",
    needs=["series/proc/vmstat"], section="sar-B")
def direct_reclaim_throttled(m):
    ds = m.ds
    n = _d(ds, "pgscan_direct_throttle")
    if n is None:
        raise SkipRule("needs pgscan_direct_throttle in /proc/vmstat (3.5+)")
    if n <= 0:
        return None
    return Hit("HIGH", {"n": n, "pgscan_direct_throttle_delta": n}, ["series/proc/vmstat"], vm_window(ds))


@rule(
    key="RECLAIM_INEFFICIENT", area="reclaim", severities=("WARN",),
    detects="Reclaim scanned many pages but freed few of them (sar's %vmeff): the pages it "
            "finds are in use, dirty or locked.",
    title="Reclaim inefficient: %vmeff {_vmeff:.1f}% ({stolen} of {scanned} pages freed)",
    explanation="Of {scanned} pages scanned, only {stolen} were reclaimed. The VM is working "
                "hard for little: the working set does not fit, or pages are dirty (writeback) "
                "or unevictable. Look at swap activity, dirty pages and the biggest anonymous "
                "users.",
    threshold="%vmeff = 100 * d(pgsteal) / (d(pgscank) + d(pgscand)) < 30 with >= 1024 pages "
              "scanned",
    source="sar(1) man page (%vmeff below 30% means difficulty); 1024-page floor: heuristic",
    needs=["series/proc/vmstat"], section="sar-B")
def reclaim_inefficient(m):
    ds = m.ds
    k, d, steal = _d(ds, "pgscan_kswapd"), _d(ds, "pgscan_direct"), _d(ds, "pgsteal")
    if steal is None or (k is None and d is None):
        raise SkipRule("needs pgscan_*/pgsteal_* in /proc/vmstat")
    scanned = (k or 0) + (d or 0)
    if scanned < MIN_SCANNED:
        return None
    vmeff = 100.0 * steal / scanned
    if vmeff >= VMEFF_LOW_PCT:
        return None
    return Hit("WARN", {"_vmeff": vmeff, "stolen": steal, "scanned": scanned, "vmeff_pct": vmeff},
               ["series/proc/vmstat"], vm_window(ds))


@rule(
    key="PAGECACHE_THRASHING", area="reclaim", severities=("WARN",),
    detects="File pages evicted and read back soon after (refaults): the page cache is too "
            "small for the files in use.",
    title="Page cache thrashing: {pct:.0f}% of evicted file pages came back",
    explanation="{refaults} file pages refaulted against {stolen} file pages reclaimed, and "
                "{activations} refaults were hot enough to be activated. The same file data is "
                "read from disk again and again. More memory for cache, or less anonymous "
                "memory, helps; check the major-fault rate and disk reads.",
    threshold="d(workingset_refault_file) / d(pgsteal_file) > 50% with "
              "d(workingset_activate_file) > 0 and >= 1024 refaults",
    source="heuristic, from kernel Documentation/admin-guide/cgroup-v2.rst (workingset_* in "
           "memory.stat)",
    needs=["series/proc/vmstat"], section="sar-B")
def pagecache_thrashing(m):
    ds = m.ds
    ref, act = _d(ds, "workingset_refault_file"), _d(ds, "workingset_activate_file")
    stolen = _d(ds, "pgsteal_file")
    if stolen is None:        # before 5.8 no file/anon split: all steals (conservative)
        stolen = _d(ds, "pgsteal")
    if ref is None or stolen is None:
        raise SkipRule("needs workingset_refault and pgsteal counters in /proc/vmstat")
    if ref < MIN_REFAULTS or not act or stolen <= 0:
        return None
    # Refaults after a drop_caches come back without reclaim: not thrashing.
    if (_d(ds, "drop_pagecache") or 0) > 0:
        return None
    pct = 100.0 * ref / stolen
    if pct <= REFAULT_PCT:
        return None
    return Hit("WARN", {"pct": pct, "refaults": ref, "stolen": stolen, "activations": act,
                        "workingset_refault_file_delta": ref, "pgsteal_file_delta": stolen},
               ["series/proc/vmstat"], vm_window(ds))


@rule(
    key="DROP_CACHES", area="reclaim", severities=("INFO",),
    detects="Someone wrote to /proc/sys/vm/drop_caches during the window: cache and slab "
            "figures after that moment show the drop, not the workload.",
    title="Caches dropped by hand during the window ({_what})",
    explanation="vmstat drop_pagecache/drop_slab rose ({_what}). Free memory jumps and refaults "
                "follow; do not read them as the workload's behaviour. If a cron job or agent "
                "does this, it hides memory problems rather than fixing them.",
    threshold="d(drop_pagecache) + d(drop_slab) > 0",
    source="kernel Documentation/admin-guide/sysctl/vm.rst (drop_caches)",
    needs=["series/proc/vmstat"], section="vmstat-s")
def drop_caches(m):
    ds = m.ds
    pc, sl = _d(ds, "drop_pagecache"), _d(ds, "drop_slab")
    if pc is None and sl is None:
        raise SkipRule("needs drop_pagecache/drop_slab in /proc/vmstat")
    if not pc and not sl:
        return None
    what = ", ".join(x for x in (f"page cache x{pc}" if pc else "", f"slab x{sl}" if sl else "") if x)
    return Hit("INFO", {"_what": what, "drop_pagecache_delta": pc, "drop_slab_delta": sl},
               ["series/proc/vmstat"], vm_window(ds))
