"""``pmap -x`` of the processes the findings involve; one table for the rest.

The processes with full detail (their largest mappings by RSS) are those
``report.highlights.involved_pids`` names: culprits, victims, top growers.
The other top processes of the bundle get one row each (RSS, PSS, swap,
anonymous and file RSS, mappings): the bundle keeps their full smaps.

From /proc/PID/smaps (parsers.smaps gives pmap's columns); the total row
covers every mapping, as pmap's ``total kB`` line. When the bundle holds
the verbatim ``pmap -x`` output too, its total line is compared.
"""

from __future__ import annotations

from snapcollect.analysis.model import Model
from snapcollect.analysis.processes import largest_mappings, mapping_split, top_by_pss
from snapcollect.bundle.names import PID_SMAPS, PROCS_TOP, pid_file
from snapcollect.parsers.records import ProcDetail
from snapcollect.report.model import Column, KeyValues, Paragraph, Section, Table
from snapcollect.report.sections.common import absent, why_missing

LARGEST = 20

COLUMNS = [Column("address", "Address", "", "left"), Column("kbytes", "Kbytes", "d", unit="kB"),
           Column("rss_kb", "RSS", "d", unit="kB"), Column("dirty_kb", "Dirty", "d", unit="kB"),
           Column("mode", "Mode", "", "left"), Column("mapping", "Mapping", "", "left"),
           Column("pss_kb", "PSS", "d", unit="kB"), Column("anonymous_kb", "Anon", "d", unit="kB"),
           Column("shared_kb", "Shared", "d", unit="kB"), Column("swap_kb", "Swap", "d", unit="kB")]


