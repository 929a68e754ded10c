"""sar -B, -r ALL, -S, -W, -H and -q MEM sections, with their charts.

Tables come from analysis.sar (upstream sysstat 12.7.9+ definitions).
A window with more than ``MAX_ROWS`` intervals is shown the way
``sar -i SECS`` reads a long file: rows for samples at least SECS apart,
each rate over its whole stretch; the ``Average:`` row and the JSON
tables (``Report.data_tables``) keep every interval.
"""

from __future__ import annotations

import dataclasses

from snapcollect.analysis import sar as S
from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.model import Model
from snapcollect.bundle.names import (PROC_PRESSURE_MEMORY, SERIES_PROC_MEMINFO,
                                      SERIES_PROC_PRESSURE_MEMORY, SERIES_PROC_VMSTAT, end_of)
from snapcollect.report.model import Chart, Column, Paragraph, Section, Table
from snapcollect.report.sections.common import TIME, absent, thin_indexes

MAX_ROWS = 120

SECTIONS = (
    ("sar-B", "Paging: sar -B", S.sar_B, (SERIES_PROC_VMSTAT,)),
    ("sar-r", "Memory utilization: sar -r ALL", S.sar_r, (SERIES_PROC_MEMINFO,)),
    ("sar-S", "Swap space: sar -S", S.sar_S, (SERIES_PROC_MEMINFO,)),
    ("sar-W", "Swapping: sar -W", S.sar_W, (SERIES_PROC_VMSTAT,)),
    ("sar-H", "Hugepages: sar -H", S.sar_H, (SERIES_PROC_MEMINFO,)),
)


def to_table(t: S.SarTable, rows: list[dict] | None = None, note: str = "") -> Table:
    cols = [TIME] + [Column(c.name, c.name, c.fmt, unit=c.unit) for c in t.columns]
    footer = [{"t": "Average:", **t.average}] if t.average is not None else []
    return Table(t.id, cols, t.rows if rows is None else rows, caption=t.title, footer=footer,
                 source=list(t.source), note=" ".join(x for x in (t.note, note) if x), time_series=True)


def thinned(ds: Dataset, max_rows: int = MAX_ROWS) -> tuple[Dataset, float | None]:
    """The dataset with its series thinned to about ``max_rows`` intervals, and the step in s."""
    n = max(len(ds.vmstat), len(ds.meminfo), len(ds.psi))
    if n <= max_rows + 1:
        return ds, None
    def pick(points):
        return [points[i] for i in thin_indexes(len(points), max_rows)]
    thin = dataclasses.replace(ds, vmstat=pick(ds.vmstat), meminfo=pick(ds.meminfo), psi=pick(ds.psi))
    pts = thin.vmstat or thin.meminfo or thin.psi
    step = (pts[1].t - pts[0].t) if len(pts) > 1 else None
    return thin, step


def _shown(fn, ds: Dataset, thin: Dataset, step: float | None) -> tuple[S.SarTable | None, Table | None]:
    """(full table, table for the document)."""
    full = fn(ds)
    if full is None:
        return None, None
    if step is None:
        return full, to_table(full)
    part = fn(thin)
    note = (f"{len(full.rows)} intervals shown as {len(part.rows)} rows about {step:.0f} s apart "
            f"(as sar -i {step:.0f}); Average: and the JSON report use every interval.")
    return full, to_table(full, part.rows, note)


def _mib(v: float | None) -> float | None:
    return None if v is None else v / 1024.0


def memory_chart(ds: Dataset) -> Chart | None:
    if len(ds.meminfo) < 2:
        return None
    x, free, anon, cache, slab, other = [], [], [], [], [], []
    for p in ds.meminfo:
        m = p.value
        total = m.get("MemTotal", 0)
        parts = (m.get("MemFree", 0), m.get("AnonPages", 0), m.get("Cached", 0) + m.get("Buffers", 0),
                 m.get("Slab", 0))
        x.append(p.t)
        free.append(_mib(parts[0]))
        anon.append(_mib(parts[1]))
        cache.append(_mib(parts[2]))
        slab.append(_mib(parts[3]))
        other.append(_mib(max(0, total - sum(parts))))
    return Chart("chart-memory", "Memory breakdown", x,
                 {"anon (AnonPages)": anon, "page cache (Cached + Buffers)": cache, "slab (Slab)": slab,
                  "other kernel (rest of MemTotal)": other, "free (MemFree)": free},
                 y_label="MiB", kind="stacked", source=[SERIES_PROC_MEMINFO],
                 note="Cached includes Shmem (tmpfs, shared memory); 'other kernel' is MemTotal minus the "
                      "four others: page tables, kernel stacks, vmalloc, drivers, hugetlb pool.")


