"""Report sections of the BPF events: OOM kills, reclaim and compaction
stalls, kswapd wake-ups (then vmscan.py's shrinkers, kswapd runs and page
migration), page-fault flame graph, major faults, brk/mmap
growth. Laid out like the bcc tools print them (oomkill, drsnoop,
stackcount -f); when BPF did not run, one paragraph says why and how to
fix it, and OOM kills still come from the kernel log.
"""

from __future__ import annotations

from snapcollect.analysis import bpf as A
from snapcollect.analysis.bpf_headers import consequence
from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.model import Model
from snapcollect.analysis.oom import is_memcg_kill, kmsg_lines_for, memcg_of
from snapcollect.bundle.names import (BPF_COMPACTION, BPF_FAULT_STACKS_FOLDED, BPF_HEAP_GROWTH,
                                      BPF_KSWAPD_WAKE, BPF_MAJFAULT_BY_PROC, BPF_OOM_KILL, BPF_RECLAIM,
                                      KMSG)
from snapcollect.report.model import (Chart, Column, FlameGraph, KeyValues, Paragraph, Preformatted,
                                      Section, Table)
from snapcollect.report.sections.kmsg import log_blocks
from snapcollect.report.sections.common import stars
from snapcollect.report.sections.fault_files import fault_file_sections
from snapcollect.report.sections.swap_residency import swap_residency_sections
from snapcollect.report.sections.thp_faults import thp_faults_sections
from snapcollect.report.sections.vmscan import vmscan_sections

TIME = Column("t", "TIME", "time", "left")
WORST_ROWS = 20


def short_stack(frames: list[str], keep: int = 4, width: int = 70) -> str:
    """The innermost ``keep`` frames (root first), repeats folded as ``name x3``."""
    folded: list[str] = []
    runs: list[int] = []
    for f in frames:
        if folded and folded[-1] == f:
            runs[-1] += 1
        else:
            folded.append(f)
            runs.append(1)
    parts = [f if n == 1 else f"{f} x{n}" for f, n in zip(folded, runs)]
    text = ";".join(parts[-keep:])
    if len(parts) > keep:
        text = "...;" + text
    return text if len(text) <= width else "..." + text[-(width - 3):]


def heap_rows(entries: list[dict], n: int = 20) -> list[dict]:
    """Biggest growth first; each with its top stack (root first) as text."""
    rows = []
    for e in entries:
        stacks = e.get("stacks") or []
        top = short_stack(stacks[0].get("frames", [])) if stacks else ""
        rows.append({"pid": e.get("pid"), "comm": e.get("comm"), "syscall": e.get("syscall"),
                     "kind": e.get("kind"), "calls": e.get("calls", 0), "bytes": e.get("bytes", 0),
                     "shrink_bytes": e.get("shrink_bytes", 0),
                     "no_baseline": e.get("calls_without_baseline", 0), "top_stack": top})
    rows.sort(key=lambda r: (-(r["bytes"] or 0), -(r["calls"] or 0), r["pid"] or 0))
    return rows[:n]


def _not_collected(ds: Dataset, *names: str) -> Paragraph | None:
    st = A.bpf_status(ds)
    for n in names:
        s, reason = st.get(n, ("missing", None))
        if s != "ok":
            return Paragraph(f"Not collected (`{n}` {s}): {reason or 'no reason recorded'}.")
    return None


def _mib(b: int | None) -> float | None:
    return None if b is None else b / (1024 * 1024)


# -- OOM ----------------------------------------------------------------------


def _kind(k) -> str:
    if is_memcg_kill(k):
        return "memcg " + (memcg_of(k) or "")
    if k.memcg is False:
        return "global" + (f" ({k.constraint})" if k.constraint and k.constraint != "CONSTRAINT_NONE" else "")
    return k.constraint or "?"


