"""Memory cgroups: usage against limit, events and pressure (v1 and v2)."""

from __future__ import annotations

from snapcollect.analysis.cgroups import counter_changes
from snapcollect.analysis.model import Model
from snapcollect.parsers.records import MemCgroup
from snapcollect.report.model import Column, Paragraph, Section, Table
from snapcollect.report.sections.common import absent

COLUMNS = [Column("path", "cgroup", "", "left"), Column("usage_kb", "usage", "iec_kb", unit="kB"),
           Column("limit_kb", "limit", "iec_kb", unit="kB"), Column("pct", "% of limit", ".1f", unit="%"),
           Column("change_kb", "usage change", "+iec_kb", unit="kB"), Column("peak_kb", "peak", "iec_kb", unit="kB"),
           Column("swap_kb", "swap", "iec_kb", unit="kB"), Column("events", "events (change)", "", "left"),
           Column("psi", "stalled some / full (PSI)", "", "left")]

V2_EVENTS = ("max", "oom", "oom_kill", "oom_group_kill", "high", "low")
V1_EVENTS = ("failcnt", "oom_kill", "under_oom")


def _kb(v: int | None) -> float | None:
    return None if v is None else v / 1024


def _events(g: MemCgroup, before: MemCgroup | None) -> str:
    keys = V2_EVENTS if g.version == 2 else V1_EVENTS
    changes = counter_changes(g, before)
    parts = []
    for k in keys:
        if k not in g.events:
            continue
        v, d = g.events[k], changes.get(k)
        if v or d:
            parts.append(f"{k} {v}" + (f" (+{d})" if d else ""))
    return ", ".join(parts) or "none"


def cgroup_sections(m: Model) -> tuple[list[Section], dict[str, Table]]:
    ds = m.ds
    s = Section("cgroups", "Memory cgroups")
    end = ds.end.memcgs
    if not end:
        s.blocks.append(absent(ds, "memory cgroup data", "cgroups/memory@end"))
        return [s], {}
    start = ds.start.memcgs or {}
    pressure = m.cgroup_pressure
    rows = []
    for path, g in sorted(end.items(), key=lambda kv: -(kv[1].usage_bytes or 0)):
        b = start.get(path)
        pct = 100.0 * g.usage_bytes / g.limit_bytes if g.limit_bytes and g.usage_bytes is not None else None
        psi = "-"
        p = pressure.get(path)
        if p is not None:
            psi = f"{p.some_pct:.2f}% / " + (f"{p.full_pct:.2f}%" if p.full_pct is not None else "-")
            if p.some_us:
                psi += f" ({p.some_us / 1000:,.1f} ms some)"
        rows.append({"path": path, "usage_kb": _kb(g.usage_bytes), "limit_kb": _kb(g.limit_bytes), "pct": pct,
                     "change_kb": _kb(g.usage_bytes - b.usage_bytes)
                     if b is not None and b.usage_bytes is not None and g.usage_bytes is not None else None,
                     "peak_kb": _kb(g.peak_bytes), "swap_kb": _kb(g.swap_usage_bytes), "events": _events(g, b),
                     "psi": psi})
    version = next(iter(end.values())).version
    note = ("limit '-' means no limit. " + (
        "v2 events (memory.events): max = usage hit memory.max, high = throttled above memory.high, "
        "oom_kill = tasks killed by the cgroup OOM killer." if version == 2 else
        "v1: failcnt counts allocations that hit the limit and had to reclaim; oom_kill (4.13+) counts "
        "tasks killed by the cgroup OOM killer; swap is memsw usage - usage.") + (
        " Stalled: share of the window some / all tasks of the group waited for memory, from the "
        "memory.pressure totals at the start and the end (like sar's %smem/%fmem)." if version == 2 else ""))
    t = Table("cgroups", COLUMNS, rows, caption=f"Memory cgroups (cgroup v{version}) holding the most memory, at "
              "the end", source=["cgroups/memory@start", "cgroups/memory@end"], note=note)
    s.blocks.append(t)
    if version == 1:
        s.blocks.append(Paragraph("cgroup v1 has no per-cgroup pressure (PSI) files."))
    return [s], {t.id: t}
