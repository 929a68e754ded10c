"""Inside reclaim, from BPF: slow slab shrinkers, a busy kswapd, failing page migration.

Inputs: the model's ``vmscan`` facts (analysis/vmscan.py) from the
tracepoints vmscan:mm_shrink_slab_start/end, vmscan:mm_vmscan_kswapd_wake/
sleep and migrate:mm_migrate_pages, and for KSWAPD_BUSY the direct
reclaim it failed to prevent (BPF reclaim stalls, or /proc/vmstat)::

    bpf/shrinkers   {"callback": "super_cache_scan", "nid": 0, "calls": 92,
                     "total_ns": 180690427, "max_ns": 102808057, "freed": 146952}
    bpf/kswapd_runs {"t": ..., "nid": 0, "awake_ns": 4200000, "wakes": 2}
    bpf/migration   {"reason": 0, "mode": 2, "succeeded": 114690, "failed": 45}
    allocstall_normal 12          pgscan_direct 3072
"""

from __future__ import annotations

from snapcollect.analysis.findings.rule import Hit, SkipRule, rule
from snapcollect.analysis.series import vm_delta, vm_window
from snapcollect.analysis.wording import hms, human_ms
from snapcollect.bundle.names import (BPF_KSWAPD_RUNS, BPF_MIGRATION, BPF_RECLAIM, BPF_SHRINKER_SLOW,
                                      BPF_SHRINKERS, SERIES_PROC_VMSTAT)

SHRINK_CALL_NS = 10_000_000        # heuristic: a shrinker call is normally tens of us; 10 ms is felt
SHRINK_HIGH_NS = 100_000_000       # as DIRECT_RECLAIM_STALLS: one 100 ms stall is felt by users
SHRINK_SHARE = 0.05                # heuristic: 5 % of the window inside one shrinker
KSWAPD_SHARE = 0.50                # heuristic: kswapd awake half the window
MIGRATE_FAILED_SHARE = 0.10        # heuristic: 1 page in 10 failed to move
MIGRATE_FAILED_MIN = 1000          # heuristic floor: ~4 MiB of pages


def _facts(m, artifact: str):
    v = m.vmscan
    if v is None or not v.ok(artifact):
        st = (v.status.get(artifact) if v else None) or ("missing", None)
        raise SkipRule(f"needs {artifact} ({st[0]}{': ' + st[1] if st[1] else ''})")
    return v


@rule(
    key="SLOW_SHRINKER", area="reclaim", severities=("WARN", "HIGH"),
    detects="A slab shrinker (the callback reclaim calls to free dentries, inodes and other "
            "kernel caches) took long: every task reclaiming on that node waited for it.",
    title="Slow slab shrinker {callback}: {_what}",
    explanation="{_detail} Shrinkers run inside reclaim (kswapd's and every direct reclaimer's), "
                "so a slow one stretches every reclaim stall. Large dentry/inode caches "
                "(super_cache_scan), a filesystem's own caches (ext4_es_scan, xfs) or a driver's "
                "shrinker are the usual culprits: see the Slab shrinkers section and slabtop.",
    threshold="one shrink_slab call >= 10 ms (WARN; HIGH >= 100 ms), or one callback's calls "
              ">= 5% of the traced window (WARN)",
    source="vmscan:mm_shrink_slab_start/end (mm/shrinker.c do_shrink_slab); 10 ms, 100 ms, 5%: heuristic",
    needs=[BPF_SHRINKERS], section="shrinkers")