def oom_section(m: Model) -> Section:
    ds = m.ds
    s = m.oom
    sec = Section("oom", "OOM kills")
    bpf_state = A.bpf_status(ds).get(BPF_OOM_KILL, ("missing", None))
    src = "BPF `oom:mark_victim`" if bpf_state[0] == "ok" else "the kernel log"
    if s.kills:
        rows = []
        for k in s.kills:
            trig = None
            if k.trigger_comm or k.trigger_pid:
                trig = f"{k.trigger_comm or '?'}" + (f" ({k.trigger_pid})" if k.trigger_pid else "")
            rows.append({"t": k.t, "pid": k.victim_pid, "comm": k.victim_comm, "trigger": trig,
                         "kind": _kind(k).strip(), "anon": k.anon_rss_kb, "file": k.file_rss_kb,
                         "shmem": k.shmem_rss_kb, "total_vm": k.total_vm_kb, "adj": k.oom_score_adj,
                         "source": "+".join("bpf" if x.startswith("bpf") else x for x in k.sources)})
        sec.blocks.append(Table(
            "oom-kills",
            [TIME, Column("pid", "PID"), Column("comm", "COMM", align="left"),
             Column("trigger", "TRIGGERED BY", align="left"), Column("kind", "OOM", align="left"),
             Column("anon", "anon-rss kB", "kb", unit="kB"), Column("file", "file-rss kB", "kb", unit="kB"),
             Column("shmem", "shmem-rss kB", "kb", unit="kB"), Column("total_vm", "total-vm kB", "kb", unit="kB"),
             Column("adj", "oom_score_adj"), Column("source", "SOURCE", align="left")],
            rows, caption=f"OOM kills in the window, from {src}",
            source=sorted({x for k in s.kills for x in k.sources})))
        lines = []
        for k in s.kills:
            lines += kmsg_lines_for(ds.kmsg, k)
        if lines:
            sec.blocks += log_blocks(lines, "Kernel log: the OOM report's headlines",
                                     "The kernel's whole OOM report", line=lambda k: str(k.text))
    else:
        sec.blocks.append(Paragraph(f"No OOM kill during the window (looked at {src}"
                                    + (", the kernel log" if src != "the kernel log" and ds.kmsg else "")
                                    + ")."))
    if s.counted is not None:
        note = f"The kernel counted {s.counted} OOM kill(s) in the window (/proc/vmstat `oom_kill`)"
        if s.unattributed:
            note += f"; {s.unattributed} of them were seen by neither BPF nor the kernel log"
        sec.blocks.append(Paragraph(note + "."))
    if s.earlier:
        sec.blocks.append(earlier_table(list(s.earlier)))
    if bpf_state[0] != "ok" and A.any_ok(ds):
        sec.blocks.append(Paragraph(f"BPF OOM events not collected: {bpf_state[1] or bpf_state[0]}."))
    return sec


def earlier_table(earlier: list) -> Table:
    """OOM kills before the window, one row per (command, kind of OOM).

    They happened before the collection and may have nothing to do with
    it (a host that ran OOM tests logs dozens): how many, when first and
    last, the largest victim, and the pids, which OOM_BEFORE_WINDOW cites.
    """
    groups: dict[tuple[str, str], list] = {}
    for k in earlier:
        groups.setdefault((str(k.victim_comm), _kind(k).strip()), []).append(k)
    rows = []
    for (comm, kind), kills in groups.items():
        times = [k.t for k in kills if isinstance(k.t, (int, float))]
        anon = [k.anon_rss_kb for k in kills if isinstance(k.anon_rss_kb, int)]
        pids = [str(k.victim_pid) for k in kills]
        rows.append({"comm": comm, "kind": kind, "count": len(kills), "first_t": min(times) if times else None,
                     "last_t": max(times) if times else None, "anon": max(anon) if anon else None,
                     "pids": ", ".join(pids[-5:]) + (f" (+{len(pids) - 5} earlier)" if len(pids) > 5 else "")})
    rows.sort(key=lambda r: -(r["last_t"] or 0))
    return Table(
        "oom-kills-earlier",
        [Column("comm", "COMM", align="left"), Column("kind", "OOM", align="left"), Column("count", "KILLS"),
         Column("first_t", "FIRST", "time", "left"), Column("last_t", "LAST", "time", "left"),
         Column("anon", "max anon-rss kB", "kb", unit="kB"), Column("pids", "PIDs (last 5)", align="left")],
        rows, caption=f"{len(earlier)} OOM kill(s) in the kernel log before the window, by command",
        source=[KMSG], note="Before the collection started: check whether they belong to this incident.")


