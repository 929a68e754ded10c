"""Processes by memory: the ps/top view by RSS, PSS of the top N, RSS growth."""

from __future__ import annotations

from snapcollect.analysis.model import Model
from snapcollect.analysis.processes import MIN_GROWTH_KB, top_by_pss, top_by_rss
from snapcollect.bundle.names import PID_SMAPS_ROLLUP, PROCS_TOP, SERIES_PROCS, pid_file
from snapcollect.report.model import Column, Paragraph, Section, Table
from snapcollect.report.sections.common import absent
from snapcollect.report.sections.pmap import one_line

GROWTH_ROWS = 10

RSS_COLUMNS = [Column("pid", "PID", "d"), Column("uid", "UID", "d"), Column("mem_pct", "%MEM", ".1f", unit="%"),
               Column("vsz_kb", "VSZ", ".0f", unit="kB"), Column("rss_kb", "RSS", ".0f", unit="kB"),
               Column("swap_kb", "SWAP", ".0f", unit="kB"), Column("state", "S", "", "left"),
               Column("rss_first_kb", "RSS start", ".0f", unit="kB"), Column("growth_kb", "RSS change", "+.0f", unit="kB"),
               Column("comm", "COMMAND", "", "left")]

PSS_COLUMNS = [Column("pid", "PID", "d"), Column("rss_kb", "RSS", ".0f", unit="kB"),
               Column("pss_kb", "PSS", ".0f", unit="kB"), Column("swap_kb", "SWAP", ".0f", unit="kB"),
               Column("comm", "COMMAND", "", "left"), Column("cmdline", "command line", "", "left")]

GROW_COLUMNS = [Column("pid", "PID", "d"), Column("comm", "COMMAND", "", "left"),
                Column("first_kb", "RSS+swap first", ".0f", unit="kB"), Column("peak_kb", "peak", ".0f", unit="kB"),
                Column("last_kb", "last", ".0f", unit="kB"), Column("swap_kb", "swap last", ".0f", unit="kB"),
                Column("growth_kb", "growth", "+.0f", unit="kB"), Column("ratio", "ratio", ".2f"),
                Column("shape", "shape", "", "left"), Column("rate_kb_s", "rate", ".0f", unit="kB/s"),
                Column("seconds_left", "time left", ".0f", unit="s"),
                Column("t_first", "first seen", "time", "left"), Column("t_peak", "peak at", "time", "left"),
                Column("t_last", "last seen", "time", "left")]


def process_sections(m: Model, top_n: int = 15) -> tuple[list[Section], dict[str, Table]]:
    ds = m.ds
    s = Section("top-processes", "Top processes by memory: ps / top")
    data: dict[str, Table] = {}
    if ds.procs:
        top = top_by_rss(m.memory, top_n)
        rows = [{"pid": p.pid, "uid": p.uid, "mem_pct": p.mem_pct, "vsz_kb": p.vsz_kb, "rss_kb": p.rss_kb,
                 "swap_kb": p.swap_kb, "state": p.state, "rss_first_kb": p.rss_first_kb,
                 "growth_kb": p.growth_kb, "comm": p.comm} for p in top]
        t = Table("processes-rss", RSS_COLUMNS, rows, caption=f"Top {len(rows)} processes by RSS at the end",
                  source=[SERIES_PROCS],
                  note="RSS counts shared pages in every process mapping them; SWAP is VmSwap. "
                       "RSS start is the first sample of the window (or the process's first sample).")
        s.blocks.append(t)
        data[t.id] = t
        growers = m.growth[:GROWTH_ROWS]
        if growers:
            left = {lk.pid: lk.seconds_left for lk in m.leaks}
            rows = [{"pid": g.pid, "comm": g.comm, "first_kb": g.first_kb, "peak_kb": g.peak_kb,
                     "last_kb": g.last_kb, "swap_kb": g.last_swap_kb, "growth_kb": g.growth_kb, "ratio": g.ratio,
                     "shape": g.trend.kind, "rate_kb_s": g.rate_kb_s, "seconds_left": left.get(g.pid),
                     "t_first": g.first_t, "t_peak": g.peak_t, "t_last": g.last_t} for g in growers]
            g = Table("processes-growth", GROW_COLUMNS, rows, caption="Largest growth of RSS + swap over the window",
                      source=[SERIES_PROCS],
                      note=f"Growth is from each process's first sample to its peak of RSS + VmSwap; at least "
                           f"{MIN_GROWTH_KB // 1024} MiB. Shape: steady (a line fits it: its slope is the "
                           f"rate), step (one interval holds half the rise or more: no rate), irregular. "
                           f"Time left: until its cgroup's limit or MemAvailable runs out at that rate. "
                           f"The TOP_GROWER and MEMORY_LEAK findings pick from these rows.")
            s.blocks.append(g)
            data[g.id] = g
        else:
            s.blocks.append(Paragraph(f"No process grew its RSS by {MIN_GROWTH_KB // 1024} MiB or more "
                                      "during the window."))
    else:
        s.blocks.append(absent(ds, "per-process samples", SERIES_PROCS))
    if ds.top:
        rows = [{"pid": d.pid, "rss_kb": d.rss_kb, "pss_kb": d.pss_kb, "swap_kb": d.swap_kb, "comm": d.comm,
                 "cmdline": one_line(d.cmdline, 80)}
                for d in top_by_pss(ds.top)]
        p = Table("processes-pss", PSS_COLUMNS, rows, caption="Top processes by PSS at the end (smaps_rollup)",
                  source=[PROCS_TOP] + [pid_file(d.pid, PID_SMAPS_ROLLUP) for d in ds.top],
                  note="PSS shares each page among the processes mapping it, so PSS adds up across processes.")
        s.blocks.append(p)
        data[p.id] = p
    else:
        s.blocks.append(absent(ds, "per-process detail (smaps)", PROCS_TOP))
    return [s], data
