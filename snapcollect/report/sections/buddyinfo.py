"""Free memory fragmentation: /proc/buddyinfo per zone, with zone watermarks.

For each zone, the free blocks per order at the end, the free memory
they add up to, and how much of it sits in blocks of at least order 3
(32 KiB, PAGE_ALLOC_COSTLY_ORDER: above it the allocator gives up
retrying sooner) and order 9 (2 MiB with 4 KiB pages, what a transparent
huge page needs). /proc/zoneinfo adds the min/low/high watermarks that
wake kswapd (low) and stall allocators in direct reclaim (min).
"""

from __future__ import annotations

from snapcollect.analysis.model import Model
from snapcollect.bundle.names import PROC_BUDDYINFO, PROC_ZONEINFO, end_of, start_of
from snapcollect.report.model import Column, Section, Table
from snapcollect.report.sections.common import absent


def _free_pages(free: list[int]) -> int:
    return sum(n << order for order, n in enumerate(free))


def _share(free: list[int], min_order: int) -> float:
    total = _free_pages(free)
    high = sum(n << order for order, n in enumerate(free) if order >= min_order)
    return 100.0 * high / total if total else 0.0


def buddyinfo_sections(m: Model) -> tuple[list[Section], dict[str, Table]]:
    ds = m.ds
    s = Section("buddyinfo", "Free memory fragmentation: buddyinfo")
    data: dict[str, Table] = {}
    end = ds.end.buddyinfo
    if not end:
        s.blocks.append(absent(ds, "buddy allocator statistics", end_of(PROC_BUDDYINFO)))
        return [s], data
    page_kb = ds.page_size // 1024
    orders = max(len(z["free"]) for z in end)
    start = {(z["node"], z["zone"]): z for z in ds.start.buddyinfo or []}
    cols = [Column("node", "node", "d"), Column("zone", "zone", "", "left")]
    cols += [Column(str(o), str(o), "d", unit="blocks") for o in range(orders)]
    cols += [Column("free_kb", "free", "iec_kb", unit="kB"), Column("free_change_kb", "change", "+iec_kb", unit="kB"),
             Column("ge3", ">= order 3", ".1f", unit="%"), Column("ge9", ">= order 9", ".1f", unit="%")]
    rows = []
    for z in end:
        row = {"node": z["node"], "zone": z["zone"]}
        row.update({str(o): n for o, n in enumerate(z["free"])})
        free_kb = _free_pages(z["free"]) * page_kb
        before = start.get((z["node"], z["zone"]))
        row.update(free_kb=free_kb,
                   free_change_kb=free_kb - _free_pages(before["free"]) * page_kb if before else None,
                   ge3=_share(z["free"], 3), ge9=_share(z["free"], 9))
        rows.append(row)
    t = Table("buddyinfo", cols, rows, caption="Free blocks per order at the end",
              source=[end_of(PROC_BUDDYINFO)] + ([start_of(PROC_BUDDYINFO)] if start else []),
              note=f"Order n is a block of 2^n pages of {page_kb} KiB. The last two columns are the share of the "
                   "zone's free memory in blocks of at least order 3 (32 KiB) and 9 (2 MiB): low values mean "
                   "free memory is fragmented and larger allocations need compaction.")
    s.blocks.append(t)
    data[t.id] = t
    zi = ds.end.zoneinfo
    if zi and zi.get("zones"):
        wrows = []
        for (node, zone), f in zi["zones"].items():
            if not f.get("managed") and not f.get("present"):
                continue
            wrows.append({"node": node, "zone": zone, "free": f.get("free", 0) * page_kb,
                          "min": f.get("min", 0) * page_kb, "low": f.get("low", 0) * page_kb,
                          "high": f.get("high", 0) * page_kb, "managed": f.get("managed", 0) * page_kb})
        w = Table("zone-watermarks", [Column("node", "node", "d"), Column("zone", "zone", "", "left"),
                                      Column("free", "free", ".0f", unit="kB"), Column("min", "min", ".0f", unit="kB"),
                                      Column("low", "low", ".0f", unit="kB"), Column("high", "high", ".0f", unit="kB"),
                                      Column("managed", "managed", ".0f", unit="kB")],
                  wrows, caption="Zone free memory and watermarks at the end (zoneinfo)",
                  source=[end_of(PROC_ZONEINFO)],
                  note="Below low, kswapd reclaims in the background; below min, allocating tasks reclaim "
                       "directly (stall).")
        s.blocks.append(w)
        data[w.id] = w
    return [s], data