# -- reclaim ------------------------------------------------------------------


def _hist_blocks(prefix: str, title: str, values_us: list[float], source: str) -> list:
    buckets = A.log2_hist(values_us)
    if not buckets:
        return []
    peak = max(b.count for b in buckets)
    table = Table(f"{prefix}-hist", [Column("usecs", "usecs", align="right"), Column("count", "count"),
                                     Column("dist", "distribution", align="left")],
                  [{"usecs": b.label, "count": b.count, "dist": stars(b.count, peak)}
                   for b in buckets], caption=title, source=[source])
    chart = Chart(f"{prefix}-hist-chart", title, x=list(range(len(buckets))),
                  series={"count": [float(b.count) for b in buckets]}, y_label="count", kind="bar",
                  categories=[b.label + " us" for b in buckets], source=[source], in_print=False)
    return [table, chart]


def reclaim_section(ds: Dataset) -> Section:
    sec = Section("reclaim", "Reclaim stalls (direct and memcg)")
    missing = _not_collected(ds, BPF_RECLAIM)
    if missing:
        sec.blocks.append(missing)
        return sec
    stalls = ds.bpf.reclaim
    dropped = (ds.manifest.get("bpf") or {}).get("dropped", {}).get(BPF_RECLAIM)
    if not stalls:
        sec.blocks.append(Paragraph("No direct or memcg reclaim stall during the window "
                                    "(BPF `vmscan:mm_vmscan_{direct,memcg}_reclaim_begin/end`)."))
        return sec
    lat = [s.latency_us for s in stalls]
    kinds = {}
    for s in stalls:
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    text = (f"{len(stalls)} reclaim stall(s) ("
            + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            + f") by {len({(s.pid, s.comm) for s in stalls})} task(s); total "
            f"{sum(lat) / 1000:.1f} ms, p50 {A.percentile(lat, 0.5) / 1000:.2f} ms, "
            f"p99 {A.percentile(lat, 0.99) / 1000:.2f} ms, max {max(lat) / 1000:.2f} ms.")
    if dropped:
        text += f" A further {dropped} stall(s) were counted but not stored (bundle size cap)."
    sec.blocks.append(Paragraph(text))
    sec.blocks.append(Table(
        "reclaim-worst",
        [TIME, Column("comm", "COMM", align="left"), Column("pid", "PID"),
         Column("lat_ms", "LAT(ms)", ".2f", unit="ms"), Column("pages", "PAGES"),
         Column("kind", "KIND", align="left"), Column("order", "ORDER"), Column("gfp", "GFP", align="left")],
        [{"t": s.t, "comm": s.comm, "pid": s.pid, "lat_ms": s.latency_us / 1000, "pages": s.nr_reclaimed,
          "kind": s.kind, "order": s.order, "gfp": s.gfp_flags} for s in A.worst(stalls, WORST_ROWS)],
        caption=f"Worst reclaim stalls (drsnoop; {min(WORST_ROWS, len(stalls))} of {len(stalls)})",
        source=[BPF_RECLAIM], ranked=True))
    hist = Section("reclaim-hist", "Reclaim stall latency", level=3)
    for kind in sorted(kinds):
        hist.blocks += _hist_blocks(f"reclaim-{kind}", f"{kind} reclaim latency (usecs)",
                                    [s.latency_us for s in stalls if s.kind == kind], BPF_RECLAIM)
    per = Section("reclaim-by-process", "Reclaim stalls per process", level=3)
    per.blocks.append(Table(
        "reclaim-by-process",
        [Column("pid", "PID"), Column("comm", "COMM", align="left"), Column("kinds", "KIND", align="left"),
         Column("count", "STALLS"), Column("total_ms", "TOTAL(ms)", ".2f", unit="ms"),
         Column("avg_ms", "AVG(ms)", ".3f", unit="ms"), Column("max_ms", "MAX(ms)", ".2f", unit="ms"),
         Column("pages", "PAGES")],
        [{"pid": a["pid"], "comm": a["comm"], "kinds": a["kinds"], "count": a["count"],
          "total_ms": a["total_us"] / 1000, "avg_ms": a["avg_us"] / 1000, "max_ms": a["max_us"] / 1000,
          "pages": a["pages"]} for a in A.stalls_by_process(stalls)[:WORST_ROWS]],
        caption="Time each process spent in reclaim, most first", source=[BPF_RECLAIM]))
    sec.subsections += [hist, per]
    return sec


