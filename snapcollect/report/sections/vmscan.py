"""Report sections of reclaim's insides, from BPF: slab shrinkers, kswapd
activity per node, page migration.

Lays out the model's ``vmscan`` facts (analysis/vmscan.py; the tracepoints
vmscan:mm_shrink_slab_start/end, vmscan:mm_vmscan_kswapd_wake/sleep,
migrate:mm_migrate_pages): the shrinker latency histogram reads like
bcc's print_log2_hist; when an artifact was not collected the section
says why and how to fix it.
"""

from __future__ import annotations

from snapcollect.analysis.model import Model
from snapcollect.analysis.vmscan import VmscanFacts
from snapcollect.bundle.names import BPF_KSWAPD_RUNS, BPF_MIGRATION, BPF_SHRINKER_SLOW, BPF_SHRINKERS
from snapcollect.report.model import Column, Paragraph, Preformatted, Section, Table
from snapcollect.report.sections.common import stars

TIME = Column("t", "TIME", "time", "left")
WORST_ROWS = 20

HIST_SHOWN = 5          # shrinkers given a histogram: the ones with most time


def _unavailable(v: VmscanFacts, artifact: str) -> Paragraph | None:
    st, reason = v.status.get(artifact, ("missing", None))
    if st == "ok":
        return None
    return Paragraph(f"Not collected (`{artifact}` {st}): {reason or 'no reason recorded'}.")


def _pct(share: float | None) -> float | None:
    return None if share is None else share * 100


def hist_text(buckets, unit: str = "usecs") -> str:
    """bcc's print_log2_hist layout."""
    if not buckets:
        return ""
    peak = max(b.count for b in buckets)
    width = max(len(f"{b.low} -> {b.high}") for b in buckets)
    lines = [f"{unit:>{width}} : count     distribution"]
    for b in buckets:
        lines.append(f"{b.label:>{width}} : {b.count:<8}  |{stars(b.count, peak):<40}|")
    return "\n".join(lines)


def shrinkers_section(v: VmscanFacts) -> Section:
    sec = Section("shrinkers", "Slab shrinkers")
    missing = _unavailable(v, BPF_SHRINKERS)
    if missing:
        sec.blocks.append(missing)
        return sec
    if not v.shrinkers:
        sec.blocks.append(Paragraph("No slab shrinker ran during the window (BPF "
                                    "`vmscan:mm_shrink_slab_start/end`): reclaim did not reach the "
                                    "kernel caches."))
        return sec
    total_calls = sum(s.calls for s in v.shrinkers)
    sec.blocks.append(Paragraph(
        f"{len(v.shrinkers)} shrinker callback(s) ran {total_calls} time(s); each call frees objects "
        "of a kernel cache (dentries and inodes: `super_cache_scan`) inside reclaim, so its time is "
        "part of every reclaim stall on that node."
        + (f" {v.shrinker_note}." if v.shrinker_note else "")))
    sec.blocks.append(Table(
        "shrinkers",
        [Column("callback", "CALLBACK", align="left"), Column("nodes", "NODE", align="left"),
         Column("calls", "CALLS"), Column("total_ms", "TOTAL(ms)", ".2f", unit="ms"),
         Column("avg_us", "AVG(us)", ".0f", unit="us"), Column("max_ms", "MAX(ms)", ".2f", unit="ms"),
         Column("share", "%WINDOW", ".2f", unit="%"), Column("freed", "FREED"), Column("scanned", "SCANNED")],
        [{"callback": s.callback, "nodes": ",".join(map(str, s.nodes)), "calls": s.calls,
          "total_ms": s.total_ns / 1e6, "avg_us": s.total_ns / 1e3 / s.calls if s.calls else None,
          "max_ms": s.max_ns / 1e6, "share": _pct(s.share), "freed": s.freed, "scanned": s.scanned}
         for s in v.shrinkers[:WORST_ROWS]],
        caption="Time in each shrinker callback, most first (objects freed as the shrinker returns them)",
        source=[BPF_SHRINKERS], ranked=True))
    for s in [s for s in v.shrinkers if s.hist][:HIST_SHOWN]:
        sec.blocks.append(Preformatted(hist_text(s.hist), caption=f"{s.callback} call latency (usecs)",
                                       source=[BPF_SHRINKERS]))
    if v.slow_calls:
        slow = sorted(v.slow_calls, key=lambda c: (-c.latency_ns, c.t))[:WORST_ROWS]
        sec.blocks.append(Table(
            "shrinker-slow",
            [TIME, Column("callback", "CALLBACK", align="left"), Column("nid", "NODE"),
             Column("lat_ms", "LAT(ms)", ".2f", unit="ms"), Column("freed", "FREED"),
             Column("comm", "COMM", align="left"), Column("pid", "PID")],
            [{"t": c.t, "callback": c.callback, "nid": c.nid, "lat_ms": c.latency_ns / 1e6, "freed": c.freed,
              "comm": c.comm, "pid": c.pid} for c in slow],
            caption=f"Shrinker calls of 10 ms or more ({len(slow)} of {len(v.slow_calls)}), slowest first",
            source=[BPF_SHRINKER_SLOW], ranked=True))
    elif v.ok(BPF_SHRINKER_SLOW):
        sec.blocks.append(Paragraph("No shrinker call took 10 ms or more."))
    return sec


