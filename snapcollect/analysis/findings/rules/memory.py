"""Available memory, swap and RAM exhausted together, locked memory, dirty pages.

Input: /proc/meminfo over the window (kB), and /proc/sys/vm for the dirty
limits:

    MemTotal:       24684084 kB
    MemAvailable:   24413880 kB      (3.14+; older: MemFree, as sar does)
    Unevictable:           0 kB
    Dirty:               108 kB
    Writeback:             0 kB
"""

from __future__ import annotations

from snapcollect.analysis import series
from snapcollect.analysis.findings.rule import Hit, SkipRule, rule
from snapcollect.analysis.findings.signals import min_hold_s, sustained
from snapcollect.analysis.holders import locked_holders, sentence
from snapcollect.analysis.meminfo import mem_available_kb
from snapcollect.analysis.trend import trend
from snapcollect.analysis.wording import hms, human_kb
from snapcollect.bundle.names import PROC_MEMINFO, PROC_SYS_VM, SERIES_PROC_MEMINFO, end_of

LOW_AVAILABLE_PCT = 10.0          # node-exporter mixin: memory used > 90%
SWAP_FREE_LOW_PCT = 10.0          # systemd-oomd SwapUsedLimit=90%
GROWTH_PCT_PER_MIN = 1.0          # heuristic, as SLAB_GROWTH


def _avail_pct(m) -> float | None:
    total, avail = m.get("MemTotal"), mem_available_kb(m)
    if not total or avail is None:
        return None
    return 100.0 * avail / total


@rule(
    key="LOW_AVAILABLE", area="memory", severities=("WARN",),
    detects="MemAvailable (what the kernel estimates can be allocated without swapping) stayed "
            "under a tenth of RAM.",
    title="Low available memory: {min_pct:.1f}% of RAM ({_min_avail}) at worst",
    explanation="From {_start} to {_end} ({held_s:.0f} s) less than 10% of RAM was available; at "
                "worst {_min_avail} of {_total}. New allocations now mean reclaim, swap or OOM "
                "kills. Find who holds the memory (top processes, slab, shmem) before it runs "
                "out.{_note}",
    threshold="MemAvailable / MemTotal < 10%, held >= 30 s (or half the window when shorter)",
    source="node-exporter mixin (NodeMemoryHighUtilization: 90% used)",
    needs=[(SERIES_PROC_MEMINFO, end_of(PROC_MEMINFO))], section="sar-r")
def low_available(m):
    ds = m.ds
    pts = series.samples(ds, "meminfo")
    samples = [(t, _avail_pct(m)) for t, m in pts]
    run = sustained(samples, lambda v: v < LOW_AVAILABLE_PCT, min_hold_s(ds))
    if run is None:
        return None
    worst_t, worst = min(((t, m) for t, m in pts if run.t0 <= t <= run.t1),
                         key=lambda x: _avail_pct(x[1]) or 100)
    note = ("" if "MemAvailable" in worst else
            " (This kernel has no MemAvailable, before 3.14: MemFree is used, which understates it.)")
    return Hit("WARN", {
        "min_pct": min(run.values), "_min_avail": human_kb(mem_available_kb(worst)),
        "min_available_kb": mem_available_kb(worst), "_total": human_kb(worst["MemTotal"]),
        "MemTotal_kb": worst["MemTotal"], "held_s": run.seconds, "_start": hms(run.t0),
        "_end": hms(run.t1), "_worst_at": hms(worst_t), "_note": note,
    }, series.sources(ds, "meminfo"), (run.t0, run.t1))


@rule(
    key="MEM_AND_SWAP_EXHAUSTED", area="memory", severities=("CRIT",),
    detects="Both RAM and swap were nearly used up at the same time: the next step is the OOM "
            "killer.",
    title="RAM and swap both nearly exhausted: {avail_pct:.1f}% available, {swap_free_pct:.1f}% "
          "swap free",
    explanation="From {_start} to {_end} less than 10% of RAM was available and less than 10% of "
                "swap was free (worst: {_avail} available, {_swap_free} swap free). The kernel "
                "has nowhere left to put pages: expect thrashing and OOM kills. Stop or restart "
                "the biggest consumer now.",
    threshold="MemAvailable < 10% of MemTotal and SwapFree < 10% of SwapTotal, held >= 30 s (or "
              "half the window)",
    source="systemd-oomd SwapUsedLimit=90%; node-exporter mixin 90% memory used",
    needs=[(SERIES_PROC_MEMINFO, end_of(PROC_MEMINFO))], section="sar-S")
