"""Allocations of a --pid/--comm process that were not freed and kept growing.

Input: the deep dive's outstanding blocks at the end of the window (or
at the process's exit), older than a threshold and grouped by their
allocation stack, and the bytes each stack held at every second of the
window (analysis/deepdive.py), from uprobes on the process's malloc::

    deepdive/4242/outstanding.json  {"older_than_s": 1.0, "stacks": [{"frames": ["main", "leak_here"],
                                     "bytes": 819200, "blocks": 200}], "held_samples": [...]}
"""

from __future__ import annotations

from snapcollect.analysis.deepdive import LEAK_MIN_BYTES
from snapcollect.analysis.findings.rule import Hit, rule
from snapcollect.analysis.wording import human_kb

WARN_BYTES = 64 * 1024 * 1024    # heuristic: a leak this large in one window matters on any host


@rule(
    key="LEAKING_ALLOCATION_STACK", area="processes", severities=("WARN", "INFO"),
    detects="An allocation stack of a process followed with --pid/--comm whose blocks were not "
            "freed and whose held bytes grew all through the window: where a leak is allocated.",
    title="{comm} ({pid}) leaks from {_where}",
    explanation="{_outstanding} in {blocks} blocks allocated at {_stack} were still held at "
                "{_when}, older than {older_than_s:g} s, and what that stack holds grew by {_grew} "
                "over the window.{_others}",
    threshold="the bytes a stack holds never drop by more than 1% between samples (3 or more) and "
              "grow >= 64 KiB, with blocks older than the threshold outstanding (INFO); WARN from 64 MiB",
    source="memleak-bpfcc's outstanding allocations (-o) with a trend; sizes are heuristic",
    needs=["deepdive"], section="deepdive")
def leaking_allocation_stack(m):
    leaks = [(f, leak) for f in m.deepdive for leak in f.leaking]
    if not leaks:
        return None
    leaks.sort(key=lambda fl: -fl[1].outstanding_bytes)
    f, leak = leaks[0]
    t = f.target
    inner = [fr for fr in leak.frames if fr not in ("[unknown]", "[stack not recorded]")]
    where = inner[-1] if inner else "[unknown]"
    others = (f" {len(leaks) - 1} more stack(s) leak as well." if len(leaks) > 1 else "")
    return Hit("WARN" if leak.outstanding_bytes >= WARN_BYTES else "INFO", {
        "comm": t.comm or "?", "pid": t.pid, "_where": where,
        "_outstanding": human_kb(leak.outstanding_bytes / 1024), "outstanding_bytes": leak.outstanding_bytes,
        "blocks": leak.blocks, "_stack": ";".join(leak.frames[-4:]), "frames": list(leak.frames),
        "_when": "its exit" if f.exited else "the end of the window",
        "older_than_s": t.outstanding_older_than_s or 0.0, "_grew": human_kb(leak.grew_bytes / 1024),
        "grew_bytes": leak.grew_bytes, "min_bytes": LEAK_MIN_BYTES, "_others": others,
    }, [f"deepdive/{t.pid}/outstanding.json"], (leak.first_t, leak.last_t), section=f"deepdive-{t.pid}")
