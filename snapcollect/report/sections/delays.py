"""The "Who waited on memory" view: per-process delay accounting.

Lays out the model's ``delays`` fact (analysis/delays.py, from the
``delay/taskstats`` stream, kernel taskstats netlink): each process's
swap-in, direct reclaim, thrashing and compaction waits over the window,
ms, share of the window and count, with how delay accounting was obtained.
Processes started before the collector switched delay accounting on have
no delay record: they are listed as not counted, never shown as zeros.
"""

from __future__ import annotations

from snapcollect.analysis.model import Model
from snapcollect.bundle.names import DELAY_TASKSTATS
from snapcollect.report.model import Column, Paragraph, Section, Table

LABELS = (("swapin", "swap-in"), ("freepages", "reclaim"), ("thrashing", "thrash"), ("compact", "compact"))
MAX_ROWS = 20


NOT_COUNTED = ("not counted: started before delay accounting was switched on (boot with `delayacct` or "
               "set kernel.task_delayacct=1 to count every process)")


def _how(state: str, boot_param: bool) -> str:
    if state == "enabled for the window":
        return ("Delay accounting: kernel.task_delayacct was switched on by the collector for the "
                "window and restored at the end, so the figures cover the window only. The kernel keeps a "
                "delay record only for tasks started while it is on: processes older than the switch are "
                "listed as not counted, not as processes that did not wait.")
    if state.startswith("already on"):
        how = ("booted with delayacct: every process counts" if boot_param else
               "every process started since it was set counts")
        return (f"Delay accounting: already on (kernel.task_delayacct = 1; {how}); figures are the change "
                "from the first read to the last.")
    if state.startswith("not collected"):
        return f"Delay accounting: {state}."
    return f"Delay accounting: not available ({state})."


def delay_sections(m: Model) -> list[Section]:
    d = m.delays
    s = Section("delays", "Who waited on memory (delay accounting)")
    if d is None:
        return []
    s.blocks.append(Paragraph(_how(d.state, d.boot_param)))
    if d.procs:
        cols = [Column("pid", "PID", "d"), Column("comm", "Command", "", "left")]
        for kind, label in LABELS:
            cols += [Column(f"{kind}_ms", f"{label} ms", ".1f", unit="ms"),
                     Column(f"{kind}_pct", f"{label} %", ".1f", unit="%"),
                     Column(f"{kind}_n", f"{label} n", "d")]
        rows = []
        for p in d.procs[:MAX_ROWS]:
            row = {"pid": p.pid, "comm": p.comm if p.counted else f"{p.comm} (partly counted)"}
            for kind, _label in LABELS:
                row[f"{kind}_ms"] = p.wait_ms.get(kind, 0.0)
                row[f"{kind}_pct"] = 100 * p.share.get(kind, 0.0)
                row[f"{kind}_n"] = p.count.get(kind, 0)
            rows.append(row)
        s.blocks.append(Table("delays", cols, rows, source=[DELAY_TASKSTATS],
                              caption=f"wait per process over the {d.window_s:.0f} s window "
                                      "(% of wall time; a process with many threads can pass 100%)"
                                      + ("; partly counted: started before the switch, only the threads "
                                         "it started since have delay records"
                                         if any(not p.counted for p in d.procs[:MAX_ROWS]) else "")))
    elif m.ds.delays:
        s.blocks.append(Paragraph("No counted process waited for swap-in, reclaim, thrashing or "
                                  "compaction in the window." if d.uncounted else
                                  "No followed process waited for swap-in, reclaim, thrashing or "
                                  "compaction in the window."))
    if d.uncounted:
        names = ", ".join(f"{p.comm or '?'} (pid {p.pid})" for p in d.uncounted[:MAX_ROWS])
        more = f" and {len(d.uncounted) - MAX_ROWS} more" if len(d.uncounted) > MAX_ROWS else ""
        s.blocks.append(Paragraph(f"{names}{more}: {NOT_COUNTED}."))
    if d.residency is not None:
        r = d.residency
        s.blocks.append(Paragraph(
            f"Swap residency (Little's law): {r.mean_swapped_pages:.0f} pages in swap on average / "
            f"{r.swapin_pages_per_s:.1f} pages read back per second = a swapped page stays out "
            f"{r.mean_s:.1f} s on average before it is read back. A mean, not a distribution: a "
            "histogram needs each page's swap-out and swap-in times, which only kprobes on the "
            "swap paths reading kernel structures give, not collected here."))
    return [s]
