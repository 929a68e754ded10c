"""``snapcollect export BUNDLE -o DIR``: the time series as CSV files.

For pandas (``pd.read_csv(f, parse_dates=["timestamp"])``), DuckDB
(``read_csv_auto``) or a spreadsheet. One file per table, named by the
table's id (``sar-B.csv``, ``sar-r.csv``, ``sar-S.csv``, ``sar-W.csv``,
``sar-H.csv``, ``sar-q-MEM.csv``, ``pidstat-r.csv``, ``cgroups-memory.csv``):
every table of the report marked ``time_series`` (``Report.data_tables``,
full resolution), plus ``pidstat -r`` per interval
(``analysis.pidstat.pidstat_r_intervals``) and each followed memory cgroup
at each sample (``analysis.cgroup_series``: the ``series/cgroups/memory``
series, else the start and end snapshots), one row per cgroup and sample.

Columns as sadf -d writes sar's: ``hostname``, ``interval`` (seconds),
``timestamp`` (the end of the interval, ISO 8601 UTC with milliseconds,
the bundle's clock), then the classic tool's column names
(``pgpgin/s``, ``kbmemfree``, ``%smem``...). Numbers are the raw values,
not the rounded text of the report; an empty cell is a value that was
not available. Comma-separated (RFC 4180: fields holding a comma, quote
or newline are quoted), UTF-8; bytes of the bundle that were not UTF-8
are shown as ``\\xNN`` as in every report.
"""

from __future__ import annotations

import csv
import io
import math
import os

from snapcollect.analysis.dataset import load_dataset
from snapcollect.analysis import series
from snapcollect.analysis.cgroup_series import cgroup_series
from snapcollect.analysis.pidstat import pidstat_r_intervals
from snapcollect.report.build import build_report_from_dataset
from snapcollect.report.formatting import iso
from snapcollect.report.model import Table
from snapcollect.report.output_files import DEFAULT_MODE, ReportOutputError, make_dir, open_dir, write_new
from snapcollect.report.printable import printable

PIDSTAT_COLUMNS = ("UID", "PID", "minflt/s", "majflt/s", "VSZ", "RSS", "%MEM", "Command")
# bytes, as memory.current / memory.max (v2) and usage_in_bytes / limit_in_bytes (v1) give them
CGROUP_COLUMNS = ("cgroup", "usage_bytes", "limit_bytes", "%limit", "file_bytes")


def _cell(v) -> str:
    if v is None or isinstance(v, bool):
        return "" if v is None else str(v).lower()
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    if isinstance(v, int):
        return str(v)
    return printable(str(v))


def _csv(header: list[str], rows: list[list]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows([_cell(v) for v in r] for r in rows)
    return buf.getvalue().encode("utf-8", "surrogateescape")


def table_csv(t: Table, host: str, interval: float | None) -> bytes:
    """A time-series table as sadf -d would lay it out (see the module docstring)."""
    cols = [c for c in t.columns if c.key != "t"]
    rows = []
    for r in t.rows:
        when = r.get("t")
        rows.append([host, interval, iso(when) if isinstance(when, (int, float)) else None]
                    + [r.get(c.key) for c in cols])
    return _csv(["hostname", "interval", "timestamp"] + [c.title for c in cols], rows)


def pidstat_csv(ds, host: str) -> bytes | None:
    if not ds.procs:
        return None
    end, _, _ = series.at(ds, "meminfo", "end")
    rows = pidstat_r_intervals(ds.procs, (end or {}).get("MemTotal"))
    return _csv(["hostname", "interval", "timestamp", *PIDSTAT_COLUMNS],
                [[host, round(r.seconds, 3), iso(r.t_to), r.uid, r.pid, r.minflt_s, r.majflt_s, r.vsz_kb,
                  r.rss_kb, r.mem_pct, r.comm] for r in rows])


def cgroups_csv(ds, host: str, interval) -> bytes | None:
    groups = cgroup_series(ds)
    if not groups:
        return None
    rows = []
    for path, g in sorted(groups.items()):
        for s in g.samples:
            pct = None if s.pct is None else round(s.pct, 3)
            rows.append([host, interval, iso(s.t), path, s.usage_bytes, s.limit_bytes, pct, s.file_bytes])
    rows.sort(key=lambda r: (r[2] or "", r[3]))
    return _csv(["hostname", "interval", "timestamp", *CGROUP_COLUMNS], rows)


def export_files(bundle) -> dict[str, bytes]:
    """File name -> CSV bytes for an opened bundle."""
    ds = load_dataset(bundle)
    report = build_report_from_dataset(ds, bundle)
    host = printable(str(report.meta.get("host") or ""))
    interval = report.meta.get("interval_s")
    out: dict[str, bytes] = {}
    for tid, t in report.data_tables.items():
        if t.time_series:
            out[f"{tid}.csv"] = table_csv(t, host, interval)
    pid = pidstat_csv(ds, host)
    if pid is not None:
        out["pidstat-r.csv"] = pid
    cg = cgroups_csv(ds, host, interval)
    if cg is not None:
        out["cgroups-memory.csv"] = cg
    return out


def export_command(args) -> int:
    """Entry point of ``snapcollect export BUNDLE -o DIR [--force]``."""
    import sys

    from snapcollect.bundle import open_bundle

    target = args.output
    parent = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(parent):
        raise ReportOutputError(f"{target}: directory {parent} does not exist")
    files = export_files(open_bundle(args.bundle, getattr(args, "limits", None)))
    mode = DEFAULT_MODE if getattr(args, "mode", None) is None else args.mode
    force = bool(getattr(args, "force", False))
    top = open_dir(parent)
    try:
        # The folder may exist (an empty one made for the export); the files
        # in it are replaced only with --force.
        fd = make_dir(top, os.path.basename(os.path.abspath(target)), mode=mode, force=True, shown=target)
        try:
            for name, data in sorted(files.items()):
                write_new(fd, name, data, mode=mode, force=force, shown=os.path.join(target, name))
        finally:
            os.close(fd)
    finally:
        os.close(top)
    print(f"snapcollect: wrote {len(files)} CSV file(s) in {target}/: {', '.join(sorted(files))}", file=sys.stderr)
    return 0
