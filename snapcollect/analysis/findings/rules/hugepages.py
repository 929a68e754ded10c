"""Compaction, transparent huge pages and the hugetlb pool.

Inputs: /proc/vmstat (``compact_stall``, ``compact_fail``,
``thp_fault_alloc``, ``thp_fault_fallback``), BPF compaction begin/end
latencies when collected, the per-process THP fault results of
bpf/thp_faults when collected (--thp-fallback), and /proc/meminfo's
hugetlb pool (pages):

    compact_stall 12          thp_fault_alloc 420
    compact_fail 9            thp_fault_fallback 61
    HugePages_Total:      64  HugePages_Free:        0  HugePages_Rsvd:        0
"""

from __future__ import annotations

from snapcollect.analysis import series
from snapcollect.analysis.findings.rule import Hit, SkipRule, rule
from snapcollect.analysis.findings.signals import min_hold_s, sustained
from snapcollect.analysis.series import vm_delta, vm_window
from snapcollect.analysis.wording import hms, human_ms
from snapcollect.bundle.names import (BPF_COMPACTION, BPF_THP_FAULTS, PROC_MEMINFO, SERIES_PROC_MEMINFO,
                                      SERIES_PROC_VMSTAT, end_of)

COMPACT_FAIL_PCT = 50.0   # heuristic
THP_FALLBACK_PCT = 10.0   # heuristic
THP_MIN_FALLBACKS = 10    # heuristic floor


@rule(
    key="COMPACTION_STALLS", area="hugepages", severities=("WARN", "INFO"),
    detects="Allocating tasks stalled to compact memory (move pages to build contiguous free "
            "blocks), and how often that failed.",
    title="Compaction stalls: {stalls} ({fail_pct:.0f}% failed)",
    explanation="Tasks stalled {stalls} time(s) in direct compaction, {fails} failed{_lat}. "
                "Compaction comes from high-order allocations (huge pages, network buffers, "
                "some drivers) meeting fragmented memory. Frequent failures mean those "
                "allocations fall back or fail: consider THP defrag=defer, or "
                "vm.compaction_proactiveness.",
    threshold="d(compact_stall) > 0 (INFO); d(compact_fail) / d(compact_stall) > 50% (WARN)",
    source="kernel Documentation/admin-guide/mm/transhuge.rst (compact_stall, compact_fail); "
           "50%: heuristic",
    needs=[(SERIES_PROC_VMSTAT, BPF_COMPACTION)], section="compaction")
def compaction_stalls(m):
    ds = m.ds
    stalls, fails = vm_delta(ds, "compact_stall"), vm_delta(ds, "compact_fail")
    bpf = list(ds.bpf.compaction)
    if stalls is None and not bpf:
        raise SkipRule("needs compact_stall in /proc/vmstat (CONFIG_COMPACTION)")
    stalls = max(stalls or 0, len(bpf))
    if stalls <= 0:
        return None
    fails = fails or 0
    pct = 100.0 * fails / stalls
    lat = ""
    facts = {}
    if bpf:
        worst = max(bpf, key=lambda c: c.latency_us)
        lat = (f"; the longest took {human_ms(worst.latency_us)} ({worst.comm}, pid {worst.pid}, "
               f"at {hms(worst.t)})")
        facts = {"max_us": worst.latency_us, "worst_comm": worst.comm, "worst_pid": worst.pid}
    facts.update({"stalls": stalls, "fails": fails, "fail_pct": pct, "_lat": lat,
                  "compact_stall_delta": stalls, "compact_fail_delta": fails})
    arts = [SERIES_PROC_VMSTAT] + ([BPF_COMPACTION] if bpf else [])
    return Hit("WARN" if pct > COMPACT_FAIL_PCT else "INFO", facts, arts, vm_window(ds))


