"""Kernel log lines from the window (and the last ones before it).

What a reader looks for first is shown: lines about memory
(``MEMORY_LINE``: OOM-killer invocations and kills, allocation failures,
memory cgroup limits, swap being added or removed, kswapd, hung tasks
blocked on memory). Every line of the window follows, folded (HTML and
Markdown ``<details>``); the PDF says where to find it instead: the OOM
report's call traces, register dumps and memcg statistics run to
hundreds of lines that the OOM section already sums up.
"""

from __future__ import annotations

import re

from snapcollect.analysis.model import Model
from snapcollect.bundle.names import KMSG
from snapcollect.parsers.records import KmsgLine
from snapcollect.report.formatting import hms
from snapcollect.report.model import Paragraph, Preformatted, Section
from snapcollect.report.sections.common import absent

MAX_LINES = 400
BEFORE_ALL = 20

# One regex for "about memory": the headline lines of an OOM report (not its
# stack frames, registers and memcg stat dump) and the other kernel messages
# an on-call wants to see beside them.
MEMORY_LINE = re.compile(
    r"invoked oom-killer|out of memory|killed process|oom_reaper|oom-kill:|oom_kill_process:|"
    r"page allocation (?:failure|stall)|\bmemory: usage|memory\+swap: usage|memory cgroup|"
    r"adding \d+k swap|\bswapo(?:n|ff)\b|kswapd\d*\b.*(?:blocked|stuck)|blocked for more than|"
    r"hugetlb|hugepages?\b.*(?:fail|alloc)|\bvmalloc\b.*(?:fail|error)|lowmem|"
    r"low on memory|memory pressure|psi:", re.I)
# Stack frames ("  do_anonymous_page+0x343/0xa20") name kernel functions
# such as mem_cgroup_out_of_memory: never a headline.
FRAME = re.compile(r"^\s*(?:\?\s*)?[\w.]+\+0x[0-9a-f]+/0x[0-9a-f]+", re.I)


def is_memory_line(text: str) -> bool:
    return bool(MEMORY_LINE.search(text)) and not FRAME.match(text)


def _line(k: KmsgLine) -> str:
    when = hms(k.t) if k.t is not None else f"{k.ts_us / 1e6:12.6f}"
    prio = k.level
    return f"[{when}] {prio:<7} {k.text}"


def log_blocks(lines: list[KmsgLine], caption: str, everything: str, line=None) -> list:
    """The memory lines of ``lines`` shown, and all of them folded (each as ``line(k)``)."""
    _line_of = line or _line
    shown = [k for k in lines if is_memory_line(str(k.text))]
    out: list = []
    if shown:
        out.append(Preformatted("\n".join(_line_of(k) for k in shown), caption=caption, source=[KMSG]))
    if len(shown) < len(lines):
        out.append(Preformatted(
            "\n".join(_line_of(k) for k in lines), caption=f"{everything} ({len(lines)} lines)", source=[KMSG],
            collapsed=True,
            collapsed_note=(f"{everything}: {len(lines)} lines, {len(lines) - len(shown)} of them not about "
                            "memory or part of an OOM report's dump, are in the HTML and Markdown reports "
                            "and in the bundle (snapcollect show BUNDLE --extract kmsg).")))
    return out


def kmsg_sections(m: Model) -> list[Section]:
    ds = m.ds
    s = Section("kmsg", "Kernel log")
    if not ds.kmsg:
        if KMSG in ds.missing:
            s.blocks.append(absent(ds, "kernel log", KMSG))
        else:
            s.blocks.append(Paragraph("The kernel logged nothing during the window."))
        return [s]
    inside = [k for k in ds.kmsg if not k.before_window]
    before_all = [k for k in ds.kmsg if k.before_window]
    if inside:
        shown = inside[-MAX_LINES:]
        cap = "Lines about memory logged during the window (UTC, bundle clock)"
        everything = "Every line logged during the window"
        if len(inside) > len(shown):
            everything += f" (the last {len(shown)} of {len(inside)})"
        blocks = log_blocks(shown, cap, everything)
        if not any(not b.collapsed for b in blocks):
            s.blocks.append(Paragraph(f"None of the {len(shown)} lines logged during the window is about "
                                      "memory."))
        s.blocks.extend(blocks)
    else:
        s.blocks.append(Paragraph("The kernel logged nothing during the window."))
    if before_all:
        last = before_all[-BEFORE_ALL:]
        s.blocks += log_blocks(last, "Lines about memory just before the window",
                               f"The last {len(last)} lines before the window")
    return [s]
