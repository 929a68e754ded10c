"""The ``free -w`` view: memory and swap at the start and end of the window.

Computed from /proc/meminfo with procps-ng 4's definitions
(analysis.classic.free_w); the verbatim ``free -w`` output of the bundle,
taken a moment apart, is shown beside it for comparison.
"""

from __future__ import annotations

from snapcollect.analysis.classic import free_w
from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.model import Model
from snapcollect.bundle.names import CMD_FREE, PROC_MEMINFO, SERIES_PROC_MEMINFO, end_of
from snapcollect.report.formatting import iec_kb
from snapcollect.report.model import Column, Paragraph, Preformatted, Section, Table
from snapcollect.report.sections.common import absent, snapshot_meminfo

MEM_KEYS = ("total", "used", "free", "shared", "buffers", "cache", "available")


def signed_iec(kb: int) -> str:
    if kb == 0:
        return "0"
    return ("+" if kb > 0 else "-") + iec_kb(abs(kb))


def free_table(ds: Dataset) -> Table | None:
    rows = []
    sources = []
    fw = {}
    for phase in ("start", "end"):
        m, src, _ = snapshot_meminfo(ds, phase)
        if m is None:
            continue
        fw[phase] = free_w(m)
        sources.append(src)
        rows.append({"when": phase, "line": "Mem:", **fw[phase]["Mem"]})
        rows.append({"when": phase, "line": "Swap:", **fw[phase]["Swap"]})
    if not rows:
        return None
    footer = []
    if "start" in fw and "end" in fw:
        # The change row is text ("+48Mi", "-256Ki"): the human unit needs
        # its sign, which the shared kB formatting does not print.
        for line, keys in (("Mem", MEM_KEYS), ("Swap", ("total", "used", "free"))):
            footer.append({"when": "change", "line": f"{line}:",
                           **{k: signed_iec(fw["end"][line][k] - fw["start"][line][k]) for k in keys}})
    cols = [Column("when", "", "", "left"), Column("line", "", "", "left")]
    cols += [Column(k, k, "iec_kb", unit="kB") for k in MEM_KEYS]
    return Table("free", cols, rows, caption="free -w at the start and end of the window", footer=footer,
                 source=sources,
                 note="procps-ng 4 definitions: used = total - available; cache = Cached + SReclaimable; "
                      "shared = Shmem. Human units as free -h (Ki/Mi/Gi = 1024).")


def free_sections(m: Model) -> list[Section]:
    ds = m.ds
    s = Section("free", "Memory: free -w")
    t = free_table(ds)
    if t is None:
        s.blocks.append(absent(ds, "memory figures", end_of(PROC_MEMINFO), SERIES_PROC_MEMINFO))
        return [s]
    s.blocks.append(t)
    m, _, _ = snapshot_meminfo(ds, "end")
    if m is not None and "MemAvailable" not in m:
        s.blocks.append(Paragraph("This kernel has no MemAvailable (before 3.14): available is shown as "
                                  "MemFree, which understates what could be reclaimed."))
    text = ds.end.commands.get("free")
    if text:
        s.blocks.append(Preformatted(text.rstrip("\n"), caption="free -w as run by the collector at the end "
                                     "(a moment apart from /proc/meminfo@end, so figures may differ slightly)",
                                     source=[end_of(CMD_FREE)]))
    return [s]
