"""sar -B, -r ALL, -S, -W, -H and -q MEM, computed from the bundle's series.

Definitions follow current upstream sysstat (12.7.9 and later), from
rd_stats.c (read_vmstat_paging, read_meminfo, read_vmstat_swap,
read_psimem) and pr_stats.c (print_paging_stats, print_ram_memory_stats,
print_swap_memory_stats, print_swap_stats, print_hugepages_stats,
print_psimem_stats):

- rates are counter deltas divided by the /proc/uptime delta between the
  two samples; the first sample is only a reference and is not printed;
- ``Average:`` of a rate is (last - first) / (uptime_last - uptime_first);
  ``Average:`` of a level is the mean of the printed samples, and its
  percentages are computed from those means (as sar does);
- kbmemused = MemTotal - MemAvailable (sysstat up to 12.7.7, including
  Debian 12's 12.6.1, used MemTotal - MemFree - Buffers - Cached - Slab);
- pgsteal/s counts pgsteal_kswapd + pgsteal_direct (+ khugepaged and
  proactive), never pgsteal_anon/_file on top (sysstat up to 12.7.8 adds
  every ``pgsteal_*`` line and doubles it on 5.8+ kernels);
- pgscand/s is pgscan_direct alone, not pgscan_direct_throttle;
- %vmeff is kept although sysstat 12.7.5 dropped it: 100 * pgsteal /
  (pgscank + pgscand), 0 when nothing was scanned.

Sample /proc/vmstat lines used: ``pgpgin 1734577``, ``pgfault 1486860``,
``pgscan_kswapd 0``; /proc/meminfo: ``MemAvailable: 24408788 kB``;
/proc/pressure/memory: ``some avg10=0.00 avg60=0.00 avg300=0.00 total=0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.meminfo import mem_available_kb
from snapcollect.analysis.pressure import stall_pct
from snapcollect.analysis.rates import intervals, vm_counter, window_seconds
from snapcollect.bundle.names import (SERIES_PROC_MEMINFO, SERIES_PROC_PRESSURE_MEMORY, SERIES_PROC_UPTIME,
                                      SERIES_PROC_VMSTAT)
from snapcollect.parsers.records import Point

SYSSTAT_DEFINITIONS = ("sar tables follow the definitions of upstream sysstat 12.7.9 and later "
                       "(kbmemused = MemTotal - MemAvailable; pgsteal/s without the pgsteal_anon/_file "
                       "double count; %vmeff kept); Debian 12's sysstat 12.6.1 differs in kbmemused "
                       "and, on 5.8+ kernels, pgsteal/s.")


@dataclass(frozen=True)
class SarColumn:
    name: str          # as sar prints it, also the key in rows: "pgpgin/s"
    unit: str          # "kB/s", "pages/s", "faults/s", "kB", "%"
    fmt: str           # format spec of sar's output: ".2f" or ".0f"


@dataclass
class SarTable:
    id: str                        # "sar-B"
    command: str                   # "sar -B"
    title: str
    columns: list[SarColumn]
    rows: list[dict]               # {"t": epoch s, column name: value}
    average: dict | None           # {column name: value}, None without rows
    source: list[str]
    note: str = ""
    extra: dict = field(default_factory=dict)


def _cols(spec: str, unit: str, fmt: str) -> list[SarColumn]:
    return [SarColumn(n, unit, fmt) for n in spec.split()]


# -- rates: sar -B, sar -W ------------------------------------------------

def _interval_rows(pts: Sequence[Point], uptime, compute: Callable) -> tuple[list[dict], dict | None] | None:
    """One row per interval between consecutive samples, and sar's Average:
    the same computation over the whole window (first to last sample)."""
    if len(pts) < 2:
        return None
    rows = []
    for iv in intervals(pts, uptime):
        row = {"t": iv.t}
        row.update(compute(pts[iv.i_prev].value, pts[iv.i_cur].value, iv.seconds))
        rows.append(row)
    if not rows:
        return None
    span = window_seconds(pts, uptime)
    return rows, (compute(pts[0].value, pts[-1].value, span) if span > 0 else None)


def _rate_table(ds: Dataset, tid: str, command: str, title: str, columns: list[SarColumn],
                compute: Callable[[Mapping[str, int], Mapping[str, int], float], dict],
                note: str = "") -> SarTable | None:
    found = _interval_rows(ds.vmstat, ds.uptime, compute)
    if found is None:
        return None
    rows, average = found
    return SarTable(tid, command, title, columns, rows, average,
                    [SERIES_PROC_VMSTAT, SERIES_PROC_UPTIME], note)


def _d(a: Mapping[str, int], b: Mapping[str, int], name: str) -> int:
    x, y = vm_counter(a, name), vm_counter(b, name)
    if x is None or y is None:
        return 0
    return y - x


def paging(a: Mapping[str, int], b: Mapping[str, int], sec: float) -> dict:
    """One sar -B row from two /proc/vmstat samples ``sec`` seconds apart."""
    scank, scand, steal = _d(a, b, "pgscan_kswapd"), _d(a, b, "pgscan_direct"), _d(a, b, "pgsteal")
    return {
        "pgpgin/s": _d(a, b, "pgpgin") / sec,
        "pgpgout/s": _d(a, b, "pgpgout") / sec,
        "fault/s": _d(a, b, "pgfault") / sec,
        "majflt/s": _d(a, b, "pgmajfault") / sec,
        "pgfree/s": _d(a, b, "pgfree") / sec,
        "pgscank/s": scank / sec,
        "pgscand/s": scand / sec,
        "pgsteal/s": steal / sec,
        "%vmeff": 100.0 * steal / (scank + scand) if scank + scand > 0 else 0.0,
    }


def swapping(a: Mapping[str, int], b: Mapping[str, int], sec: float) -> dict:
    return {"pswpin/s": _d(a, b, "pswpin") / sec, "pswpout/s": _d(a, b, "pswpout") / sec}


SAR_B_COLUMNS = (_cols("pgpgin/s pgpgout/s", "kB/s", ".2f") + _cols("fault/s majflt/s", "faults/s", ".2f")
                 + _cols("pgfree/s pgscank/s pgscand/s pgsteal/s", "pages/s", ".2f")
                 + _cols("%vmeff", "%", ".2f"))
SAR_W_COLUMNS = _cols("pswpin/s pswpout/s", "pages/s", ".2f")


def sar_B(ds: Dataset) -> SarTable | None:
    return _rate_table(ds, "sar-B", "sar -B", "Paging statistics (sar -B)", SAR_B_COLUMNS, paging,
                       "pgpgin/s and pgpgout/s are kB/s; pgsteal/s counts pgsteal_kswapd + pgsteal_direct "
                       "(+ khugepaged, proactive); %vmeff = pgsteal / (pgscank + pgscand).")


def sar_W(ds: Dataset) -> SarTable | None:
    return _rate_table(ds, "sar-W", "sar -W", "Swapping statistics (sar -W)", SAR_W_COLUMNS, swapping)


def cgroup_reclaim(ds: Dataset) -> tuple[float, float] | None:
    """Pages/s scanned and reclaimed over the window by memory cgroup limit reclaim.

    The kernel counts pgscan_kswapd/direct and pgsteal_kswapd/direct for
    global reclaim only; pgscan_anon/_file and pgsteal_anon/_file (5.8+)
    count every reclaim, cgroup limit reclaim included. The difference is
    what sar -B does not show. None before 5.8 or without two samples.
    """
    pts = ds.vmstat
    if len(pts) < 2 or "pgsteal_anon" not in pts[-1].value:
        return None
    span = window_seconds(pts, ds.uptime)
    if span <= 0:
        return None
    a, b = pts[0].value, pts[-1].value
    every_scan = _d(a, b, "pgscan_anon") + _d(a, b, "pgscan_file")
    every_steal = _d(a, b, "pgsteal_anon") + _d(a, b, "pgsteal_file")
    global_scan = sum(_d(a, b, n) for n in ("pgscan_kswapd", "pgscan_direct", "pgscan_khugepaged",
                                              "pgscan_proactive"))
    return max(0, every_scan - global_scan) / span, max(0, every_steal - _d(a, b, "pgsteal")) / span


# -- levels: sar -r ALL, -S, -H ---------------------------------------------

def _level_table(ds: Dataset, tid: str, command: str, title: str, columns: list[SarColumn],
                 row_of: Callable[[Mapping[str, int]], dict],
                 average_of: Callable[[dict[str, float], Mapping[str, int]], dict],
                 sums: Sequence[str], note: str = "") -> SarTable | None:
    pts = ds.meminfo
    if len(pts) < 2:
        return None
    printed = pts[1:]      # the first sample is sar's reference, not printed
    rows = []
    acc = {k: 0.0 for k in sums}
    for p in printed:
        row = {"t": p.t}
        row.update(row_of(p.value))
        rows.append(row)
        for k in sums:
            acc[k] += _mi(p.value, k)
    n = len(printed)
    means = {k: v / n for k, v in acc.items()}
    return SarTable(tid, command, title, columns, rows, average_of(means, printed[-1].value),
                    [SERIES_PROC_MEMINFO], note)


def _mi(m: Mapping[str, int], key: str) -> int:
    if key == "MemAvailable":
        return mem_available_kb(m) or 0  # before 3.14: sysstat falls back to MemFree too
    return m.get(key, 0)


def _pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else 0.0


SAR_R_COLUMNS = (_cols("kbmemfree kbavail kbmemused", "kB", ".0f") + _cols("%memused", "%", ".2f")
                 + _cols("kbbuffers kbcached kbcommit", "kB", ".0f") + _cols("%commit", "%", ".2f")
                 + _cols("kbactive kbinact kbdirty kbanonpg kbslab kbkstack kbpgtbl kbvmused", "kB", ".0f"))
_R_FIELDS = {"kbmemfree": "MemFree", "kbbuffers": "Buffers", "kbcached": "Cached", "kbcommit": "Committed_AS",
             "kbactive": "Active", "kbinact": "Inactive", "kbdirty": "Dirty", "kbanonpg": "AnonPages",
             "kbslab": "Slab", "kbkstack": "KernelStack", "kbpgtbl": "PageTables", "kbvmused": "VmallocUsed"}


def memory(m: Mapping[str, int]) -> dict:
    """One sar -r ALL row from a /proc/meminfo sample."""
    total, avail = m.get("MemTotal", 0), _mi(m, "MemAvailable")
    row = {col: m.get(key, 0) for col, key in _R_FIELDS.items()}
    row["kbavail"] = avail
    row["kbmemused"] = total - avail
    row["%memused"] = _pct(total - avail, total)
    row["%commit"] = _pct(m.get("Committed_AS", 0), total + m.get("SwapTotal", 0))
    return {c.name: row[c.name] for c in SAR_R_COLUMNS}


def _memory_avg(means: dict[str, float], last: Mapping[str, int]) -> dict:
    total = last.get("MemTotal", 0)
    row = {col: means[key] for col, key in _R_FIELDS.items()}
    row["kbavail"] = means["MemAvailable"]
    row["kbmemused"] = total - means["MemAvailable"]
    row["%memused"] = _pct(row["kbmemused"], total)
    row["%commit"] = _pct(means["Committed_AS"], total + last.get("SwapTotal", 0))
    return {c.name: row[c.name] for c in SAR_R_COLUMNS}


def sar_r(ds: Dataset) -> SarTable | None:
    note = "kbmemused = MemTotal - MemAvailable (sysstat 12.7.8+); %commit is of MemTotal + SwapTotal."
    if ds.meminfo and "MemAvailable" not in ds.meminfo[-1].value:
        note += " This kernel has no MemAvailable (before 3.14): kbavail shows MemFree."
    return _level_table(ds, "sar-r", "sar -r ALL", "Memory utilization (sar -r ALL)", SAR_R_COLUMNS, memory,
                        _memory_avg, list(_R_FIELDS.values()) + ["MemAvailable"], note)


SAR_S_COLUMNS = (_cols("kbswpfree kbswpused", "kB", ".0f") + _cols("%swpused", "%", ".2f")
                 + _cols("kbswpcad", "kB", ".0f") + _cols("%swpcad", "%", ".2f"))


def swap_space(m: Mapping[str, int]) -> dict:
    total, free, cad = m.get("SwapTotal", 0), m.get("SwapFree", 0), m.get("SwapCached", 0)
    used = total - free
    return {"kbswpfree": free, "kbswpused": used, "%swpused": _pct(used, total), "kbswpcad": cad,
            "%swpcad": _pct(cad, used)}


def _swap_avg(means: dict[str, float], last: Mapping[str, int]) -> dict:
    total, free, cad = means["SwapTotal"], means["SwapFree"], means["SwapCached"]
    used = total - free
    return {"kbswpfree": free, "kbswpused": used, "%swpused": _pct(used, total), "kbswpcad": cad,
            "%swpcad": _pct(cad, used)}


def sar_S(ds: Dataset) -> SarTable | None:
    return _level_table(ds, "sar-S", "sar -S", "Swap space utilization (sar -S)", SAR_S_COLUMNS, swap_space,
                        _swap_avg, ["SwapTotal", "SwapFree", "SwapCached"],
                        "%swpcad is SwapCached as a share of used swap.")


SAR_H_COLUMNS = (_cols("kbhugfree kbhugused", "kB", ".0f") + _cols("%hugused", "%", ".2f")
                 + _cols("kbhugrsvd kbhugsurp", "kB", ".0f"))


def hugepages(m: Mapping[str, int]) -> dict:
    size = m.get("Hugepagesize", 0)
    total, free = m.get("HugePages_Total", 0) * size, m.get("HugePages_Free", 0) * size
    return {"kbhugfree": free, "kbhugused": total - free, "%hugused": _pct(total - free, total),
            "kbhugrsvd": m.get("HugePages_Rsvd", 0) * size, "kbhugsurp": m.get("HugePages_Surp", 0) * size}


def _huge_avg(means: dict[str, float], last: Mapping[str, int]) -> dict:
    size = last.get("Hugepagesize", 0)
    total, free = means["HugePages_Total"] * size, means["HugePages_Free"] * size
    return {"kbhugfree": free, "kbhugused": total - free, "%hugused": _pct(total - free, total),
            "kbhugrsvd": means["HugePages_Rsvd"] * size, "kbhugsurp": means["HugePages_Surp"] * size}


def sar_H(ds: Dataset) -> SarTable | None:
    return _level_table(ds, "sar-H", "sar -H", "Hugepages utilization (sar -H)", SAR_H_COLUMNS, hugepages,
                        _huge_avg, ["HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp"],
                        "Persistent hugetlb pages of the default size (Hugepagesize); THP are not counted here.")


# -- pressure: sar -q MEM ---------------------------------------------------

SAR_Q_MEM_COLUMNS = _cols("%smem-10 %smem-60 %smem-300 %smem %fmem-10 %fmem-60 %fmem-300 %fmem", "%", ".2f")


def _psi_row(prev, cur, sec: float) -> dict:
    full_cur, full_prev = cur.full, prev.full
    return {
        "%smem-10": cur.some.avg10, "%smem-60": cur.some.avg60, "%smem-300": cur.some.avg300,
        "%smem": stall_pct(prev.some, cur.some, sec),
        "%fmem-10": full_cur.avg10 if full_cur else None,
        "%fmem-60": full_cur.avg60 if full_cur else None,
        "%fmem-300": full_cur.avg300 if full_cur else None,
        "%fmem": stall_pct(full_prev, full_cur, sec),
    }


def sar_q_mem(ds: Dataset) -> SarTable | None:
    found = _interval_rows(ds.psi, ds.uptime, _psi_row)
    if found is None:
        return None
    rows, average = found
    if average is not None:
        for key in ("%smem-10", "%smem-60", "%smem-300", "%fmem-10", "%fmem-60", "%fmem-300"):
            vals = [r[key] for r in rows if r[key] is not None]
            # fsum: exact, so the average does not depend on the Python
            # version (3.12's sum() of floats compensates, earlier ones do not).
            average[key] = math.fsum(vals) / len(vals) if vals else None
    return SarTable("sar-q-MEM", "sar -q MEM", "Memory pressure (sar -q MEM)", SAR_Q_MEM_COLUMNS, rows,
                    average, [SERIES_PROC_PRESSURE_MEMORY, SERIES_PROC_UPTIME],
                    "PSI (4.20+): %smem/%fmem = share of the interval in which some/all non-idle tasks "
                    "stalled on memory; -10/-60/-300 are the kernel's running averages.")


def all_sar_tables(ds: Dataset) -> list[SarTable]:
    """Every sar table the bundle allows, in sar's option order."""
    out = []
    for fn in (sar_B, sar_r, sar_S, sar_W, sar_H, sar_q_mem):
        t = fn(ds)
        if t is not None:
            out.append(t)
    return out