def kswapd_section(ds: Dataset) -> Section:
    sec = Section("kswapd", "kswapd wake-ups")
    missing = _not_collected(ds, BPF_KSWAPD_WAKE)
    if missing:
        sec.blocks.append(missing)
        return sec
    wakes = ds.bpf.kswapd_wakes
    if not wakes:
        sec.blocks.append(Paragraph("kswapd was not woken during the window "
                                    "(BPF `vmscan:mm_vmscan_wakeup_kswapd`)."))
        return sec
    sec.blocks.append(Table(
        "kswapd-wakes",
        [Column("nid", "NODE"), Column("order", "ORDER"), Column("count", "WAKE-UPS"),
         Column("first_t", "FIRST", "time", "left"), Column("last_t", "LAST", "time", "left")],
        A.kswapd_by_node_order(wakes), caption="kswapd wake-ups by node and allocation order",
        source=[BPF_KSWAPD_WAKE]))
    x, counts = A.per_second([w[0] for w in wakes], ds.window)
    sec.blocks.append(Chart("kswapd-wakes-chart", "kswapd wake-ups per second", x=x,
                            series={"wake-ups/s": counts}, y_label="wake-ups/s",
                            source=[BPF_KSWAPD_WAKE]))
    return sec


def compaction_section(ds: Dataset) -> Section:
    sec = Section("compaction", "Compaction stalls")
    missing = _not_collected(ds, BPF_COMPACTION)
    if missing:
        sec.blocks.append(missing)
        return sec
    stalls = ds.bpf.compaction
    if not stalls:
        sec.blocks.append(Paragraph("No memory compaction during the window "
                                    "(BPF `compaction:mm_compaction_begin/end`)."))
        return sec
    lat = [s.latency_us for s in stalls]
    sec.blocks.append(Paragraph(f"{len(stalls)} compaction run(s); total {sum(lat) / 1000:.1f} ms, "
                                f"max {max(lat) / 1000:.2f} ms."))
    sec.blocks.append(Table(
        "compaction-status",
        [Column("status", "STATUS", align="left"), Column("count", "RUNS"),
         Column("total_ms", "TOTAL(ms)", ".2f", unit="ms"), Column("max_ms", "MAX(ms)", ".2f", unit="ms")],
        [{"status": a["status"], "count": a["count"], "total_ms": a["total_us"] / 1000,
          "max_ms": a["max_us"] / 1000} for a in A.by_status(stalls)],
        caption="Compaction runs by result", source=[BPF_COMPACTION]))
    sec.blocks.append(Table(
        "compaction-worst",
        [TIME, Column("comm", "COMM", align="left"), Column("pid", "PID"),
         Column("lat_ms", "LAT(ms)", ".2f", unit="ms"), Column("status", "STATUS", align="left")],
        [{"t": s.t, "comm": s.comm, "pid": s.pid, "lat_ms": s.latency_us / 1000, "status": s.status}
         for s in A.worst(stalls, 10)], caption="Longest compaction runs", source=[BPF_COMPACTION]))
    sec.blocks += _hist_blocks("compaction", "compaction latency (usecs)", lat, BPF_COMPACTION)
    return sec


# -- faults and growth ---------------------------------------------------------


def _duty_text(info: dict) -> str:
    sampler = info.get("fault_sampler")
    duty = sampler.get("duty") if isinstance(sampler, dict) else None
    if not isinstance(duty, dict) or duty.get("duty_pct") in (None, 100):
        return ""
    share, phases = duty.get("open_share"), duty.get("phases")
    if not isinstance(share, (int, float)) or isinstance(share, bool):
        return ""
    return f", open {share:.0%} of the window ({phases} phases of {duty.get('on_s')} s every {duty.get('cycle_s')} s)"


