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
from snapcollect.analysis.cgroup_series import within
from snapcollect.analysis.cgroups import cgroup_event_rises
from snapcollect.analysis.findings.rule import Hit, SkipRule, rule
from snapcollect.analysis.findings.rules.cgroups import stalls_felt, task_names, thrashing_group, where_reclaim
from snapcollect.analysis.findings.signals import page_kb
from snapcollect.analysis.series import vm_delta, vm_window
from snapcollect.analysis.wording import hms, human_kb, human_ms
from snapcollect.bundle.names import (BPF_RECLAIM, CGROUPS_MEMORY, SERIES_CGROUPS_MEMORY,
                                      SERIES_PROC_VMSTAT, end_of, start_of)

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
    needs=[SERIES_PROC_VMSTAT], section="sar-B")
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
               [SERIES_PROC_VMSTAT], vm_window(ds))


def reclaim_by_process(stalls) -> list[dict]:
    """Stalls per (pid, comm) as the reclaim section counts them, worst single stall first."""
    out = [{"pid": a["pid"], "comm": a["comm"], "stalls": a["count"], "total_us": a["total_us"],
            "p99_us": a["p99_us"], "max_us": a["max_us"], "max_t": a["max_t"],
            "kinds": a["kinds"].split("/") if a["kinds"] else []}
           for a in sorted(stalls_by_process(stalls), key=lambda a: (a["first_t"], a["pid"]))]
    out.sort(key=lambda x: -x["max_us"])
    return out


@rule(
    key="DIRECT_RECLAIM_STALLS", area="reclaim", severities=("HIGH", "WARN", "INFO"),
    detects="Allocating tasks had to reclaim memory themselves (direct or memory-cgroup "
            "reclaim) and stalled while doing it.",
    title="Allocating tasks stalled in reclaim{_where}: {_summary}",
    explanation="{_detail} A task in direct reclaim is not doing its own work: this is latency "
                "users feel. {_advice}",
    threshold="d(pgscan_direct) > 0 or allocstall rising (WARN), or BPF reclaim stalls: HIGH when "
              "one stall >= 100 ms, WARN when one >= 10 ms or >= 100 ms in all, else INFO. Stalls of "
              "tasks in a cgroup whose page cache thrashes are PAGECACHE_THRASHING's",
    source="sar(1) pgscand/s; drsnoop (bcc); 100 ms / 10 ms: heuristic",
    needs=[(SERIES_PROC_VMSTAT, BPF_RECLAIM)], section="sar-B")
def direct_reclaim_stalls(m):
    ds = m.ds
    scand, stalls_ct = _d(ds, "pgscan_direct"), _d(ds, "allocstall")
    bpf = list(ds.bpf.reclaim)
    # Reclaim at a cgroup limit never reaches /proc/vmstat's pgscan_*:
    # mm/vmscan.c counts there only when !cgroup_reclaim(sc). cgroup v2's
    # memory.stat pgscan_direct shows it, and so does BPF.
    cg = cgroup_event_rises(ds, "pgscan_direct", "stat")
    # Stalls of tasks in a thrashing cgroup are that finding's evidence:
    # one cause, one finding (PAGECACHE_THRASHING cites them).
    groups = [g for g in m.stall_groups if not thrashing_group(m, g.path)]
    bpf = [s for g in groups for s in g.stalls]
    if ds.bpf.reclaim and not bpf and not scand and not stalls_ct:
        return None
    if not bpf and not scand and not stalls_ct and not cg:
        return None
    where, advice = where_reclaim(m, groups)
    facts = {"pgscan_direct_delta": scand, "allocstall_delta": stalls_ct,
             "cgroup_pgscan_direct_rise": {g.path: r for g, r in cg[:5]},
             "cgroup": where, "_where": f" in memory cgroup {where}" if where else "", "_advice": advice}
    arts = [SERIES_PROC_VMSTAT] if (scand or stalls_ct) else []
    if cg:
        arts += [start_of(CGROUPS_MEMORY), end_of(CGROUPS_MEMORY)]
    tr = vm_window(ds)
    sev = "WARN"
    if bpf:
        procs = reclaim_by_process(bpf)
        w = procs[0]
        lat = [s.latency_us for s in bpf]
        sev = ("HIGH" if w["max_us"] >= STALL_HIGH_US else
               "WARN" if stalls_felt(max(s.latency_us for s in bpf), sum(s.latency_us for s in bpf)) else "INFO")
        kinds = sorted({s.kind for s in bpf})
        summary = f"{len(procs)} task(s), worst {w['comm']} (pid {w['pid']}) {human_ms(w['max_us'])}"
        if where:
            # The title names the group: its own tasks, then the others apart.
            inside = [s for g in groups if g.path is not None and within(g.path, where) for s in g.stalls]
            mine = reclaim_by_process(inside)
            others = len(procs) - len(mine)
            summary = f"{len(mine)} task(s), worst {mine[0]['comm']} (pid {mine[0]['pid']}) " \
                      f"{human_ms(mine[0]['max_us'])}"
            if others > 0:
                ow = next(p for p in procs if (p["pid"], p["comm"]) not in {(x["pid"], x["comm"]) for x in mine})
                summary += (f"; {others} task(s) elsewhere, worst {ow['comm']} (pid {ow['pid']}) "
                            f"{human_ms(ow['max_us'])}")
        facts.update({
            "_summary": summary,
            "_detail": f"BPF saw {len(bpf)} {'/'.join(kinds)} reclaim stall(s) between "
                      f"{hms(min(s.t for s in bpf))} and {hms(max(s.t for s in bpf))}: "
                      f"p99 {human_ms(percentile(lat, 0.99))}, max {human_ms(max(lat))} "
                      f"({w['comm']}, pid {w['pid']}, at {hms(w['max_t'])}); {human_ms(sum(lat))} "
                      f"stalled in all.",
            "stalls": len(bpf), "max_us": max(lat), "p99_us": percentile(lat, 0.99), "total_us": sum(lat),
            "by_process": [{k: v for k, v in p.items()} for p in procs[:10]],
        })
        arts.append(BPF_RECLAIM)
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
    needs=[SERIES_PROC_VMSTAT], section="sar-B")
