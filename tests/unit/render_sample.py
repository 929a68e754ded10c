"""A hand-built Report exercising every block type the renderers know.

Numbers are made up but shaped like a real incident: sar -B rows with an
``Average:`` footer, a wide sar -r ALL table, charts with gaps (a failed
read is None, not zero), a flame graph, findings of every severity, a
timeline, skipped rules and missing artifacts.
"""

from __future__ import annotations

from snapcollect.analysis.results import Evidence, Finding, SkippedRule, TimelineEvent
from snapcollect.report.model import (Chart, Column, FlameGraph, KeyValues, Paragraph, Preformatted, Report,
                                      Section, Table)

T0 = 1763820130.0   # 2025-11-22 14:02:10 UTC

SAR_B_COLS = ["pgpgin/s", "pgpgout/s", "fault/s", "majflt/s", "pgfree/s", "pgscank/s", "pgscand/s",
              "pgsteal/s", "%vmeff"]
SAR_R_COLS = ["kbmemfree", "kbavail", "kbmemused", "%memused", "kbbuffers", "kbcached", "kbcommit",
              "%commit", "kbactive", "kbinact", "kbdirty", "kbanonpg", "kbslab", "kbkstack", "kbpgtbl",
              "kbvmused"]


def sar_b_table(n: int = 5) -> Table:
    cols = [Column("t", "time", "time", "left")]
    cols += [Column(k, k, ".2f", unit="%" if k.startswith("%") else "kB/s" if "pgpg" in k else "pages/s")
             for k in SAR_B_COLS]
    rows = []
    for i in range(n):
        row = {"t": T0 + i + 1}
        for j, k in enumerate(SAR_B_COLS):
            row[k] = (i + 1) * (j + 1) * 10.125
        rows.append(row)
    if n > 2:
        rows[2]["majflt/s"] = None   # a failed read
    avg = {"t": "Average:"}
    for k in SAR_B_COLS:
        vals = [r[k] for r in rows if r[k] is not None]
        avg[k] = sum(vals) / len(vals)
    return Table("sar-B", cols, rows, caption="sar -B: paging", footer=[avg],
                 source=["series/proc/vmstat", "series/proc/uptime"],
                 note="pgsteal/s counts pgsteal_kswapd + pgsteal_direct only (sysstat 12.7.9).")


def sar_r_table(n: int = 3) -> Table:
    cols = [Column("t", "time", "time", "left")]
    cols += [Column(k, k, ".2f" if k.startswith("%") else "d", unit="%" if k.startswith("%") else "kB")
             for k in SAR_R_COLS]
    rows = []
    for i in range(n):
        row = {"t": T0 + i + 1}
        for j, k in enumerate(SAR_R_COLS):
            row[k] = 12.5 + i if k.startswith("%") else 24000000 - 1000 * i * (j + 1)
        rows.append(row)
    avg = {"t": "Average:", **{k: rows[0][k] for k in SAR_R_COLS}}
    return Table("sar-r", cols, rows, caption="sar -r ALL: memory", footer=[avg],
                 source=["series/proc/meminfo"])


