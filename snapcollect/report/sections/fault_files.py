"""Report sections of bpf/fault_files: faults by file and mapping, swap-ins and huge-page faults
per process. They lay out the model's ``fault_maps`` (analysis/faultmaps.py) and compute nothing."""

from __future__ import annotations

from snapcollect.analysis import bpf as A
from snapcollect.analysis.model import Model
from snapcollect.bundle.names import BPF_FAULT_FILES, BPF_THP_FAULTS, PROCS_TOP, SERIES_PROCS
from snapcollect.report.model import Column, Paragraph, Section, Table

TOP_PROCESSES = 10
TOP_MAPPINGS = 5

NO_THP_TRACE = ("No per-process count of THP fallbacks exists without kprobes (the kernel has no "
                "tracepoint for a failed huge-page fault): fallbacks are host-wide (thp_fault_fallback); "
                "--thp-fallback counts them per process where the kernel offers kprobes.")


def fault_file_sections(m: Model) -> list[Section]:
    sec = Section("fault-files", "Faults by file and mapping")
    swap = Section("swapins-by-process", "Swap-ins by process", level=3)
    huge = Section("hugepages-by-process", "Huge pages by process", level=3)
    st, reason = A.bpf_status(m.ds).get(BPF_FAULT_FILES, ("missing", None))
    f = m.fault_maps
    if f is None and st == "missing":
        return []           # a bundle from before this artifact: nothing to say beside the other sections
    if f is None:
        sec.blocks.append(Paragraph(f"Not collected (`{BPF_FAULT_FILES}` {st}): {reason or 'no reason recorded'}."))
        return [sec]
    sec.subsections += [swap, huge]
    rows = []
    for p in f.processes[:TOP_PROCESSES]:
        for mp in p.mappings[:TOP_MAPPINGS]:
            rows.append({"pid": p.pid, "comm": p.comm, "mapping": mp.mapping,
                         "kind": mp.kind + (" (code)" if mp.executable and mp.kind == "file" else ""),
                         "major": mp.major_faults, "sampled": mp.faults_estimated})
    if rows:
        sec.blocks.append(Table(
            "fault-files", [Column("pid", "PID"), Column("comm", "COMM", align="left"),
                            Column("mapping", "MAPPING", align="left"), Column("kind", "KIND", align="left"),
                            Column("major", "MAJFLT", ",d"), Column("sampled", "FAULTS(est)", ",d")],
            rows, caption=f"Top {TOP_PROCESSES} processes x top {TOP_MAPPINGS} mappings, most major faults first",
            source=[BPF_FAULT_FILES],
            note=f"MAJFLT: every major fault, exact. FAULTS(est): sampled faults x {f.sample_period}, "
                 "over the share of the window the sampler was open (an estimate; see Page faults by stack). Regions are 2 MiB: small mappings side by side share one and go to the "
                 "largest. [unknown mapping]: the process exited before its maps were read."
                 + (f" {f.map_full:,} new regions were lost to a full map." if f.map_full else "")
                 + (f" {f.bad_rows} row(s) of the wrong type were skipped." if f.bad_rows else "")))
    else:
        sec.blocks.append(Paragraph("No page fault was recorded with its address during the window."))
    if f.swapins:
        swap.blocks.append(Table(
            "swapins-by-process", [Column("pid", "PID"), Column("comm", "COMM", align="left"),
                                   Column("swapins", "SWAPINS", ",d"), Column("majflt", "MAJFLT(/proc)", ",d"),
                                   Column("vmswap_kb", "VmSwap", ",d", unit="kB")],
            [{"pid": s.pid, "comm": s.comm, "swapins": s.swapins, "majflt": s.majflt, "vmswap_kb": s.vmswap_kb}
             for s in f.swapins[:20]],
            caption="Major faults on anonymous or shmem memory (pages read back from swap), per process",
            source=[BPF_FAULT_FILES, SERIES_PROCS],
            note="MAJFLT(/proc): all major faults of /proc/PID/stat over the window (file ones too); "
                 "VmSwap at the last sight. A count, not the time the process waited for them."))
    else:
        swap.blocks.append(Paragraph("No major fault on anonymous or shmem memory: no process was swapped in."))
    if f.hugetlb:
        huge.blocks.append(Table(
            "hugetlb-by-process", [Column("pid", "PID"), Column("comm", "COMM", align="left"),
                                   Column("faults", "FAULTS(est)", ",d"), Column("major", "MAJFLT", ",d")],
            [{"pid": p.pid, "comm": p.comm, "faults": p.hugetlb_faults_estimated, "major": p.hugetlb_major_faults}
             for p in f.hugetlb[:20]],
            caption="Faults in hugetlbfs mappings (MAP_HUGETLB, hugetlbfs files)", source=[BPF_FAULT_FILES]))
    else:
        huge.blocks.append(Paragraph("No fault in a hugetlbfs mapping."))
    if f.thp:
        huge.blocks.append(Table(
            "thp-by-process", [Column("pid", "PID"), Column("comm", "COMM", align="left"),
                               Column("anon_huge_kb", "AnonHugePages", ",d", unit="kB"),
                               Column("rss_kb", "RSS", ",d", unit="kB")],
            [{"pid": t.pid, "comm": t.comm, "anon_huge_kb": t.anon_huge_kb, "rss_kb": t.rss_kb} for t in f.thp[:20]],
            caption="Transparent huge pages of the top processes (smaps_rollup AnonHugePages)",
            source=[PROCS_TOP]))
    thp_host = ""
    if f.thp_fault_alloc is not None:
        thp_host = (f"Host-wide over the window: thp_fault_alloc {f.thp_fault_alloc:,}, "
                    f"thp_fault_fallback {f.thp_fault_fallback if f.thp_fault_fallback is not None else '?'}. ")
    t = m.thp_faults
    per_process = (f"Per-process fallbacks: THP fault fallbacks by process (`{BPF_THP_FAULTS}`)."
                   if t is not None and t.ok else NO_THP_TRACE)
    huge.blocks.append(Paragraph(thp_host + per_process))
    return [sec]
