"""Report section: anonymous THP faults that fell back to 4 KiB pages, per process.

Lays out the model's ``thp_faults`` facts (analysis/thp_faults.py; a
kretprobe on do_huge_pmd_anonymous_page, collected with --thp-fallback):
the host's attempts and fallbacks while the probe was on, and the
processes whose huge-page faults fell back, most fallbacks first. Where
it was not collected the section says why and where the host-wide
counters are instead.
"""

from __future__ import annotations

from snapcollect.analysis.model import Model
from snapcollect.analysis.thp_faults import ThpFaultFacts
from snapcollect.bundle.names import BPF_THP_FAULTS, SERIES_PROC_VMSTAT
from snapcollect.report.model import Column, Paragraph, Section, Table
from snapcollect.report.sections.common import not_measured, unless_missing

SECTION_ID = "thp-faults"
ROWS = 20


def thp_faults_section(r: ThpFaultFacts) -> Section:
    sec = Section(SECTION_ID, "THP fault fallbacks by process", level=3)
    if not r.ok:
        sec.blocks.append(not_measured(BPF_THP_FAULTS, r.status, f"The host's THP faults and fallbacks are in "
                                       f"`{SERIES_PROC_VMSTAT}` (thp_fault_alloc, thp_fault_fallback)."))
        return sec
    if not r.attempts:
        sec.blocks.append(Paragraph("No anonymous fault asked for a transparent huge page while the probe was on."))
        return sec
    share = r.fallback_share or 0.0
    sec.blocks.append(Paragraph(
        f"{r.attempts:,} anonymous fault(s) asked for a transparent huge page while the probe was on: "
        f"{r.mapped:,} mapped one, {r.fallbacks:,} ({share:.0%}) fell back to 4 KiB pages (no huge page "
        "could be allocated, the memory cgroup refused the charge, or the range did not fit)"
        + (f", {r.other:,} ended otherwise (OOM, signal)" if r.other else "") + ". A fallback costs TLB "
        "reach, not correctness: the program runs on small pages."
        + (f" {r.map_full:,} fault(s) of processes beyond the map's {r.tracked_entries:,} are in the "
           "totals only." if r.map_full else "")
        + (" Left out of the table: " + "; ".join(r.warnings[:3]) + "." if r.warnings else "")))
    rows = [{"pid": p.pid, "comm": p.comm, "attempts": p.attempts, "fallbacks": p.fallbacks,
             "share": p.fallback_share * 100, "other": p.other} for p in r.processes[:ROWS]]
    if rows:
        sec.blocks.append(Table(
            "thp-faults-processes",
            [Column("pid", "PID"), Column("comm", "COMMAND", align="left"),
             Column("attempts", "THP FAULTS", ",d"), Column("fallbacks", "FALLBACKS", ",d"),
             Column("share", "%FALLBACK", ".0f", unit="%"), Column("other", "OTHER", ",d")],
            rows, caption="Processes whose anonymous faults asked for a huge page (the faulting task)",
            source=[BPF_THP_FAULTS]))
    return sec


def thp_faults_sections(m: Model) -> list[Section]:
    return unless_missing(m.thp_faults, thp_faults_section)