def sample_report() -> Report:
    x = [T0 + i for i in range(12)]
    mem = Chart("mem-breakdown", "Memory breakdown", x,
                {"used": [4e6 + 1e5 * i if i != 5 else None for i in range(12)],
                 "cache": [2e6] * 12, "free": [18e6 - 1e5 * i for i in range(12)]},
                y_label="kB", kind="stacked", source=["series/proc/meminfo"])
    psi = Chart("psi", "PSI memory", x,
                {"some avg10": [0.0, 0.5, 3.0, 12.0, None, None, 40.0, 61.5, 70.0, 64.0, 20.0, 2.0],
                 "full avg10": [0.0, 0.0, 1.0, 6.0, None, None, 30.0, 58.0, 66.0, 60.0, 10.0, 0.5]},
                y_label="%", source=["series/proc/pressure/memory"], note="Gap: PSI unreadable for 2 s.")
    bar = Chart("top-rss", "Top processes by RSS", [0, 1, 2], {"RSS kB": [3_200_000, 1_100_000, 40_000]},
                kind="bar", categories=["java", "postgres", "sshd"], y_label="kB")
    flame = FlameGraph("fault-flame", "Page faults by user stack",
                       [("main;run;touch_pages", 1520), ("main;run;alloc_buffer;memset", 310),
                        ("main;init;read_config", 12), ("python3;_PyEval_EvalFrameDefault;list_append", 200)],
                       count_name="faults", note="Sampled 1 in 16; counts scaled back.",
                       source=["bpf/fault_stacks"])
    free = Preformatted("               total        used        free      shared     buffers       cache"
                        "   available\nMem:        24684084      278048    24465248        8872        1112"
                        "      131292    24406036\nSwap:              0           0           0\n",
                        caption="free -w at the start", source=["cmd/free@start"])
    procs = Table("top-rss", [Column("pid", "PID", "d"), Column("comm", "Command", align="left"),
                              Column("rss_kb", "RSS", "kb", unit="kB"),
                              Column("pss_kb", "PSS", "iec_kb", unit="kB")],
                  [{"pid": 4711, "comm": "java", "rss_kb": 3_200_000, "pss_kb": 3_100_000},
                   {"pid": 812, "comm": "postgres | writer", "rss_kb": 1_100_000, "pss_kb": None}],
                  caption="Top processes by RSS", source=["procs/top"])
    sections = [
        Section("free", "free", [free, KeyValues([("MemTotal", "23Gi"), ("MemAvailable", "22Gi")],
                                                 caption="Key figures")]),
        Section("paging", "Paging and reclaim",
                [Paragraph("Rates per second as **sar -B** prints them; see [OOM kills](#oom) "
                           "and the [upstream source](https://github.com/sysstat/sysstat)."),
                 sar_b_table(), psi],
                subsections=[Section("sar-r", "sar -r ALL", [sar_r_table(), mem], level=3)]),
        Section("processes", "Processes", [procs, bar, flame]),
        Section("oom", "OOM kills", [Paragraph("One OOM kill in memcg `/app`.")]),
    ]
    ev = Evidence(["bpf/oom_kill", "kmsg"], (T0 + 31, T0 + 31), {"victim": "java (pid 4711)", "anon_rss_kb": 3_150_000},
                  section="oom")
    findings = [
        Finding("PSI_STALLS", "INFO", "Tasks stalled on memory", "Some stall time.", "%smem > 0.17",
                "senpai defaults", Evidence(["series/proc/pressure/memory"], (T0, T0 + 11), {"%smem": 21.4}, "paging")),
        Finding("OOM_KILL", "CRIT", "The kernel OOM-killed java (pid 4711)",
                "Memory ran out in memcg /app. Raise its limit or fix the leak.", "any kill",
                "every alerting ruleset", ev),
        Finding("RECLAIM_INEFFICIENT", "WARN", "Reclaim frees few of the pages it scans",
                "%vmeff fell below 30.", "%vmeff < 30 while scanning", "sar man page",
                Evidence(["series/proc/vmstat"], (T0 + 5, T0 + 9), {"%vmeff": 12.25}, "paging")),
        Finding("PSI_PRESSURE", "HIGH", "Memory pressure stalled all tasks 41% of the time",
                "Full stall share over the window.", "%fmem >= 40", "oomd configuration examples",
                Evidence(["series/proc/pressure/memory"], (T0 + 3, T0 + 10), {"%fmem": 41.0}, "paging")),
    ]
    timeline = [
        TimelineEvent(T0 + 31, "oom", "OOM kill: java (pid 4711) in /app", "CRIT", "bpf/oom_kill", "oom"),
        TimelineEvent(T0 + 2.5, "pressure", "PSI some avg10 rose above 10%", "WARN",
                      "series/proc/pressure/memory", "paging"),
        TimelineEvent(T0 + 12, "kmsg", "kernel: java invoked oom-killer: gfp_mask=0xcc0", None, "kmsg"),
    ]
    meta = {"host": "web1", "kernel": "6.18.0-test", "started_at": "2025-11-22T14:02:10Z",
            "ended_at": "2025-11-22T14:03:10Z", "window": (T0, T0 + 60.0), "interval_s": 1.0,
            "duration_requested_s": 60.0, "samples": 61, "tool_version": "0.1.0", "format_version": 1,
            "cpu_s": 0.84, "peak_rss_kb": 41200, "complete": False, "stopped_by": "signal",
            "incomplete_reason": "stopped by SIGINT after 60 s", "bundle": "snapcollect-web1.tar.zst",
            "notes": ["sar tables follow sysstat 12.7.9 definitions."]}
    missing = [{"name": "bpf/fault_stacks", "status": "unavailable", "reason": "no kernel headers"},
               {"name": "cmd/numastat@start", "status": "missing", "reason": "numastat not installed"}]
    return Report(meta=meta, missing=missing, sections=sections, findings=findings,
                  skipped_rules=[SkippedRule("NUMA_MISSES", "needs sys/node/*/numastat (single node)"),
                                 SkippedRule("HUGETLB_EXHAUSTED", "HugePages_Total is 0")],
                  timeline=timeline, verdict="Pressure rose from 14:02:13; at 14:02:41 the kernel "
                  "OOM-killed java (pid 4711) in memcg `/app`.",
                  data_tables={"sar-B": sar_b_table()})
