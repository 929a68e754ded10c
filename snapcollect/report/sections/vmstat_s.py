"""The ``vmstat -s`` view: start, end and change over the window.

Memory and paging lines are recomputed from /proc/meminfo and
/proc/vmstat (analysis.classic.vmstat_s); the CPU, interrupt, context
switch and fork lines come from /proc/stat, which only the verbatim
``vmstat -s`` output in the bundle holds.
"""

from __future__ import annotations

from snapcollect.analysis.classic import vmstat_s
from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.model import Model
from snapcollect.bundle.names import CMD_VMSTAT_S, PROC_VMSTAT, SERIES_PROC_VMSTAT, at, end_of
from snapcollect.report.model import Column, Section, Table
from snapcollect.report.sections.common import absent, snapshot_meminfo, snapshot_vmstat, uniq


def _command(ds: Dataset, phase: str) -> dict[str, tuple[int, str]]:
    snap = ds.start if phase == "start" else ds.end
    # procps 3.3 says "pages paged in/out" for what 4.0 calls "K paged in/out"
    return {label.replace("pages paged", "paged"): (v, unit) for label, v, unit in snap.vmstat_s or ()}


def vmstat_s_table(ds: Dataset) -> Table | None:
    values: dict[str, dict[str, int | None]] = {}
    units: dict[str, str] = {}
    order: list[str] = []
    sources: list[str] = []
    computed: set[str] = set()
    for phase in ("start", "end"):
        m, msrc, _ = snapshot_meminfo(ds, phase)
        v, vsrc, _ = snapshot_vmstat(ds, phase)
        if m is None or v is None:
            continue
        sources += [msrc, vsrc]
        for label, value, unit in vmstat_s(m, v):
            values.setdefault(label, {})[phase] = value
            units[label] = unit
            order.append(label)
            computed.add(label)
    cmd_used = False
    for phase in ("start", "end"):
        for label, (value, unit) in _command(ds, phase).items():
            if label in computed:
                continue
            values.setdefault(label, {})[phase] = value
            units[label] = unit
            order.append(label)
            cmd_used = True
            sources.append(at(CMD_VMSTAT_S, phase))
    if not values:
        return None
    rows = []
    for label in uniq(order):
        a, b = values[label].get("start"), values[label].get("end")
        # boot time is a date, not a quantity: no change to show
        change = b - a if a is not None and b is not None and label != "boot time" else None
        rows.append({"label": (f"{units[label]} " if units[label] else "") + label, "start": a, "end": b,
                     "change": change})
    cols = [Column("label", "", "", "left"), Column("start", "start", ".0f"), Column("end", "end", ".0f"),
            Column("change", "change", "+.0f")]
    note = ("Memory lines from /proc/meminfo (procps-ng 4: used = MemTotal - MemAvailable; \"swap cache\" is "
            "Cached + SReclaimable, as vmstat -s prints it); paged in/out are KiB (pgpgin/pgpgout), swapped "
            "in/out are pages.")
    if cmd_used:
        note += " CPU, interrupt, context switch and fork lines are from the vmstat -s output itself."
    return Table("vmstat-s", cols, rows, caption="vmstat -s at the start and end, and the change",
                 source=uniq(sources), note=note)


def vmstat_s_sections(m: Model) -> list[Section]:
    ds = m.ds
    s = Section("vmstat-s", "Counters: vmstat -s")
    t = vmstat_s_table(ds)
    s.blocks.append(t if t is not None else absent(ds, "counters", end_of(PROC_VMSTAT), SERIES_PROC_VMSTAT))
    return [s]