def kswapd_activity_section(v: VmscanFacts) -> Section:
    sec = Section("kswapd-activity", "kswapd")
    missing = _unavailable(v, BPF_KSWAPD_RUNS)
    if missing:
        sec.blocks.append(missing)
        return sec
    if not v.kswapd:
        sec.blocks.append(Paragraph("kswapd did not run during the window (BPF "
                                    "`vmscan:mm_vmscan_kswapd_wake/sleep`)."))
        return sec
    window = f"{v.window_s:.1f} s traced" if v.window_s else "window length unknown"
    sec.blocks.append(Table(
        "kswapd-nodes",
        [Column("nid", "NODE"), Column("runs", "RUNS"), Column("awake_s", "AWAKE(s)", ".3f", unit="s"),
         Column("share", "%WINDOW", ".1f", unit="%"), Column("longest_s", "LONGEST(s)", ".3f", unit="s"),
         Column("longest_t", "LONGEST AT", "time", "left"), Column("wakes", "WAKE-UPS"),
         Column("no_start", "RUNNING AT START")],
        [{"nid": n.nid, "runs": n.runs, "awake_s": n.awake_ns / 1e9, "share": _pct(n.share),
          "longest_s": n.longest_ns / 1e9, "longest_t": n.longest_t, "wakes": n.wakes,
          "no_start": n.runs_without_start} for n in v.kswapd],
        caption=f"kswapd per node, wake to sleep ({window}); a run already going when tracing began "
                "has no start and is counted apart, one still going at the end is not seen",
        source=[BPF_KSWAPD_RUNS]))
    longest = sorted(v.kswapd_runs, key=lambda r: (-r.awake_ns, r.t))[:WORST_ROWS]
    if longest:
        sec.blocks.append(Table(
            "kswapd-runs",
            [TIME, Column("nid", "NODE"), Column("order", "ORDER"),
             Column("awake_ms", "AWAKE(ms)", ".2f", unit="ms"), Column("wakes", "WAKE-UPS")],
            [{"t": r.t, "nid": r.nid, "order": r.order, "awake_ms": r.awake_ns / 1e6, "wakes": r.wakes}
             for r in longest],
            caption=f"Longest kswapd runs ({len(longest)} of {len(v.kswapd_runs)})",
            source=[BPF_KSWAPD_RUNS], ranked=True))
    return sec


def _mig_row(r) -> dict:
    tried = r.succeeded + r.failed
    return {"reason": r.reason, "mode": r.mode, "pid": r.pid, "comm": r.comm, "calls": r.calls,
            "succeeded": r.succeeded, "failed": r.failed,
            "failed_pct": 100.0 * r.failed / tried if tried else None,
            "thp_succeeded": r.thp_succeeded, "thp_failed": r.thp_failed, "thp_split": r.thp_split,
            "large_folio_split": r.large_folio_split}


_COUNTS = [Column("calls", "CALLS"), Column("succeeded", "MOVED"), Column("failed", "FAILED"),
           Column("failed_pct", "%FAILED", ".1f", unit="%"), Column("thp_succeeded", "THP MOVED"),
           Column("thp_failed", "THP FAILED"), Column("thp_split", "THP SPLIT"),
           Column("large_folio_split", "FOLIO SPLIT")]


def migration_section(v: VmscanFacts) -> Section:
    sec = Section("migration", "Page migration")
    missing = _unavailable(v, BPF_MIGRATION)
    if missing:
        sec.blocks.append(missing)
        return sec
    if not v.migration_by_reason:
        sec.blocks.append(Paragraph("No page was migrated during the window (BPF "
                                    "`migrate:mm_migrate_pages`)."))
        return sec
    sec.blocks.append(Table(
        "migration-by-reason",
        [Column("reason", "REASON", align="left"), Column("mode", "MODE", align="left")] + _COUNTS,
        [_mig_row(r) for r in v.migration_by_reason],
        caption="migrate_pages() calls per reason and mode; MOVED and FAILED are pages",
        source=[BPF_MIGRATION]))
    sec.blocks.append(Table(
        "migration-by-process",
        [Column("pid", "PID"), Column("comm", "COMM", align="left"), Column("reason", "REASON", align="left")]
        + _COUNTS,
        [_mig_row(r) for r in v.migration_by_proc[:WORST_ROWS]],
        caption="Per calling process (kcompactd, khugepaged, or the allocating task), most pages first",
        source=[BPF_MIGRATION], ranked=True))
    return sec


def vmscan_sections(m: Model) -> list[Section]:
    v = m.vmscan
    if v is None:
        return []
    # a bundle from before an artifact existed: nothing to say beside the other sections
    return [build(v) for artifact, build in ((BPF_SHRINKERS, shrinkers_section),
                                              (BPF_KSWAPD_RUNS, kswapd_activity_section),
                                              (BPF_MIGRATION, migration_section))
            if v.status.get(artifact, ("missing", None))[0] != "missing"]
