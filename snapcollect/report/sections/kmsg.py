"""Kernel log lines from the window (and the last ones before it)."""

from __future__ import annotations

from snapcollect.analysis.model import Model
from snapcollect.parsers.records import KmsgLine
from snapcollect.report.formatting import hms
from snapcollect.report.model import Paragraph, Preformatted, Section
from snapcollect.report.sections.common import absent

MAX_LINES = 400
BEFORE = 20


def _line(k: KmsgLine) -> str:
    when = hms(k.t) if k.t is not None else f"{k.ts_us / 1e6:12.6f}"
    prio = k.level
    return f"[{when}] {prio:<7} {k.text}"


def kmsg_sections(m: Model) -> list[Section]:
    ds = m.ds
    s = Section("kmsg", "Kernel log")
    if not ds.kmsg:
        if "kmsg" in ds.missing:
            s.blocks.append(absent(ds, "kernel log", "kmsg"))
        else:
            s.blocks.append(Paragraph("The kernel logged nothing during the window."))
        return [s]
    inside = [k for k in ds.kmsg if not k.before_window]
    before = [k for k in ds.kmsg if k.before_window][-BEFORE:]
    if inside:
        shown = inside[-MAX_LINES:]
        cap = "Lines logged during the window (UTC, bundle clock)"
        if len(inside) > len(shown):
            cap += f"; the last {len(shown)} of {len(inside)}"
        s.blocks.append(Preformatted("\n".join(_line(k) for k in shown), caption=cap, source=["kmsg"]))
    else:
        s.blocks.append(Paragraph("The kernel logged nothing during the window."))
    if before:
        s.blocks.append(Preformatted("\n".join(_line(k) for k in before),
                                     caption=f"The last {len(before)} lines before the window", source=["kmsg"]))
    return [s]