def faults_section(ds: Dataset) -> Section:
    sec = Section("page-faults", "Page faults by stack")
    missing = _not_collected(ds, BPF_FAULT_STACKS_FOLDED)
    bpf = ds.bpf
    period = bpf.fault_sample_period
    if missing:
        sec.blocks.append(missing)
    elif not bpf.fault_stacks:
        sec.blocks.append(Paragraph("No user page fault was sampled during the window "
                                    f"(1 in {period} recorded)."))
    else:
        total = sum(c for _, c in bpf.fault_stacks)
        source = bpf.fault_source or "`exceptions:page_fault_user`"
        error = bpf.fault_sampling_error or f"each is exact within about {period} per CPU"
        share = bpf.fault_open_share
        duty = (f" while the sampler was open, {share:.0%} of the window (0.5 s cycles: an open "
                "sampler slows every fault, a closed one none)" if share < 1.0 else "")
        scaled = f"samples x {period}" + (f" / {share:.2f}" if share < 1.0 else "")
        note = (f"User page faults ({source}): 1 fault in {period} per CPU was "
                f"recorded with its user stack{duty}; counts are scaled back ({scaled}); "
                f"{error}. About {total:,} faults in all.")
        if bpf.fault_open_counted is not None and share < 1.0:
            note += (f" While it was open the perf events counted {bpf.fault_open_counted:,} faults on all "
                     "CPUs (exact, every process, the collector's own included).")
        if bpf.stack_errors:
            note += (f" {bpf.stack_errors} sample(s) lost their stack (stack map full or colliding); "
                     "they are counted under a `[stack lost]` or `[no user stack]` frame.")
        note += (" Programs built without frame pointers show short stacks ending in the "
                 "library or `[unknown]`. Stacks deeper than 32 frames are drawn with their middle "
                 f"merged into one `[N frames]` frame. The bundle's `{BPF_FAULT_STACKS_FOLDED}` holds every "
                 "stack, one `frame;frame;... count` line each with the counts drawn here, as "
                 "flamegraph.pl and speedscope read them: `snapcollect show BUNDLE --extract "
                 f"{BPF_FAULT_STACKS_FOLDED} | flamegraph.pl > faults.svg`, or open the file in speedscope.")
        sec.blocks.append(FlameGraph("page-fault-flamegraph", "Page faults (user stacks)",
                                     bpf.fault_stacks, count_name="faults", note=note,
                                     source=[BPF_FAULT_STACKS_FOLDED]))
        sec.blocks.append(Table(
            "faults-by-command",
            [Column("comm", "COMM", align="left"), Column("faults", "FAULTS (est.)", ",d"),
             Column("share", "%", ".1f", unit="%")],
            [{"comm": c, "faults": n, "share": 100.0 * n / total} for c, n in A.faults_by_command(bpf.fault_stacks)[:15]],
            caption="Page faults per command, estimated from the samples",
            source=[BPF_FAULT_STACKS_FOLDED]))
        sec.blocks.append(Preformatted(
            "\n".join(f"{s} {c}" for s, c in A.top_stacks(bpf.fault_stacks, 10)),
            caption="Hottest stacks (folded: command;outermost;...;innermost count)",
            source=[BPF_FAULT_STACKS_FOLDED]))
    maj = Section("major-faults", "Major faults per process", level=3)
    missing = _not_collected(ds, BPF_MAJFAULT_BY_PROC)
    if missing:
        maj.blocks.append(missing)
    elif not bpf.majfaults_by_proc:
        maj.blocks.append(Paragraph("No major fault during the window (perf software event "
                                    "`major-faults`, every fault counted)."))
    else:
        items = sorted(bpf.majfaults_by_proc.items(), key=lambda kv: (-kv[1], kv[0][0]))[:WORST_ROWS]
        maj.blocks.append(Table(
            "major-faults",
            [Column("pid", "PID"), Column("comm", "COMM", align="left"), Column("majflt", "MAJFLT", ",d")],
            [{"pid": pid, "comm": comm, "majflt": n} for (pid, comm), n in items],
            caption="Major faults (pages read from disk or swap) per process, every fault counted",
            source=[BPF_MAJFAULT_BY_PROC]))
    sec.subsections.append(maj)
    return sec


