"""Report section: how long pages stayed in swap before a fault read them back.

Lays out the model's ``swap_residency`` facts (analysis/swap_residency.py;
kprobes on the swap slot allocation and the swap cache lookup of a
swap-in fault): the histogram reads like bcc's print_log2_hist, the
table names the processes that read back what they had swapped. Where
the kernel allows no kprobes the section says so and where the swap-in
counts are instead.
"""

from __future__ import annotations

from snapcollect.analysis.model import Model
from snapcollect.analysis.swap_residency import SwapResidencyFacts
from snapcollect.bundle.names import BPF_FAULT_FILES, BPF_SWAP_RESIDENCY
from snapcollect.report.model import Column, Paragraph, Preformatted, Section, Table
from snapcollect.report.sections.common import not_measured, unless_missing
from snapcollect.report.sections.vmscan import hist_text

ROWS = 20


def _us(b) -> str:
    """A bucket's bounds in the unit that reads best (its bounds are microseconds)."""
    def one(v: int) -> str:
        if v >= 1_000_000:
            return f"{v / 1e6:.1f} s"
        if v >= 1000:
            return f"{v / 1000:.0f} ms"
        return f"{v} us"
    return f"{one(b.low)} to {one(b.high)}"


def swap_residency_section(r: SwapResidencyFacts) -> Section:
    sec = Section("swap-residency", "Swap residency (time from swap-out to swap-in)")
    if not r.ok:
        sec.blocks.append(not_measured(BPF_SWAP_RESIDENCY, r.status, f"Swap-ins per process are in "
                                       f"`{BPF_FAULT_FILES}` (Swap-ins by process) either way."))
        return sec
    if not r.read_back:
        sec.blocks.append(Paragraph(
            f"{r.swapped_out:,} page(s) were swapped out while the probes were on and none of them was read "
            "back in the window."))
        return sec
    soon = (f" {r.soon_share:.0%} of the pages read back had been out less than a second: the same pages "
            "go to swap and come back, which is swap thrashing." if r.soon_share is not None else "")
    median = f", the median between {_us(r.median)}" if r.median is not None else ""
    sec.blocks.append(Paragraph(
        f"{r.swapped_out:,} page(s) were given a swap slot (swapped out) while the probes were on; "
        f"{r.read_back:,} of them were faulted back in the window{median}.{soon} Pages swapped out before "
        f"the window, or read back after it, are not counted; at most {r.tracked_entries:,} pages are "
        "followed at a time (the oldest are forgotten beyond that, which shortens the long end)."
        + (f" {r.map_full:,} update(s) found a map full." if r.map_full else "")))
    sec.blocks.append(Preformatted(hist_text(list(r.buckets)), caption="Time in swap before the swap-in "
                                   "(log2 buckets, microseconds)", source=[BPF_SWAP_RESIDENCY]))
    rows = [{"pid": p.pid, "comm": p.comm, "swapins": p.swapins, "mean_ms": p.mean_us / 1000,
             "soon": p.soon_share * 100} for p in r.processes[:ROWS]]
    if rows:
        sec.blocks.append(Table(
            "swap-residency-processes",
            [Column("pid", "PID"), Column("comm", "COMMAND", align="left"),
             Column("swapins", "SWAP-INS"), Column("mean_ms", "MEAN TIME OUT(ms)", ".1f", unit="ms"),
             Column("soon", "%BACK<1s", ".0f", unit="%")],
            rows, caption="Processes that faulted their swapped pages back (the faulting task)",
            source=[BPF_SWAP_RESIDENCY]))
    return sec


def swap_residency_sections(m: Model) -> list[Section]:
    return unless_missing(m.swap_residency, swap_residency_section)
