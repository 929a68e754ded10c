"""The ``swapon --show`` view: swap devices and files, size, used, priority.

From /proc/swaps (Size and Used in KiB) at the start and end.
"""

from __future__ import annotations

from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.model import Model
from snapcollect.bundle.names import PROC_SWAPS, at, end_of
from snapcollect.report.model import Column, Paragraph, Section, Table
from snapcollect.report.sections.common import absent


def swapon_table(ds: Dataset) -> Table | None:
    rows = []
    sources = []
    for phase, snap in (("start", ds.start), ("end", ds.end)):
        if snap.swaps is None:
            continue
        sources.append(at(PROC_SWAPS, phase))
        for d in snap.swaps:
            rows.append({"when": phase, "name": d.filename, "type": d.type, "size": d.size_kb,
                         "used": d.used_kb, "pct": 100.0 * d.used_kb / d.size_kb if d.size_kb else 0.0,
                         "prio": d.priority})
    if not sources:
        return None
    cols = [Column("when", "", "", "left"), Column("name", "NAME", "", "left"), Column("type", "TYPE", "", "left"),
            Column("size", "SIZE", "iec_kb", unit="kB"), Column("used", "USED", "iec_kb", unit="kB"),
            Column("pct", "USE%", ".1f", unit="%"), Column("prio", "PRIO", "d")]
    return Table("swapon", cols, rows, caption="swapon --show at the start and end", source=sources)


def swapon_sections(m: Model) -> list[Section]:
    ds = m.ds
    s = Section("swapon", "Swap devices: swapon")
    t = swapon_table(ds)
    if t is None:
        s.blocks.append(absent(ds, "swap device list", end_of(PROC_SWAPS)))
    elif not t.rows:
        s.blocks.append(Paragraph("No swap configured: /proc/swaps lists no device at the start or the end."))
    else:
        s.blocks.append(t)
    return [s]