@rule(
    key="THP_FALLBACK", area="hugepages", severities=("INFO",),
    detects="Page faults that wanted a transparent huge page and got small pages instead.",
    title="THP fallback: {pct:.0f}% of huge page faults got small pages",
    explanation="{fallback} of {attempts} THP faults fell back to 4 KiB pages (memory too "
                "fragmented, or the cgroup charge failed). {_who}The program runs, with more TLB "
                "misses. Matters for workloads tuned for huge pages; see HIGH_FRAGMENTATION "
                "and COMPACTION_STALLS.",
    threshold="d(thp_fault_fallback) / (d(thp_fault_alloc) + d(thp_fault_fallback)) > 10%, "
              "with >= 10 fallbacks",
    source="heuristic, on kernel Documentation/admin-guide/mm/transhuge.rst counters; the process "
           "from a kretprobe on do_huge_pmd_anonymous_page (VM_FAULT_FALLBACK) when collected",
    needs=[SERIES_PROC_VMSTAT], section="vmstat-s")
def thp_fallback(m):
    ds = m.ds
    alloc, fb = vm_delta(ds, "thp_fault_alloc"), vm_delta(ds, "thp_fault_fallback")
    if alloc is None or fb is None:
        raise SkipRule("needs thp_fault_alloc/thp_fault_fallback in /proc/vmstat (CONFIG_TRANSPARENT_HUGEPAGE)")
    attempts = alloc + fb
    if fb < THP_MIN_FALLBACKS or attempts == 0:
        return None
    pct = 100.0 * fb / attempts
    if pct <= THP_FALLBACK_PCT:
        return None
    facts = {"pct": pct, "fallback": fb, "attempts": attempts, "_who": "",
             "thp_fault_fallback_delta": fb, "thp_fault_alloc_delta": alloc}
    arts = [SERIES_PROC_VMSTAT]
    t = m.thp_faults
    top = t.top if t is not None and t.ok else None
    if top is not None:
        # the kretprobe saw only its own window's faults: its counts stand beside vmstat's, not for them
        facts["_who"] = (f"{top.comm or '?'} (pid {top.pid}) had the most fallbacks: {top.fallbacks:,} of its "
                         f"{top.attempts:,} THP faults ({top.fallback_share:.0%}; {t.fallbacks:,} of "
                         f"{t.attempts:,} host-wide while the kretprobe was on). ")
        facts.update({"pid": top.pid, "comm": top.comm, "process_fallbacks": top.fallbacks,
                      "process_attempts": top.attempts,
                      "processes": [{"pid": p.pid, "comm": p.comm, "attempts": p.attempts,
                                     "fallbacks": p.fallbacks} for p in t.processes[:5] if p.fallbacks]})
        arts.append(BPF_THP_FAULTS)
    return Hit("INFO", facts, arts, vm_window(ds))


@rule(
    key="HUGETLB_EXHAUSTED", area="hugepages", severities=("WARN",),
    detects="A configured hugetlb pool with no unreserved huge page left: the next mmap or "
            "shmget of huge pages fails.",
    title="Hugetlb pool exhausted: {total} huge pages, {free} free, {rsvd} reserved",
    explanation="All {total} pre-allocated huge pages ({size} kB each) are in use or reserved "
                "from {_start} to {_end}. Programs asking for more get errors (or SIGBUS). Grow "
                "vm.nr_hugepages, or find who holds them; note that the pool's memory is not "
                "available to anything else either.",
    threshold="HugePages_Total > 0 and HugePages_Free - HugePages_Rsvd <= 0, held >= 30 s (or "
              "half the window)",
    source="sar -H fields (kbhugfree, kbhugrsvd); kernel Documentation/admin-guide/mm/hugetlbpage.rst",
    needs=[(SERIES_PROC_MEMINFO, end_of(PROC_MEMINFO))], section="sar-H")
def hugetlb_exhausted(m):
    ds = m.ds
    pts = series.samples(ds, "meminfo")

    def spare(m):
        if not m.get("HugePages_Total"):
            return None
        return m.get("HugePages_Free", 0) - m.get("HugePages_Rsvd", 0)

    run = sustained([(t, spare(m)) for t, m in pts], lambda v: v <= 0, min_hold_s(ds))
    if run is None:
        return None
    m = [m for t, m in pts if run.t0 <= t <= run.t1][-1]
    return Hit("WARN", {"total": m["HugePages_Total"], "free": m.get("HugePages_Free", 0),
                        "rsvd": m.get("HugePages_Rsvd", 0), "size": m.get("Hugepagesize", "?"),
                        "_start": hms(run.t0), "_end": hms(run.t1)},
               series.sources(ds, "meminfo"), (run.t0, run.t1))