def heap_section(ds: Dataset) -> Section:
    sec = Section("heap-growth", "Heap and mapping growth (brk, mmap)")
    missing = _not_collected(ds, BPF_HEAP_GROWTH)
    if missing:
        sec.blocks.append(missing)
        return sec
    rows = heap_rows(ds.bpf.heap_growth, WORST_ROWS)
    if not rows:
        sec.blocks.append(Paragraph("No brk or mmap call during the window."))
        return sec
    sec.blocks.append(Table(
        "heap-growth",
        [Column("pid", "PID"), Column("comm", "COMM", align="left"), Column("syscall", "SYSCALL", align="left"),
         Column("kind", "KIND", align="left"), Column("calls", "CALLS", ",d"),
         Column("mib", "GROWTH(MiB)", ".1f", unit="MiB"), Column("top_stack", "TOP STACK", align="left")],
        [{**r, "mib": _mib(r["bytes"])} for r in rows],
        caption="Bytes added by brk (heap) and mmap (anonymous or file) per process, biggest first",
        source=[BPF_HEAP_GROWTH],
        note="brk growth counts from the first brk call seen for a process; mmap counts the "
             "length of every successful call (unmaps are not subtracted)."))
    return sec


def _headers_row(m: Model, info: dict) -> str:
    """The headers bcc compiled against, and what another kernel's mean for the data (the model's fact)."""
    h = m.bpf_headers
    if h is None:
        return f"{info.get('headers_release') or '?'} (kernel {info.get('kernel', '?')})"
    return f"{h.headers_release}, not the running kernel's ({h.kernel}): {consequence(h)}"


def bpf_sections(m: Model) -> list[Section]:
    ds = m.ds
    sections = [oom_section(m)]
    reason = A.why_unavailable(ds)
    if reason is not None:
        sections.append(Section("bpf", "BPF events", [Paragraph(
            f"BPF not available: {reason}. Reclaim and compaction stalls, kswapd wake-ups and runs, "
            "slab shrinker latency, page migration, swap residency, page-fault "
            "stacks, major faults per process and brk/mmap growth were not collected; the "
            "counters in the sar sections still show the totals.")]))
        return sections
    sections += [reclaim_section(ds), kswapd_section(ds), *vmscan_sections(m), compaction_section(ds),
                 faults_section(ds), heap_section(ds), *fault_file_sections(m), *thp_faults_sections(m),
                 *swap_residency_sections(m)]
    info = ds.manifest.get("bpf") or {}
    if info.get("compile_s") is not None:
        # bundles since the BPF process: the compile's RSS is that process's, not the collector's;
        # since the loader, the loader's (it exits before the window) and the reader's apart
        loader = info.get("loader") if isinstance(info.get("loader"), dict) else None
        whose = "BPF loader" if loader else "BPF process" if isinstance(info.get("process"), dict) else "collector"
        rows = [("compile time", f"{info['compile_s']:.2f} s (all programs, one object, before the window)")]
        if isinstance(info.get("start_s"), (int, float)):
            rows.append(("BPF start", f"{info['start_s']:.2f} s from start to attach; the window waited for it"))
        proc = info.get("process")
        if isinstance(proc, dict) and isinstance(proc.get("peak_rss_kb"), int):
            rows.append(("BPF reader" if loader else "BPF process",
                         f"peak RSS {proc['peak_rss_kb']:,} kB, {proc.get('cpu_s', '?')} s CPU, "
                         f"{proc.get('exit', '?')}" + (" (reads events and maps for the window)" if loader else "")))
        if loader and isinstance(loader.get("peak_rss_kb"), int):
            rows.append(("BPF loader", f"peak RSS {loader['peak_rss_kb']:,} kB, {loader.get('cpu_s', '?')} s CPU, "
                                       f"{loader.get('exit', '?')} (compiles and attaches, exits before the window)"))
        sections.append(Section("bpf-cost", "BPF collection cost", [KeyValues(rows + [
            (f"{whose} RSS before compile", f"{info.get('compile_rss_before_kb', 0):,} kB"),
            (f"{whose} RSS peak during compile", f"{info.get('compile_peak_rss_kb', 0):,} kB"),
            ("page-fault sampling", f"1 in {info.get('fault_sample_period', '?')} per CPU" + _duty_text(info)),
            ("kernel headers", _headers_row(m, info)),
            ("events lost (perf buffer)", str(info.get("events_lost", 0))),
        ], caption="From the manifest's bpf field")]))
    return sections