def one_line(text: str, limit: int = 200) -> str:
    """A command line on one line (arguments may hold newlines), cut at ``limit``."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def _kb(v: int) -> str:
    return f"{v:,} kB"


def _crosscheck(d: ProcDetail, kbytes: int, rss: int, dirty: int) -> Paragraph | None:
    if not d.pmap_text:
        return None
    if d.pmap_total is None:
        return Paragraph("The verbatim pmap -x output in the bundle could not be read.")
    ours = (kbytes, rss, dirty)
    theirs = d.pmap_total
    if ours == theirs:
        return Paragraph(f"pmap -x run by the collector prints the same total: {theirs[0]} {theirs[1]} "
                         f"{theirs[2]} kB.")
    return Paragraph(f"pmap -x run by the collector a moment later prints total {theirs[0]} {theirs[1]} "
                     f"{theirs[2]} kB (Kbytes RSS Dirty); the process changed between the two reads.")


def pmap_section(d: ProcDetail, why: str = "") -> Section:
    s = Section(f"pmap-{d.pid}", f"pmap -x {d.pid} ({d.comm})", level=3)
    if not d.mappings:
        why = why or f"`{pid_file(d.pid, PID_SMAPS)}` not collected"
        s.blocks.append(Paragraph(f"No mappings for pid {d.pid}: {why}."))
        return s
    split = mapping_split(d.mappings)
    s.blocks.append(KeyValues([
        ("command line", one_line(d.cmdline) or d.comm),
        ("mappings", str(len(d.mappings))),
        ("RSS", _kb(split.rss_kb)), ("PSS", _kb(split.pss_kb)), ("swap", _kb(split.swap_kb)),
        ("anonymous RSS", _kb(split.anon_rss_kb)),
        ("file and shmem RSS", _kb(split.file_rss_kb)),
        ("shared RSS (also mapped elsewhere)", _kb(split.shared_rss_kb)),
    ], caption="Anonymous / file / shared split (smaps: Anonymous, Rss - Anonymous, Shared_Clean + Shared_Dirty)"))
    rows = [{"address": f"{m.address:016x}", "kbytes": m.kbytes, "rss_kb": m.rss_kb, "dirty_kb": m.dirty_kb,
             "mode": m.mode, "mapping": m.mapping, "pss_kb": m.pss_kb, "anonymous_kb": m.anonymous_kb,
             "shared_kb": m.shared_kb, "swap_kb": m.swap_kb} for m in largest_mappings(d.mappings, LARGEST)]
    footer = [{"address": "total kB", "kbytes": split.kbytes, "rss_kb": split.rss_kb, "dirty_kb": split.dirty_kb,
               "mode": None, "mapping": f"({len(d.mappings)} mappings)", "pss_kb": split.pss_kb,
               "anonymous_kb": split.anon_rss_kb, "shared_kb": split.shared_rss_kb, "swap_kb": split.swap_kb}]
    shown = len(rows)
    s.blocks.append(Table(f"pmap-{d.pid}", COLUMNS, rows, footer=footer,
                          caption=f"The {shown} largest of {len(d.mappings)} mappings by RSS",
                          source=[pid_file(d.pid, PID_SMAPS)],
                          note="Dirty = Shared_Dirty + Private_Dirty; Mode as pmap (s = shared); the total row "
                               "covers every mapping."))
    check = _crosscheck(d, split.kbytes, split.rss_kb, split.dirty_kb)
    if check is not None:
        s.blocks.append(check)
    return s


SUMMARY_COLUMNS = [Column("pid", "PID", "d"), Column("comm", "Command", "", "left"),
                   Column("rss_kb", "RSS kB", "kb", unit="kB"), Column("pss_kb", "PSS kB", "kb", unit="kB"),
                   Column("anon_kb", "Anon kB", "kb", unit="kB"), Column("file_kb", "File kB", "kb", unit="kB"),
                   Column("swap_kb", "Swap kB", "kb", unit="kB"), Column("mappings", "Mappings", "d"),
                   Column("why", "Detail", "", "left"),
                   # the whole command line (cut at 200): the one place the report shows it for a
                   # process that gets no pmap detail
                   Column("cmdline", "command line", "", "left")]


def _n_processes(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


def _summary_row(d: ProcDetail, why: str) -> dict:
    if not d.mappings:
        return {"pid": d.pid, "comm": d.comm, "rss_kb": d.rss_kb, "pss_kb": d.pss_kb, "anon_kb": None,
                "file_kb": None, "swap_kb": None, "mappings": None, "why": why or "no smaps",
                "cmdline": one_line(d.cmdline) or None}
    split = mapping_split(d.mappings)
    return {"pid": d.pid, "comm": d.comm, "rss_kb": split.rss_kb, "pss_kb": split.pss_kb,
            "anon_kb": split.anon_rss_kb, "file_kb": split.file_rss_kb, "swap_kb": split.swap_kb,
            "mappings": len(d.mappings), "why": pid_file(d.pid, PID_SMAPS), "cmdline": one_line(d.cmdline) or None}


def pmap_sections(m: Model, involved: set[int] | frozenset[int] = frozenset()) -> list[Section]:
    ds = m.ds
    s = Section("pmap", "Mappings of the top processes: pmap -x")
    if not ds.top:
        s.blocks.append(absent(ds, "per-process mappings", PROCS_TOP))
        return [s]
    ordered = top_by_pss(ds.top)
    detail = [d for d in ordered if d.pid in involved]
    rest = [d for d in ordered if d.pid not in involved]
    if rest:
        rows = [_summary_row(d, why_missing(ds, pid_file(d.pid, PID_SMAPS)).strip("`") if not d.mappings else "")
                for d in rest]
        s.blocks.append(Table(
            "pmap-summary", SUMMARY_COLUMNS, rows,
            caption=(f"The other {_n_processes(len(rest))} of the top by PSS" if detail else
                     f"The top {_n_processes(len(rest))} by PSS"),
            source=sorted({pid_file(d.pid, PID_SMAPS) for d in rest}),
            note=("Full pmap -x below only for the processes the findings involve (culprits, victims, top "
                  "growers); every process's smaps is in the bundle (the Detail column names it)."
                  if detail else "No finding involves one of these processes, so none gets its full "
                  "pmap -x here; each one's smaps is in the bundle (the Detail column names it).")))
    s.subsections = [pmap_section(d, why_missing(ds, pid_file(d.pid, PID_SMAPS))) for d in detail]
    return [s]