def slow_shrinker(m):
    v = _facts(m, BPF_SHRINKERS)
    hot = [s for s in v.shrinkers
           if s.max_ns >= SHRINK_CALL_NS or (s.share is not None and s.share >= SHRINK_SHARE)]
    if not hot:
        return None
    s = max(hot, key=lambda s: (s.max_ns, s.total_ns))
    slow = [c for c in v.slow_calls if c.callback == s.callback]
    share = f"{s.share * 100:.1f}% of the traced window" if s.share is not None else "share unknown"
    what = f"longest call {human_ms(s.max_ns / 1000)}, {human_ms(s.total_ns / 1000)} in {s.calls} call(s)"
    detail = (f"{s.callback} (node(s) {', '.join(map(str, s.nodes))}) ran {s.calls} time(s) for "
              f"{human_ms(s.total_ns / 1000)} in all ({share}), longest {human_ms(s.max_ns / 1000)}; "
              f"it freed {s.freed} of {s.scanned} object(s) scanned.")
    if slow:
        tasks = sorted({(c.comm, c.pid) for c in slow})
        detail += (f" {len(slow)} call(s) took 10 ms or more, between {hms(slow[0].t)} and "
                   f"{hms(slow[-1].t)}, in " + ", ".join(f"{c} (pid {p})" for c, p in tasks[:5]) + ".")
    others = [o.callback for o in hot if o.callback != s.callback]
    if others:
        detail += " Also slow: " + ", ".join(others[:5]) + "."
    arts = [BPF_SHRINKERS] + ([BPF_SHRINKER_SLOW] if slow else [])
    tr = (slow[0].t, max(c.t + c.latency_ns / 1e9 for c in slow)) if slow else vm_window(m.ds)
    sev = "HIGH" if s.max_ns >= SHRINK_HIGH_NS else "WARN"
    return Hit(sev, {"callback": s.callback, "address": s.address, "nodes": list(s.nodes), "calls": s.calls,
                     "total_ns": s.total_ns, "max_ns": s.max_ns, "share": s.share, "freed": s.freed,
                     "scanned": s.scanned, "slow_calls": len(slow), "also_slow": others,
                     "_what": what, "_detail": detail}, arts, tr)


@rule(
    key="KSWAPD_BUSY", area="reclaim", severities=("INFO", "WARN"),
    detects="kswapd, the per-node background reclaimer, was awake for much of the window: "
            "free memory kept falling below the low watermark faster than it could restore it.",
    title="kswapd on node {nid} awake {_pct:.0f}% of the window{_direct}",
    explanation="{_detail} kswapd wakes when a zone falls below its low watermark and sleeps once "
                "the high watermark is restored; awake most of the time means allocations "
                "outpace background reclaim. {_advice}",
    threshold="kswapd awake >= 50% of the traced window on a node: WARN when direct reclaim also "
              "happened (BPF reclaim stalls of kind direct, or d(allocstall) / d(pgscan_direct) > 0), "
              "else INFO",
    source="vmscan:mm_vmscan_kswapd_wake/sleep (mm/vmscan.c kswapd()); 50%: heuristic (the "
           "direct reclaim means kswapd did not keep up)",
    needs=[BPF_KSWAPD_RUNS], section="kswapd-activity")
def kswapd_busy(m):
    v = _facts(m, BPF_KSWAPD_RUNS)
    if v.window_s is None:
        raise SkipRule("needs the traced window's length (manifest bpf.attached_mono/detached_mono)")
    busy = [n for n in v.kswapd if n.share is not None and n.share >= KSWAPD_SHARE]
    if not busy:
        return None
    n = max(busy, key=lambda n: (n.share, -n.nid))
    ds = m.ds
    direct_bpf = [s for s in ds.bpf.reclaim if s.kind == "direct"]
    stalls, scand = vm_delta(ds, "allocstall"), vm_delta(ds, "pgscan_direct")
    direct = bool(direct_bpf) or bool(stalls) or bool(scand)
    detail = (f"kswapd{n.nid} ran {n.runs} time(s) for {n.awake_ns / 1e9:.1f} s of the "
              f"{v.window_s:.1f} s traced, the longest {n.longest_ns / 1e9:.1f} s from {hms(n.longest_t)}")
    if n.runs_without_start:
        detail += f"; {n.runs_without_start} run(s) were already going when tracing began (not counted)"
    detail += "."
    if direct:
        parts = []
        if direct_bpf:
            parts.append(f"{len(direct_bpf)} direct reclaim stall(s) traced")
        if stalls:
            parts.append(f"allocstall +{stalls}")
        if scand:
            parts.append(f"pgscan_direct +{scand}")
        detail += " Meanwhile allocating tasks reclaimed themselves: " + ", ".join(parts) + "."
        advice = ("Raise vm.watermark_scale_factor (kswapd starts earlier and frees more), or find "
                  "what allocates (the processes and cgroups sections).")
    else:
        advice = "No direct reclaim yet: kswapd kept up, at the cost of a CPU."
    arts = [BPF_KSWAPD_RUNS] + ([BPF_RECLAIM] if direct_bpf else []) + (
        [SERIES_PROC_VMSTAT] if (stalls or scand) else [])
    runs = [r for r in v.kswapd_runs if r.nid == n.nid]
    tr = (runs[0].t, max(r.t + r.awake_ns / 1e9 for r in runs)) if runs else vm_window(ds)
    return Hit("WARN" if direct else "INFO", {
        "nid": n.nid, "share": n.share, "awake_ns": n.awake_ns, "runs": n.runs, "longest_ns": n.longest_ns,
        "runs_without_start": n.runs_without_start, "window_s": v.window_s,
        "direct_reclaim_stalls": len(direct_bpf), "allocstall_delta": stalls, "pgscan_direct_delta": scand,
        "_pct": n.share * 100, "_direct": " while tasks reclaimed directly" if direct else "",
        "_detail": detail, "_advice": advice}, arts, tr)