def mem_and_swap_exhausted(m):
    ds = m.ds
    pts = series.samples(ds, "meminfo")

    def both(m):
        a = _avail_pct(m)
        if a is None or not m.get("SwapTotal"):
            return None
        return max(a, 100.0 * m.get("SwapFree", 0) / m["SwapTotal"])

    run = sustained([(t, both(m)) for t, m in pts], lambda v: v < SWAP_FREE_LOW_PCT, min_hold_s(ds))
    if run is None:
        return None
    t, m = min(((t, m) for t, m in pts if run.t0 <= t <= run.t1), key=lambda x: both(x[1]) or 100)
    return Hit("CRIT", {
        "avail_pct": _avail_pct(m), "swap_free_pct": 100.0 * m["SwapFree"] / m["SwapTotal"],
        "_avail": human_kb(mem_available_kb(m)), "_swap_free": human_kb(m["SwapFree"]),
        "MemAvailable_kb": mem_available_kb(m), "SwapFree_kb": m["SwapFree"],
        "SwapTotal_kb": m["SwapTotal"], "_start": hms(run.t0), "_end": hms(run.t1),
    }, series.sources(ds, "meminfo"), (run.t0, run.t1))


def _growth(ds, field):
    """(first, last, kB/min, rose-in-share-of-intervals, t0, t1) of a meminfo field."""
    pts = [(t, m) for t, m in series.samples(ds, "meminfo") if field in m]
    if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
        return None
    (t0, a), (t1, b) = pts[0], pts[-1]
    steps = list(zip(pts, pts[1:]))
    rising = sum(1 for (_, x), (_, y) in steps if y[field] >= x[field]) / len(steps)
    return a[field], b[field], (b[field] - a[field]) / ((t1 - t0) / 60), rising, t0, t1, b.get("MemTotal")


UNEVICTABLE_STEP_WARN_PCT = 5.0   # heuristic: a step locking 5% of RAM at once is felt when memory is short


@rule(
    key="UNEVICTABLE_GROWTH", area="memory", severities=("WARN", "INFO"),
    detects="Memory the kernel may not reclaim (mlock, SHM_LOCK, ramfs) growing fast, or rising by "
            "a large step: it shrinks what reclaim can work with.",
    title="Unevictable memory {_what}",
    explanation="Unevictable went from {_first} to {_last} (Mlocked {_mlocked}). Pages there cannot "
                "be reclaimed or swapped, so every kB of growth is taken from everyone else. "
                "{_who}Check whether that much locked memory is intended (a database's "
                "buffer pool, a real-time process) and limit it (ulimit -l, LimitMEMLOCK=).",
    threshold="Unevictable grows at a steady >= 1% of MemTotal per minute (least-squares rate, "
              "analysis/trend.py) (WARN); or rises by a step: >= 5% of MemTotal (WARN), >= 1% (INFO)",
    source="heuristic (same growth threshold as SLAB_GROWTH); a step is reported as a step, never "
           "as a rate over the window",
    needs=[SERIES_PROC_MEMINFO], section="sar-r")
def unevictable_growth(m):
    ds = m.ds
    pts = [(t, mi["Unevictable"]) for t, mi in series.samples(ds, "meminfo") if "Unevictable" in mi]
    shape = trend(pts)
    if shape is None:
        raise SkipRule("needs two meminfo samples with Unevictable (2.6.28+)")
    end = series.samples(ds, "meminfo")[-1][1]
    total = end.get("MemTotal")
    if not total or shape.rise_kb <= 0:
        return None
    if shape.kind == "step":
        pct = 100.0 * shape.step_kb / total
        if pct < GROWTH_PCT_PER_MIN:
            return None
        sev = "WARN" if pct >= UNEVICTABLE_STEP_WARN_PCT else "INFO"
        what = f"rose by a step of {human_kb(shape.step_kb)} at {hms(shape.step_t1)}"
        t_range = (shape.step_t0, shape.step_t1)
        per_min = None
    elif shape.kind == "steady" and shape.rate_kb_s * 60 >= total * GROWTH_PCT_PER_MIN / 100:
        sev, per_min = "WARN", shape.rate_kb_s * 60
        what = f"grew {human_kb(shape.rise_kb)} in the window ({human_kb(per_min)}/min)"
        t_range = (shape.fit_t0, shape.fit_t1)
    else:
        return None
    who = locked_holders(ds)
    arts = [SERIES_PROC_MEMINFO] + sorted({h.artifact for h in who})
    return Hit(sev, {
        "_what": what, "_first": human_kb(shape.first_kb), "_last": human_kb(shape.last_kb),
        "_mlocked": human_kb(end.get("Mlocked")), "_who": sentence(who, "Holding locked memory at the end"),
        "Unevictable_first_kb": shape.first_kb, "Unevictable_last_kb": shape.last_kb, "kb_per_min": per_min,
        "shape": shape.kind, "step_kb": shape.step_kb if shape.kind == "step" else None,
        "holders": [{"what": h.what, "name": h.name, "pid": h.pid, "kb": h.kb} for h in who],
    }, arts, t_range)