def direct_reclaim_throttled(m):
    ds = m.ds
    n = _d(ds, "pgscan_direct_throttle")
    if n is None:
        raise SkipRule("needs pgscan_direct_throttle in /proc/vmstat (3.5+)")
    if n <= 0:
        return None
    return Hit("HIGH", {"n": n, "pgscan_direct_throttle_delta": n}, [SERIES_PROC_VMSTAT], vm_window(ds))


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
    needs=[SERIES_PROC_VMSTAT], section="sar-B")
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
               [SERIES_PROC_VMSTAT], vm_window(ds))


@rule(
    key="PAGECACHE_THRASHING", area="reclaim", severities=("WARN",),
    detects="File pages evicted and read back soon after (refaults), host-wide or in one memory "
            "cgroup: the page cache is too small for the files in use.",
    title="Page cache thrashing{_where}: {_summary}",
    explanation="{_detail} The same file data is read from disk again and again; {_readers}{_stalls}"
                "{_advice}",
    threshold="refaulted file pages over the window >= the average file cache (host: Active(file) + "
              "Inactive(file); a cgroup: memory.stat file, v1 total_cache - total_shmem), >= 64 MiB, "
              "and refault/steal >= 50% where steal is known; or, host-wide, d(workingset_refault_file) "
              "/ d(pgsteal_file) > 50% with d(workingset_activate_file) > 0 and >= 1024 refaults",
    source="heuristic, from kernel mm/workingset.c (a refault is a page evicted recently enough that "
           "a cache larger by its refault distance would have kept it) and Documentation/admin-guide/"
           "cgroup-v2.rst (workingset_* in memory.stat)",
    needs=[(SERIES_PROC_VMSTAT, SERIES_CGROUPS_MEMORY)], section="sar-B")
def pagecache_thrashing(m):
    ds = m.ds
    ref, act = _d(ds, "workingset_refault_file"), _d(ds, "workingset_activate_file")
    stolen = _d(ds, "pgsteal_file")
    if stolen is None:        # before 5.8 no file/anon split: all steals (conservative)
        stolen = _d(ds, "pgsteal")
    if m.thrashing:
        return _thrashing_hit(m, m.thrashing[0])
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
                        "workingset_refault_file_delta": ref, "pgsteal_file_delta": stolen,
                        "cgroup": None, "_where": "",
                        "_summary": f"{pct:.0f}% of evicted file pages came back",
                        "_detail": f"{ref} file pages refaulted against {stolen} file pages reclaimed, and "
                                   f"{act} refaults were hot enough to be activated.",
                        "_readers": "", "_stalls": "",
                        "_advice": " More memory for cache, or less anonymous memory, helps; check the "
                                   "major-fault rate and disk reads."},
               [SERIES_PROC_VMSTAT], vm_window(ds))


