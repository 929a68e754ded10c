"""The ``slabtop`` view: largest caches at the end, biggest growers start -> end."""

from __future__ import annotations

from snapcollect.analysis import slab
from snapcollect.analysis.model import Model
from snapcollect.bundle.names import PROC_SLABINFO, end_of, start_of
from snapcollect.report.model import Column, KeyValues, Paragraph, Section, Table
from snapcollect.report.sections.common import absent

COLUMNS = [Column("objs", "OBJS", "d"), Column("active", "ACTIVE", "d"), Column("use", "USE", ".0f", unit="%"),
           Column("obj_size_k", "OBJ SIZE", ".2f", unit="KiB"), Column("slabs", "SLABS", "d"),
           Column("per_slab", "OBJ/SLAB", "d"), Column("cache_kb", "CACHE SIZE", ".0f", unit="KiB"),
           Column("name", "NAME", "", "left")]

GROW_COLUMNS = [Column("name", "NAME", "", "left"), Column("start_kb", "size start", ".0f", unit="KiB"),
                Column("end_kb", "size end", ".0f", unit="KiB"), Column("change_kb", "change", "+.0f", unit="KiB"),
                Column("objs_start", "objs start", "d"), Column("objs_end", "objs end", "d")]


def slabtop_sections(m: Model) -> tuple[list[Section], dict[str, Table]]:
    ds = m.ds
    s = Section("slabtop", "Kernel slab caches: slabtop")
    end = ds.end.slabinfo
    if end is None:
        s.blocks.append(absent(ds, "slab statistics (/proc/slabinfo is readable by root only)",
                               end_of(PROC_SLABINFO)))
        return [s], {}
    ps = ds.page_size
    sm = slab.summary(end)
    s.blocks.append(KeyValues([
        ("Active / Total Objects (% used)",
         f"{sm.active_objs} / {sm.total_objs} ({100.0 * sm.active_objs / sm.total_objs if sm.total_objs else 0:.1f}%)"),
        ("Active / Total Slabs (% used)",
         f"{sm.active_slabs} / {sm.total_slabs} ({100.0 * sm.active_slabs / sm.total_slabs if sm.total_slabs else 0:.1f}%)"),
        ("Active / Total Caches (% used)",
         f"{sm.active_caches} / {sm.total_caches} ({100.0 * sm.active_caches / sm.total_caches if sm.total_caches else 0:.1f}%)"),
        ("Active / Total Size (% used)",
         f"{sm.active_size_kb:.2f}K / {sm.total_size_kb:.2f}K "
         f"({100.0 * sm.active_size_kb / sm.total_size_kb if sm.total_size_kb else 0:.1f}%)"),
        ("Minimum / Average / Maximum Object", f"{sm.min_obj_kb:.2f}K / {sm.avg_obj_kb:.2f}K / {sm.max_obj_kb:.2f}K"),
    ], caption="slabtop summary at the end"))
    rows = [{"objs": c.num_objs, "active": c.active_objs,
             "use": 100.0 * c.active_objs / c.num_objs if c.num_objs else 0.0, "obj_size_k": c.objsize / 1024,
             "slabs": c.num_slabs, "per_slab": c.objperslab, "cache_kb": slab.cache_size_kb(c, ps), "name": c.name}
            for c in slab.largest(end, ps, len(end))]
    full = Table("slabtop", COLUMNS, rows, caption="Largest caches at the end (slabtop -s c)",
                 source=[end_of(PROC_SLABINFO)],
                 note=f"CACHE SIZE = SLABS x pages per slab x {ps // 1024} KiB pages.")
    s.blocks.append(Table("slabtop", COLUMNS, rows[:20], caption=full.caption, source=full.source, note=full.note))
    data = {"slabtop": full}
    if ds.start.slabinfo is not None:
        grown = slab.growth(ds.start.slabinfo, end, ps)
        if grown:
            g = Table("slabtop-growth", GROW_COLUMNS,
                      [{"name": x.name, "start_kb": x.size_start_kb, "end_kb": x.size_end_kb, "change_kb": x.change_kb,
                        "objs_start": x.objs_start, "objs_end": x.objs_end} for x in grown],
                      caption="Caches that grew most between the start and the end",
                      source=[start_of(PROC_SLABINFO), end_of(PROC_SLABINFO)], note="objs are active objects.")
            s.blocks.append(g)
            data[g.id] = g
        else:
            s.blocks.append(Paragraph("No slab cache grew between the start and the end."))
    return [s], data
