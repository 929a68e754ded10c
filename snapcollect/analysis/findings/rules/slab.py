"""Kernel slab memory: unreclaimable share and fast-growing caches.

Inputs: /proc/meminfo Slab/SReclaimable/SUnreclaim over the window, and
/proc/slabinfo (2.1) at the start and the end (slabtop's cache size is
num_slabs * pagesperslab * page size):

    # name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables ... : slabdata <active_slabs> <num_slabs> <sharedavail>
    dentry              114786   115206    192   21    1 : tunables    0    0    0 : slabdata   5486   5486      0
"""

from __future__ import annotations

from snapcollect.analysis import series
from snapcollect.analysis.findings.rule import Hit, rule
from snapcollect.analysis.findings.signals import min_hold_s, sustained
from snapcollect.analysis.series import window
from snapcollect.analysis.wording import hms, human_kb
from snapcollect.bundle.names import PROC_MEMINFO, PROC_SLABINFO, SERIES_PROC_MEMINFO, end_of, start_of

SUNRECLAIM_PCT = 10.0      # vendor KB articles (Red Hat: SUnreclaim > 10% of RAM deserves a look)
GROWTH_PCT_PER_MIN = 1.0   # heuristic
MONOTONIC_SHARE = 0.8      # heuristic: Slab rose in at least 80% of intervals


def cache_kb(c, page_size: int) -> float:
    return c.num_slabs * c.pagesperslab * page_size / 1024


def slab_growers(ds) -> list[dict]:
    """Caches by growth between the start and end slabinfo snapshots, largest first."""
    ps = ds.page_size or 4096
    before = {c.name: c for c in (ds.start.slabinfo or [])}
    out = []
    for c in ds.end.slabinfo or []:
        b = before.get(c.name)
        kb0 = cache_kb(b, ps) if b else 0.0
        kb1 = cache_kb(c, ps)
        out.append({"cache": c.name, "start_kb": kb0, "end_kb": kb1, "growth_kb": kb1 - kb0,
                    "objs_start": b.active_objs if b else 0, "objs_end": c.active_objs})
    out.sort(key=lambda x: -x["growth_kb"])
    return out


@rule(
    key="SLAB_UNRECLAIMABLE_HIGH", area="slab", severities=("WARN",),
    detects="Kernel slab memory that cannot be reclaimed holds a large share of RAM: often a "
            "kernel-side leak or a huge table (conntrack, sockets, BPF).",
    title="Unreclaimable slab is {pct:.1f}% of RAM ({_sunreclaim})",
    explanation="SUnreclaim stayed above 10% of MemTotal from {_start} to {_end} ({_sunreclaim} at "
                "worst). No pressure will give this memory back. The slabtop section lists the "
                "largest caches: {_caches}. A cache that keeps growing points at a leak (driver, "
                "module, socket buffers).",
    threshold="SUnreclaim / MemTotal > 10%, held >= 30 s (or half the window)",
    source="vendor KB articles (Red Hat, SUSE: high SUnreclaim)",
    needs=[(SERIES_PROC_MEMINFO, end_of(PROC_MEMINFO))], section="slabtop")
def slab_unreclaimable_high(m):
    ds = m.ds
    pts = series.samples(ds, "meminfo")
    samples = [(t, 100.0 * m["SUnreclaim"] / m["MemTotal"] if m.get("MemTotal") and "SUnreclaim" in m
                else None) for t, m in pts]
    run = sustained(samples, lambda v: v > SUNRECLAIM_PCT, min_hold_s(ds))
    if run is None:
        return None
    m = max((m for t, m in pts if run.t0 <= t <= run.t1), key=lambda m: m["SUnreclaim"])
    ps = ds.page_size or 4096
    top = sorted(ds.end.slabinfo or [], key=lambda c: -cache_kb(c, ps))[:5]
    caches = ", ".join(f"{c.name} {human_kb(cache_kb(c, ps))}" for c in top) or "not collected"
    return Hit("WARN", {"pct": max(run.values), "_sunreclaim": human_kb(m["SUnreclaim"]),
                        "SUnreclaim_kb": m["SUnreclaim"], "_start": hms(run.t0), "_end": hms(run.t1),
                        "_caches": caches},
               series.sources(ds, "meminfo") + ([end_of(PROC_SLABINFO)] if top else []), (run.t0, run.t1))


@rule(
    key="SLAB_GROWTH", area="slab", severities=("WARN",),
    detects="A kernel slab cache growing fast and steadily: a kernel-side leak, or a workload "
            "creating kernel objects (dentries, inodes, sockets) without bound.",
    title="Slab cache {cache} grew {_growth} in {seconds:.0f} s ({_per_min}/min)",
    explanation="{cache} went from {_start_size} to {_end_size} ({objs_start} -> {objs_end} "
                "objects) while total Slab rose in {rising:.0f}% of intervals. Other growers: "
                "{_others}. dentry/inode growth usually means a program creating or looking up "
                "huge numbers of (often non-existent) files; the kernel reclaims them only under "
                "pressure. Find the process and fix the pattern.",
    threshold="a cache grows >= 1% of MemTotal per minute over the window while Slab rises in "
              ">= 80% of intervals",
    source="heuristic; USE method (slabtop -s c)",
    needs=[start_of(PROC_SLABINFO), end_of(PROC_SLABINFO), (SERIES_PROC_MEMINFO, end_of(PROC_MEMINFO))],
    section="slabtop")
def slab_growth(m):
    ds = m.ds
    growers = slab_growers(ds)
    pts = series.samples(ds, "meminfo")
    total = pts[-1][1].get("MemTotal") if pts else None
    if not growers or not total:
        return None
    t0 = ds.start.t
    t1 = ds.end.t
    if t0 is None or t1 is None or t1 <= t0:
        w = window(ds)
        if not w or w[1] <= w[0]:
            return None
        t0, t1 = w
    minutes = (t1 - t0) / 60
    top = growers[0]
    per_min = top["growth_kb"] / minutes
    if per_min < total * GROWTH_PCT_PER_MIN / 100:
        return None
    slab = [m.get("Slab") for _, m in pts if "Slab" in m]
    steps = list(zip(slab, slab[1:]))
    rising = 100.0 * sum(1 for a, b in steps if b >= a) / len(steps) if steps else 100.0
    if rising < MONOTONIC_SHARE * 100:
        return None
    others = ", ".join(f"{g['cache']} +{human_kb(g['growth_kb'])}" for g in growers[1:4]
                       if g["growth_kb"] > 0) or "none"
    return Hit("WARN", {
        "cache": top["cache"], "_growth": human_kb(top["growth_kb"]), "seconds": t1 - t0,
        "_per_min": human_kb(per_min), "_start_size": human_kb(top["start_kb"]),
        "_end_size": human_kb(top["end_kb"]), "objs_start": top["objs_start"],
        "objs_end": top["objs_end"], "rising": rising, "_others": others,
        "growth_kb": top["growth_kb"], "kb_per_min": per_min, "MemTotal_kb": total,
        "top_growers": [{k: v for k, v in g.items()} for g in growers[:5]],
    }, [start_of(PROC_SLABINFO), end_of(PROC_SLABINFO)] + series.sources(ds, "meminfo"), (t0, t1))