def _thrashing_hit(m, th) -> Hit:
    ds = m.ds
    group = None if th.where == "host" else th.where
    g = m.cgroups.get(group) if group else None
    per_s = human_kb(th.refault_bytes_per_s / 1024)
    ratio = f", refault/steal {th.refault_steal_pct:.0f}%" if th.refault_steal_pct is not None else ""
    host_pct = None
    if group and th.refault_steal_pct is None:
        # v1 memory.stat has no pgsteal: the host's ratio, which includes the group's reclaim.
        ref, steal = _d(ds, "workingset_refault_file"), _d(ds, "pgsteal_file")
        if ref is not None and steal:
            host_pct = 100.0 * ref / steal
            ratio = f" (host-wide refault/steal {host_pct:.0f}%)"
    cache = "its page cache" if group else "the page cache"
    summary = (f"{human_kb(th.refault_bytes / 1024)} of evicted file pages read back in {th.seconds:.0f} s, "
               f"{th.turnover:.0f}x {cache} ({human_kb(th.cache_bytes / 1024)})")
    detail = (f"{th.refaults} file pages ({human_kb(th.refault_bytes / 1024)}, {per_s}/s) came back after "
              f"eviction{' in memory cgroup ' + group if group else ''}: {th.turnover:.1f} times the "
              f"{human_kb(th.cache_bytes / 1024)} of file cache it held on average{ratio}.")
    facts = {"cgroup": group, "refaults": th.refaults, "refault_bytes": th.refault_bytes,
             "cache_bytes": th.cache_bytes, "turnover": th.turnover, "stolen": th.stolen,
             "refault_steal_pct": th.refault_steal_pct, "pct": th.refault_steal_pct,
             "host_refault_steal_pct": host_pct,
             "_where": f" in memory cgroup {group}" if group else "", "_summary": summary, "_detail": detail}
    arts = list(th.source)
    if g is not None:
        limit = f" (limit {human_kb(g.limit_bytes / 1024)})" if g.limit_bytes else ""
        readers = task_names(m, g.tasks)
        if g.tasks:
            facts["_summary"] = summary + f", read by {task_names(m, g.tasks, most=1)}"
        facts["_readers"] = f"the tasks of {group}{limit}, which read it: {readers}."
        facts["tasks"] = list(g.tasks[:20])
        mine = [s for s in m.stall_groups if s.path is not None and within(s.path, group)]
        if mine:
            n = sum(len(s.stalls) for s in mine)
            facts["stall_total_us"] = sum(s.total_us for s in mine)
            facts["_stalls"] = (f" They stalled in reclaim {n} time(s), {human_ms(facts['stall_total_us'])} in "
                                f"all (longest {human_ms(max(s.max_us for s in mine))}).")
            arts.append(BPF_RECLAIM)
        else:
            facts["_stalls"] = ""
        facts["_advice"] = (" Give the group a memory limit above the files it reads over and over (its "
                            "working set), or read them with O_DIRECT / posix_fadvise(DONTNEED) if they "
                            "are streamed once per pass and need no cache.")
        return Hit("WARN", facts, arts, (g.samples[0].t, g.samples[-1].t) if len(g.samples) > 1
                   else vm_window(ds), section="cgroups")
    facts["_readers"] = ("no followed memory cgroup holds these refaults, so the readers are not known "
                         "(major faults do not count read() I/O).")
    facts["_stalls"] = ""
    facts["_advice"] = (" More memory for cache, or less anonymous memory, helps; check the disk reads "
                        "of the processes.")
    return Hit("WARN", facts, arts, vm_window(ds))


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
    needs=[SERIES_PROC_VMSTAT], section="vmstat-s")
def drop_caches(m):
    ds = m.ds
    pc, sl = _d(ds, "drop_pagecache"), _d(ds, "drop_slab")
    if pc is None and sl is None:
        raise SkipRule("needs drop_pagecache/drop_slab in /proc/vmstat")
    if not pc and not sl:
        return None
    what = ", ".join(x for x in (f"page cache x{pc}" if pc else "", f"slab x{sl}" if sl else "") if x)
    return Hit("INFO", {"_what": what, "drop_pagecache_delta": pc, "drop_slab_delta": sl},
               [SERIES_PROC_VMSTAT], vm_window(ds))
