"""The --pid/--comm deep dive: one section per followed process.

Laid out like the bcc tools print the same facts: funccount's call
counts, a log2 histogram of malloc sizes (bpftrace ``hist(arg0)``),
stackcount -U's allocation stacks as a flame graph by bytes, memleak's
outstanding allocations by stack, every page fault's stack and brk/mmap
growth; with what was probed (or why nothing could be), what the probes
cost and whether the process exited during the window.
"""

from __future__ import annotations

from snapcollect.analysis.deepdive import DeepDiveFacts, run_info
from snapcollect.analysis.model import Model
from snapcollect.report.model import Column, FlameGraph, KeyValues, Paragraph, Section, Table
from snapcollect.report.sections.bpf import short_stack, stars

ROWS = 15
FUNCTIONS = ("malloc", "calloc", "realloc", "free", "mmap", "munmap", "brk")


def _probed_text(f: DeepDiveFacts) -> str:
    t = f.target
    if not t.probed:
        return f"Nothing was probed: {t.why or 'no reason recorded'}."
    text = f"Probed {', '.join(t.probed)} in `{t.probed_file or '?'}` ({t.why})."
    if t.not_probed:
        text += " Not probed: " + "; ".join(f"{fn} ({why})" for fn, why in sorted(t.not_probed.items())) + "."
    return text


def _cost_text(f: DeepDiveFacts) -> str:
    per = f.per_call_ns
    if not per:
        return ("The probes' cost per call was not measured; uprobes on malloc cost several "
                "microseconds a call.")
    text = (f"Measured at the start: a probed malloc costs {per['two_traps'] / 1000:.1f} us more, "
            f"a free {per['one_trap'] / 1000:.1f} us more.")
    if f.overhead_s is not None:
        text += (f" For {f.calls_total:,} calls seen, the probes added about {f.overhead_s:.3f} s "
                 "to this process.")
    return text


def _table(f: DeepDiveFacts, art: str) -> list:
    t = f.target
    blocks: list = []
    rows = [{"fn": fn, "calls": t.calls.get(fn, 0)} for fn in FUNCTIONS if fn in t.probed]
    if rows:
        blocks.append(Table(f"deepdive-{t.pid}-calls", [Column("fn", "FUNC", align="left"),
                                                         Column("calls", "COUNT", ",d")],
                            rows, caption="Calls over the window (funccount)", source=[art + "target.json"]))
    if t.malloc_sizes:
        peak = max(b.count for b in t.malloc_sizes)
        blocks.append(Table(f"deepdive-{t.pid}-sizes",
                            [Column("range", "SIZE (bytes)", align="left"), Column("count", "COUNT", ",d"),
                             Column("bar", "DISTRIBUTION", align="left")],
                            [{"range": f"[{b.low}, {b.high}]", "count": b.count, "bar": stars(b.count, peak)}
                             for b in t.malloc_sizes],
                            caption="Sizes asked of malloc, log2 buckets (bpftrace hist(arg0))",
                            source=[art + "target.json"]))
    return blocks


def process_section(f: DeepDiveFacts) -> Section:
    t = f.target
    art = f"deepdive/{t.pid}/"
    sec = Section(f"deepdive-{t.pid}", f"Deep dive: {t.comm or '?'} ({t.pid})", level=3)
    items = [("process", f"{t.comm or '?'} ({t.pid})"), ("executable", t.exe or "-"),
             ("allocator", t.allocator or "none found")]
    if t.exited_at is not None:
        items.append(("exited", "during the window; its figures stop there (symbols kept)"))
    sec.blocks.append(KeyValues(items))
    sec.blocks.append(Paragraph(_probed_text(f)))
    if t.exited_at is not None:
        sec.blocks.append(Paragraph("The process exited during the window; outstanding allocations are "
                                    "those it still held at its exit."))
    sec.blocks.append(Paragraph(_cost_text(f)))
    sec.blocks += _table(f, art)
    if t.alloc_bytes:
        sec.blocks.append(FlameGraph(f"deepdive-{t.pid}-alloc-bytes", "Allocations by bytes (user stacks)",
                                     t.alloc_bytes, count_name="bytes",
                                     note="Bytes asked of malloc, calloc and realloc per stack "
                                          "(stackcount -U); the calls per stack are in "
                                          f"{art}alloc_count.folded.",
                                     source=[art + "alloc_bytes.folded"]))
    if t.outstanding:
        sec.blocks.append(Table(
            f"deepdive-{t.pid}-outstanding",
            [Column("bytes", "BYTES", ",d", unit="B"), Column("blocks", "BLOCKS", ",d"),
             Column("stack", "ALLOCATED AT", align="left")],
            [{"bytes": s.bytes, "blocks": s.count, "stack": short_stack(list(s.frames), keep=5)}
             for s in t.outstanding[:ROWS]],
            caption=(f"Outstanding at {'its exit' if t.exited_at is not None else 'the end'}, older than "
                     f"{t.outstanding_older_than_s or 0:g} s, by stack (memleak): "
                     f"{t.outstanding_total_bytes:,} bytes in all"),
            source=[art + "outstanding.json"], ranked=True))
    elif t.probed:
        sec.blocks.append(Paragraph(f"No allocation older than {t.outstanding_older_than_s or 0:g} s "
                                    "was outstanding at the end."))
    if f.leaking:
        sec.blocks.append(Paragraph("Stacks whose held bytes grew all through the window: " + "; ".join(
            f"`{short_stack(list(s.frames), keep=3)}` +{s.grew_bytes:,} bytes" for s in f.leaking[:5]) + "."))
    if t.fault_stacks:
        sec.blocks.append(FlameGraph(f"deepdive-{t.pid}-faults", "Page faults (every fault, user stacks)",
                                     t.fault_stacks, count_name="faults", source=[art + "fault_stacks.folded"]))
    if t.growth:
        sec.blocks.append(Table(
            f"deepdive-{t.pid}-growth",
            [Column("syscall", "SYSCALL", align="left"), Column("calls", "CALLS", ",d"),
             Column("bytes", "BYTES", ",d", unit="B"), Column("stack", "STACK", align="left")],
            [{"syscall": s.kind, "calls": s.count, "bytes": s.bytes, "stack": short_stack(list(s.frames))}
             for s in t.growth[:ROWS]],
            caption="brk and mmap growth by stack", source=[art + "heap_growth.json"], ranked=True))
    if t.problems:
        sec.blocks.append(Paragraph("Read with problems: " + "; ".join(t.problems[:5]) + "."))
    return sec


def deepdive_sections(m: Model) -> list[Section]:
    info = run_info(m.ds)
    if not m.deepdive and not info:
        return []
    sec = Section("deepdive", "Deep dive into chosen processes")
    if not m.deepdive:
        sec.blocks.append(Paragraph(f"Asked for, not collected: {info.get('reason') or 'no reason recorded'}."))
    for note in info.get("not_followed") or []:
        if isinstance(note, dict):
            who = f"PID {note.get('pid')}" if "pid" in note else f"name {str(note.get('comm'))[:16]!r}"
            sec.blocks.append(Paragraph(f"Not followed: {who}: {str(note.get('reason'))[:120]}."))
    sec.subsections = [process_section(f) for f in m.deepdive]
    return [sec]
