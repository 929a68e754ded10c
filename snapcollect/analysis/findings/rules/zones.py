"""Zones: free pages against the watermarks, and free-memory fragmentation.

Inputs: /proc/zoneinfo (``pages free``, ``min``, ``low``, ``high``,
``managed``, in pages) and /proc/buddyinfo (free blocks per order) at the
start and end of the window:

    Node 0, zone   Normal
      pages free     242022
            min      4556
            low      5695
    Node 0, zone   Normal   2177   1250    880    520    234    160    154     99     78     53    149
"""

from __future__ import annotations

from snapcollect.analysis.findings.rule import Hit, rule
from snapcollect.analysis.findings.signals import page_kb
from snapcollect.analysis.series import vm_window
from snapcollect.analysis.wording import human_kb
from snapcollect.bundle.names import END, PROC_BUDDYINFO, PROC_ZONEINFO, START, at, end_of, start_of

FRAG_ORDER = 4            # first order above PAGE_ALLOC_COSTLY_ORDER (3)
FRAG_UNUSABLE = 0.9       # heuristic: 90% of free memory unusable at that order
FRAG_MIN_FREE_SHARE = 0.01  # heuristic: ignore zones with under 1% of their pages free


def _zones(snap) -> dict[tuple[int, str], dict]:
    zi = snap.zoneinfo or {}
    zones = zi.get("zones") if isinstance(zi, dict) else None
    return zones or {}


def _below(zone: dict) -> str | None:
    free, mn, low = zone.get("free"), zone.get("min"), zone.get("low")
    if free is None or mn is None or low is None or not zone.get("managed", 1):
        return None
    if free < mn:
        return "min"
    if free < low:
        return "low"
    return None


@rule(
    key="ZONE_LOW_WATERMARK", area="zones", severities=("HIGH", "WARN", "INFO"),
    detects="A memory zone's free pages under its low watermark (kswapd must reclaim) or min "
            "watermark (allocations reclaim directly or fail).",
    title="Zone {zone} free pages below the {mark} watermark ({_free} free, {mark} {_level})",
    explanation="{_detail} Under the low watermark kswapd reclaims in the background; under min "
                "only the kernel's emergency allocations succeed and everyone else does direct "
                "reclaim. If this persists, raise vm.min_free_kbytes or "
                "vm.watermark_scale_factor, or free memory.",
    threshold="zoneinfo pages free < min (HIGH, at the end), < low at the start and the end "
              "(WARN), < low at one of them (INFO)",
    source="kernel Documentation/admin-guide/sysctl/vm.rst (min_free_kbytes, "
           "watermark_scale_factor); mm/page_alloc.c watermarks",
    needs=[(end_of(PROC_ZONEINFO), start_of(PROC_ZONEINFO))], section="buddyinfo")
def zone_low_watermark(m):
    ds = m.ds
    start, end = _zones(ds.start), _zones(ds.end)
    kb = page_kb(ds)
    hits = []
    for key in sorted(set(start) | set(end)):
        a = _below(start[key]) if key in start else None
        b = _below(end[key]) if key in end else None
        if not a and not b:
            continue
        if b == "min":
            sev = "HIGH"
        elif a and b:
            sev = "WARN"
        else:
            sev = "INFO"
        z = end.get(key) if b else start.get(key)
        hits.append((sev, key, b or a, z, bool(a), bool(b)))
    if not hits:
        return None
    order = {"HIGH": 0, "WARN": 1, "INFO": 2}
    hits.sort(key=lambda h: order[h[0]])
    sev, (node, zone), mark, z, at_start, at_end = hits[0]
    when = " and ".join(x for x, y in (("start", at_start), ("end", at_end)) if y)
    return Hit(sev, {
        "zone": f"{zone} (node {node})", "mark": mark, "_free": human_kb(z["free"] * kb),
        "_level": human_kb(z[mark] * kb),
        "_detail": f"At the {when} of the window node {node} zone {zone} had {z['free']} free pages "
                  f"against min {z['min']} / low {z['low']} / high {z.get('high', '?')}.",
        "zones": [{"node": k[0], "zone": k[1], "below": m, "severity": s, "free_pages": zz["free"],
                   "min": zz["min"], "low": zz["low"]} for s, k, m, zz, _, _ in hits],
    }, [at(PROC_ZONEINFO, p) for p, y in ((START, at_start), (END, at_end)) if y], vm_window(ds))


def unusable_index(free: list[int], order: int) -> tuple[float, int]:
    """Share of free pages in blocks smaller than 2**order pages, and total free pages.

    This is the kernel's "unusable free space index" (mm/vmstat.c,
    /sys/kernel/debug/extfrag/unusable_index).
    """
    total = sum(c << o for o, c in enumerate(free))
    if total == 0:
        return 0.0, 0
    usable = sum(c << o for o, c in enumerate(free) if o >= order)
    return (total - usable) / total, total


@rule(
    key="HIGH_FRAGMENTATION", area="zones", severities=("INFO",),
    detects="Free memory broken into small blocks: large (high-order) allocations, huge pages "
            "and some drivers must wait for compaction or fail although memory is free.",
    title="Free memory fragmented in zone {zone}: {pct:.0f}% unusable for {_size} blocks",
    explanation="At the end of the window {pct:.0f}% of the {_free} free in node {node} zone {zone} "
                "was in blocks smaller than {_size} (buddyinfo). Order-{order}+ allocations will "
                "compact or fail; check COMPACTION_STALLS and THP_FALLBACK. "
                "vm.compaction_proactiveness, or a one-off write to "
                "/proc/sys/vm/compact_memory, helps.",
    threshold="unusable free space index at order 4 (64 KiB) >= 0.9 in a zone with >= 1% of its "
              "pages free",
    source="heuristic, on the kernel's unusable free space index (mm/vmstat.c)",
    needs=[end_of(PROC_BUDDYINFO)], section="buddyinfo")
def high_fragmentation(m):
    ds = m.ds
    zones = _zones(ds.end)
    kb = page_kb(ds)
    worst = None
    for z in ds.end.buddyinfo or []:
        if z.get("zone") == "DMA":     # 16 MiB legacy zone, rarely used
            continue
        idx, total = unusable_index(z["free"], FRAG_ORDER)
        managed = (zones.get((z["node"], z["zone"])) or {}).get("managed")
        if managed and total < managed * FRAG_MIN_FREE_SHARE:
            continue        # nearly no free memory: LOW_AVAILABLE's business, not fragmentation
        if idx >= FRAG_UNUSABLE and (worst is None or idx > worst[0]):
            worst = (idx, total, z)
    if worst is None:
        return None
    idx, total, z = worst
    return Hit("INFO", {"zone": z["zone"], "node": z["node"], "pct": idx * 100,
                        "_free": human_kb(total * kb), "_size": human_kb((1 << FRAG_ORDER) * kb),
                        "order": FRAG_ORDER, "unusable_index": idx, "free_blocks": z["free"]},
               [end_of(PROC_BUDDYINFO)], vm_window(ds))