def _line_chart(cid: str, title: str, t: S.SarTable, keys: list[str], y_label: str, note: str = "") -> Chart:
    return Chart(cid, title, [r["t"] for r in t.rows], {k: [r[k] for r in t.rows] for k in keys},
                 y_label=y_label, kind="line", source=list(t.source), note=note)


def sar_sections(m: Model) -> tuple[list[Section], dict[str, Table]]:
    ds = m.ds
    """The five sar sections and the full-resolution tables by id."""
    thin, step = thinned(ds)
    sections = []
    data: dict[str, Table] = {}
    for sid, title, fn, needs in SECTIONS:
        s = Section(sid, title)
        full, shown = _shown(fn, ds, thin, step)
        if full is None:
            s.blocks.append(absent(ds, f"{title.split(':')[1].strip()} table (needs two samples)", *needs))
            sections.append(s)
            continue
        data[full.id] = to_table(full)
        s.blocks.append(shown)
        if sid == "sar-B":
            cg = S.cgroup_reclaim(ds)
            if cg is not None and cg[0] >= 1:
                s.blocks.append(Paragraph(
                    f"Memory cgroups reclaimed at their limits besides: {cg[0]:.2f} pages/s scanned and "
                    f"{cg[1]:.2f} pages/s reclaimed over the window (pgscan_anon + pgscan_file and pgsteal_anon "
                    f"+ pgsteal_file minus global reclaim). The kernel leaves cgroup limit reclaim out of the "
                    f"counters behind pgscank/s, pgscand/s and pgsteal/s; see the cgroup section."))
            s.blocks.append(_line_chart("chart-faults", "Page fault rates", full, ["fault/s", "majflt/s"],
                                        "faults/s"))
            s.blocks.append(_line_chart("chart-reclaim", "Page scan and steal rates", full,
                                        ["pgscank/s", "pgscand/s", "pgsteal/s"], "pages/s",
                                        "Scanning by kswapd (pgscank) is background reclaim; direct scanning "
                                        "(pgscand) stalls the allocating task."))
        elif sid == "sar-r":
            chart = memory_chart(ds)
            if chart is not None:
                s.blocks.append(chart)
        elif sid == "sar-W":
            s.blocks.append(_line_chart("chart-swap", "Swap in/out", full, ["pswpin/s", "pswpout/s"],
                                        "pages/s"))
        elif sid == "sar-H" and not any(r["kbhugfree"] or r["kbhugused"] for r in full.rows):
            s.blocks.insert(0, Paragraph("No hugetlb pages are reserved (HugePages_Total is 0)."))
        sections.append(s)
    return sections, data


def psi_sections(m: Model) -> tuple[list[Section], dict[str, Table]]:
    ds = m.ds
    s = Section("psi", "Memory pressure: PSI (sar -q MEM)")
    full = S.sar_q_mem(ds)
    if full is None:
        if ds.end.psi is not None or ds.start.psi is not None:
            s.blocks.append(Paragraph("Only one pressure sample: the window's stall share needs two."))
        else:
            s.blocks.append(absent(ds, "pressure stall information (PSI needs kernel 4.20+ and psi=1)",
                                   SERIES_PROC_PRESSURE_MEMORY, end_of(PROC_PRESSURE_MEMORY)))
        return [s], {}
    thin, step = thinned(ds)
    _, shown = _shown(S.sar_q_mem, ds, thin, step)
    avg = full.average or {}
    if avg.get("%smem") is not None:
        text = (f"Over the window, some task was stalled on memory {avg['%smem']:.2f}% of the time "
                f"(%smem)")
        if avg.get("%fmem") is not None:
            text += f" and all non-idle tasks were stalled at once {avg['%fmem']:.2f}% of the time (%fmem)"
        s.blocks.append(Paragraph(text + "."))
    s.blocks.append(shown)
    chart = _line_chart("chart-psi", "Memory pressure", full, ["%smem", "%fmem", "%smem-10", "%fmem-10"],
                        "% of time", "%smem/%fmem: share of each interval (solid); -10: the kernel's 10 s "
                        "running average (dashed). Where full equals some, the thin line runs inside the "
                        "wide one.")
    chart.dashed = ["%smem-10", "%fmem-10"]
    s.blocks.append(chart)
    return [s], {full.id: to_table(full)}
