"""The ``pidstat -r`` view: page fault rates per process over the window."""

from __future__ import annotations

from snapcollect.analysis.model import Model
from snapcollect.analysis.pidstat import PidstatRow, pidstat_r
from snapcollect.bundle.names import SERIES_PROCS, SERIES_PROC_MEMINFO, SERIES_PROC_UPTIME
from snapcollect.report.formatting import hms
from snapcollect.report.model import Column, Paragraph, Section, Table
from snapcollect.report.sections.common import absent

TOP = 20

COLUMNS = [Column("uid", "UID", "d"), Column("pid", "PID", "d"), Column("minflt_s", "minflt/s", ".2f", unit="faults/s"),
           Column("majflt_s", "majflt/s", ".2f", unit="faults/s"), Column("vsz_kb", "VSZ", ".0f", unit="kB"),
           Column("rss_kb", "RSS", ".0f", unit="kB"), Column("mem_pct", "%MEM", ".2f", unit="%"),
           Column("comm", "Command", "", "left"), Column("minflt", "minflt", "d", unit="faults"),
           Column("majflt", "majflt", "d", unit="faults"), Column("seen", "seen", "", "left")]


def _seen(r: PidstatRow) -> str:
    if r.started_in_window and r.exited_in_window:
        return f"{hms(r.t_from)}-{hms(r.t_to)}"
    if r.started_in_window:
        return f"from {hms(r.t_from)}"
    if r.exited_in_window:
        return f"until {hms(r.t_to)}"
    return "whole window"


def _row(r: PidstatRow) -> dict:
    return {"uid": r.uid, "pid": r.pid, "minflt_s": r.minflt_s, "majflt_s": r.majflt_s, "vsz_kb": r.vsz_kb,
            "rss_kb": r.rss_kb, "mem_pct": r.mem_pct, "comm": r.comm, "minflt": r.minflt, "majflt": r.majflt,
            "seen": _seen(r), "seconds": r.seconds}


NOTE = ("As pidstat -r over one interval spanning the window: rates are faults counted in the window divided "
        "by the time the process was seen (a process started in the window counts every fault since its "
        "start); VSZ, RSS and %MEM are from its last sample. A process is identified by PID and start time, "
        "so a reused PID shows as two rows.")


def pidstat_sections(m: Model) -> tuple[list[Section], dict[str, Table]]:
    ds = m.ds
    s = Section("pidstat-r", "Page faults per process: pidstat -r")
    if len(ds.procs) < 2:
        s.blocks.append(absent(ds, "per-process samples (needs two)", SERIES_PROCS))
        return [s], {}
    rows = [r for r in pidstat_r(ds.procs, m.mem_total_kb, ds.uptime, ds.clk_tck, m.lives) if r.minflt or r.majflt]
    src = [SERIES_PROCS, SERIES_PROC_UPTIME, SERIES_PROC_MEMINFO]
    full = Table("pidstat-r", COLUMNS, [_row(r) for r in rows], caption="pidstat -r over the window", source=src,
                 note=NOTE)
    if not rows:
        s.blocks.append(Paragraph("No process took a page fault during the window."))
        return [s], {"pidstat-r": full}
    s.blocks.append(Table("pidstat-r", COLUMNS, full.rows[:TOP],
                          caption=f"Top {min(TOP, len(rows))} of {len(rows)} processes by minflt/s", source=src,
                          note=NOTE))
    maj = sorted((r for r in rows if r.majflt), key=lambda r: (-r.majflt_s, r.pid))
    if maj:
        s.blocks.append(Table("pidstat-r-majflt", COLUMNS, [_row(r) for r in maj[:TOP]],
                              caption=f"Processes with major faults (reads from disk or swap), "
                                      f"by majflt/s ({len(maj)})", source=src))
    else:
        s.blocks.append(Paragraph("No process took a major fault (a fault that had to read from disk or swap)."))
    return [s], {"pidstat-r": full}