@rule(
    key="MIGRATION_FAILING", area="fragmentation", severities=("WARN",),
    detects="Page migration (compaction, NUMA balancing, memory hotplug, mbind) failed for many "
            "of the pages it tried to move: pinned, locked or under writeback pages block it.",
    title="Page migration failing for {reason}: {failed} of {tried} pages ({_pct:.0f}%){_who}",
    explanation="{_detail} Pages that cannot move keep memory fragmented (compaction) or on the "
                "wrong node (NUMA balancing, demotion). Long-term pinned pages (RDMA, VFIO, "
                "io_uring fixed buffers), mlocked or dirty pages under writeback are the usual "
                "reasons.",
    threshold="for one migration reason: failed pages >= 10% of succeeded + failed and >= 1000 pages",
    source="migrate:mm_migrate_pages (mm/migrate.c migrate_pages); 10%, 1000 pages: heuristic",
    needs=[BPF_MIGRATION], section="migration")
def migration_failing(m):
    v = _facts(m, BPF_MIGRATION)
    acc: dict[str, list[int]] = {}
    for r in v.migration_by_reason:
        a = acc.setdefault(r.reason, [0, 0])
        a[0] += r.succeeded
        a[1] += r.failed
    bad = [(reason, ok, failed) for reason, (ok, failed) in acc.items()
           if failed >= MIGRATE_FAILED_MIN and failed >= MIGRATE_FAILED_SHARE * (ok + failed)]
    if not bad:
        return None
    reason, ok, failed = max(bad, key=lambda b: (b[2], b[0]))
    procs = sorted((p for p in v.migration_by_proc if p.reason == reason and p.failed),
                   key=lambda p: (-p.failed, p.pid or 0))
    who = f", worst {procs[0].comm} (pid {procs[0].pid})" if procs else ""
    detail = (f"migrate_pages() for {reason} moved {ok} page(s) and failed {failed}.")
    if procs:
        detail += " By process: " + ", ".join(f"{p.comm} (pid {p.pid}) {p.failed} failed of "
                                              f"{p.succeeded + p.failed}" for p in procs[:5]) + "."
    others = [b[0] for b in bad if b[0] != reason]
    if others:
        detail += " Also failing: " + ", ".join(others) + "."
    return Hit("WARN", {"reason": reason, "succeeded": ok, "failed": failed, "tried": ok + failed,
                        "failed_share": failed / (ok + failed),
                        "by_process": [{"pid": p.pid, "comm": p.comm, "failed": p.failed,
                                        "succeeded": p.succeeded} for p in procs[:10]],
                        "also_failing": others, "_pct": 100.0 * failed / (ok + failed), "_who": who,
                        "_detail": detail}, [BPF_MIGRATION], vm_window(m.ds))
