"""Memory cgroups: usage against limit, events and pressure (v1 and v2).

The table is the groups of the end snapshot, with the figures of the
window from the model's cgroup series (time at the limit, refaults,
reclaim); a chart of usage against the limit over time for each group a
finding names; and the reclaim at cgroup limits of the whole host (which
sar -B's pgscank/s and pgscand/s do not count).
"""

from __future__ import annotations

from snapcollect.analysis.cgroup_series import CgroupSeries
from snapcollect.analysis.cgroups import counter_changes
from snapcollect.analysis.model import Model
from snapcollect.bundle.names import CGROUPS_MEMORY, SERIES_CGROUPS_MEMORY, end_of, start_of
from snapcollect.parsers.records import MemCgroup
from snapcollect.report.model import Chart, Column, Paragraph, Section, Table
from snapcollect.report.sections.common import absent

COLUMNS = [Column("path", "cgroup", "", "left"), Column("usage_kb", "usage", "iec_kb", unit="kB"),
           Column("limit_kb", "limit", "iec_kb", unit="kB"), Column("pct", "% of limit", ".1f", unit="%"),
           Column("change_kb", "usage change", "+iec_kb", unit="kB"), Column("peak_kb", "peak", "iec_kb", unit="kB"),
           Column("swap_kb", "swap", "iec_kb", unit="kB"),
           Column("at_limit_s", "time at >= 99% of limit", ".0f", unit="s"),
           Column("refaults_ps", "file refaults/s", ",.0f", unit="pages/s"),
           Column("reclaim_ps", "reclaimed/s", ",.0f", unit="pages/s"),
           Column("events", "events (change)", "", "left"),
           Column("psi", "stalled some / full (PSI)", "", "left")]

V2_EVENTS = ("max", "oom", "oom_kill", "oom_group_kill", "high", "low")
V1_EVENTS = ("failcnt", "memsw_failcnt", "oom_kill", "under_oom")
MAX_CHARTS = 4


def _kb(v: int | None) -> float | None:
    return None if v is None else v / 1024


def _events(g: MemCgroup, before: MemCgroup | None, window: CgroupSeries | None) -> str:
    keys = V2_EVENTS if g.version == 2 else V1_EVENTS
    changes = counter_changes(g, before)
    if window is not None and len(window.samples) > 2:
        # The series' rises (what the findings cite), not the snapshots'.
        changes = {k: window.events.get(k, 0) for k in changes}
    parts = []
    for k in keys:
        if k not in g.events:
            continue
        v, d = g.events[k], changes.get(k)
        if v or d:
            parts.append(f"{k} {v}" + (f" (+{d})" if d else ""))
    return ", ".join(parts) or "none"


def _mib(b: int | None) -> float | None:
    return None if b is None else b / (1 << 20)


def usage_chart(g: CgroupSeries, i: int) -> Chart | None:
    if len(g.samples) < 2:
        return None
    # The path stays out of the title: matplotlib draws the title (a "$" in
    # a group's name would be mathtext, a newline a second line); the note
    # is text of the document.
    return Chart(f"chart-cgroup-{i}", f"Memory cgroup usage against its limit ({i + 1})",
                 [x.t for x in g.samples],
                 {"usage": [_mib(x.usage_bytes) for x in g.samples],
                  "limit": [_mib(x.limit_bytes) for x in g.samples],
                  "file cache": [_mib(x.file_bytes) for x in g.samples]},
                 y_label="MiB", kind="line", source=list(g.source),
                 note=f"Memory cgroup {g.path}: at >= 99% of the limit for {g.at_limit_s:.0f} s, >= 90% for {g.at_near_s:.0f} s, "
                      f"of {g.covered_s:.0f} s. v1 file cache is cache - shmem; v2 the limit is memory.max "
                      "(memory.high when lower).")


def _named(findings) -> list[str]:
    """The cgroups findings name (evidence values ``group`` or ``cgroup``), in the findings' order."""
    out: list[str] = []
    for f in findings or ():
        values = f.evidence.values or {}
        for key in ("group", "cgroup"):
            v = values.get(key)
            if isinstance(v, str) and v not in out:
                out.append(v)
    return out


def memcg_reclaim_note(m: Model) -> Paragraph | None:
    r = m.memcg_reclaim
    if r is None or not r.stolen:
        return None
    return Paragraph(f"Reclaim at memory cgroup limits, host-wide: {r.scanned_per_s:.2f} pages/s scanned and "
                     f"{r.stolen_per_s:.2f} pages/s reclaimed over the window ({r.stolen:,} pages; "
                     f"{r.peak_stolen_per_s:,.0f}/s at the busiest interval), from /proc/vmstat pgscan_anon + "
                     "pgscan_file (and pgsteal_*) minus the kswapd, direct, khugepaged and proactive "
                     "counters. sar -B's pgscank/s, pgscand/s and pgsteal/s leave it out (see the sar -B "
                     "section).")


def cgroup_sections(m: Model, findings=None) -> tuple[list[Section], dict[str, Table]]:
    ds = m.ds
    s = Section("cgroups", "Memory cgroups")
    end = ds.end.memcgs
    if not end:
        s.blocks.append(absent(ds, "memory cgroup data", end_of(CGROUPS_MEMORY)))
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
                     "peak_kb": _kb(g.peak_bytes), "swap_kb": _kb(g.swap_usage_bytes), "events": _events(g, b, m.cgroups.get(path)),
                     "psi": psi, **_window(m.cgroups.get(path))})
    version = next(iter(end.values())).version
    note = ("limit '-' means no limit. " + (
        "v2 events (memory.events): max = usage hit memory.max, high = throttled above memory.high, "
        "oom_kill = tasks killed by the cgroup OOM killer." if version == 2 else
        "v1: failcnt counts allocations that hit the limit and had to reclaim; oom_kill (4.13+) counts "
        "tasks killed by the cgroup OOM killer; swap is memsw usage - usage.") + (
        " Stalled: share of the window some / all tasks of the group waited for memory, from the "
        "memory.pressure totals at the start and the end (like sar's %smem/%fmem)." if version == 2 else "") +
        " Time at the limit, refaults and reclaim are over the window, from the cgroup series (else the "
        "start and end snapshots); reclaimed/s is v2 memory.stat pgsteal.")
    t = Table("cgroups", COLUMNS, rows, caption=f"Memory cgroups (cgroup v{version}) holding the most memory, at "
              "the end",
              source=[start_of(CGROUPS_MEMORY), end_of(CGROUPS_MEMORY)] + ([SERIES_CGROUPS_MEMORY] if ds.memcgs else []),
              note=note)
    s.blocks.append(t)
    if version == 1:
        s.blocks.append(Paragraph("cgroup v1 has no per-cgroup pressure (PSI) files, and its memory.stat "
                                  "no reclaim counters (reclaimed/s '-')."))
    note = memcg_reclaim_note(m)
    if note is not None:
        s.blocks.append(note)
    for i, path in enumerate(p for p in _named(findings) if p in m.cgroups):
        if i >= MAX_CHARTS:
            break
        chart = usage_chart(m.cgroups[path], i)
        if chart is not None:
            s.blocks.append(chart)
    return [s], {t.id: t}


def _window(g: CgroupSeries | None) -> dict:
    if g is None:
        return {"at_limit_s": None, "refaults_ps": None, "reclaim_ps": None}
    return {"at_limit_s": g.at_limit_s if g.limit_bytes and g.timed else None,
            "refaults_ps": g.rate(g.refaults_file), "reclaim_ps": g.rate(g.stolen)}