def _dirty_limits(m, vm) -> tuple[float, float] | None:
    """(background, throttle) thresholds in kB, as mm/page-writeback.c computes them.

    Dirtyable memory is free pages plus the file LRU (global_dirtyable_memory);
    *_bytes settings override *_ratio ones. Writers are throttled from the
    midpoint of the two limits (the "freerun" ceiling of balance_dirty_pages).
    """
    def num(name):
        try:
            return int(str(vm.get(name, "")).split()[0])
        except (ValueError, IndexError):
            return None
    dirtyable = m.get("MemFree", 0) + m.get("Active(file)", 0) + m.get("Inactive(file)", 0)
    ratio, dbytes = num("dirty_ratio"), num("dirty_bytes")
    bratio, bbytes = num("dirty_background_ratio"), num("dirty_background_bytes")
    if ratio is None and not dbytes:
        return None
    thresh = dbytes / 1024 if dbytes else dirtyable * ratio / 100
    if bbytes:
        bg = bbytes / 1024
    elif bratio is not None:
        bg = dirtyable * bratio / 100
    else:
        bg = thresh / 2
    if bg >= thresh:
        bg = thresh / 2   # the kernel does the same
    return bg, thresh


@rule(
    key="DIRTY_THROTTLING", area="memory", severities=("WARN",),
    detects="Dirty and writeback pages above the point where the kernel throttles writers "
            "(balance_dirty_pages): writes stall on the disk.",
    title="Writers throttled: dirty + writeback {_dirty} above the {_limit} limit",
    explanation="From {_start} to {_end} Dirty + Writeback stayed above the midpoint between "
                "vm.dirty_background and vm.dirty limits ({_limit}); processes writing files were "
                "made to wait for the disk, and dirty pages cannot be reclaimed until written. "
                "Check the storage (iostat) and consider lower vm.dirty_* settings.",
    threshold="Dirty + Writeback >= (background + dirty threshold) / 2 of dirtyable memory, "
              "held >= 30 s (or half the window)",
    source="kernel Documentation/admin-guide/sysctl/vm.rst (dirty_ratio, dirty_background_ratio); "
           "mm/page-writeback.c",
    needs=[(SERIES_PROC_MEMINFO, end_of(PROC_MEMINFO)), end_of(PROC_SYS_VM)], section="sar-r")
def dirty_throttling(m):
    ds = m.ds
    vm = ds.end.sysvm or {}
    pts = series.samples(ds, "meminfo")
    samples = []
    for t, m in pts:
        lim = _dirty_limits(m, vm)
        if lim is None:
            raise SkipRule(f"needs vm.dirty_ratio or vm.dirty_bytes in {end_of(PROC_SYS_VM)}")
        dirty = m.get("Dirty", 0) + m.get("Writeback", 0)
        samples.append((t, dirty - (lim[0] + lim[1]) / 2))
    run = sustained(samples, lambda v: v >= 0, min_hold_s(ds))
    if run is None:
        return None
    t, m = max(((t, m) for t, m in pts if run.t0 <= t <= run.t1),
               key=lambda x: x[1].get("Dirty", 0) + x[1].get("Writeback", 0))
    bg, th = _dirty_limits(m, vm)
    dirty = m.get("Dirty", 0) + m.get("Writeback", 0)
    return Hit("WARN", {
        "_dirty": human_kb(dirty), "_limit": human_kb((bg + th) / 2), "_start": hms(run.t0),
        "_end": hms(run.t1), "dirty_writeback_kb": dirty, "background_kb": bg, "thresh_kb": th,
    }, series.sources(ds, "meminfo") + [end_of(PROC_SYS_VM)], (run.t0, run.t1))
