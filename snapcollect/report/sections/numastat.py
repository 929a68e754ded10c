"""The ``numastat`` view: per-node allocation counters and memory, with deltas.

From /sys/devices/system/node/node<N>/numastat (pages) and .../meminfo
(kB) at the start and end of the window.
"""

from __future__ import annotations

from snapcollect.analysis.model import Model
from snapcollect.bundle.names import NODE_MEMINFO, NODE_NUMASTAT, end_of, node_file, series, start_of
from snapcollect.report.model import Column, Paragraph, Section, Table
from snapcollect.report.sections.common import absent

COUNTERS = ("numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node", "other_node")
MEMINFO = ("MemTotal", "MemFree", "MemUsed", "Active", "Inactive", "FilePages", "AnonPages", "Shmem", "Slab",
           "KernelStack", "PageTables", "HugePages_Total", "HugePages_Free")


def _per_node(tid: str, caption: str, keys, start, end, fmt: str, unit: str, source: list[str], note: str = "") -> Table:
    nodes = sorted(set(end) | set(start or {}))
    cols = [Column("name", "", "", "left")]
    for n in nodes:
        cols += [Column(f"node{n}", f"node{n}", fmt, unit=unit), Column(f"node{n}_change", f"node{n} change", "+.0f",
                                                                      unit=unit)]
    rows = []
    for k in keys:
        if not any(k in end.get(n, {}) for n in nodes):
            continue
        row = {"name": k}
        for n in nodes:
            b = end.get(n, {}).get(k)
            a = (start or {}).get(n, {}).get(k)
            row[f"node{n}"] = b
            row[f"node{n}_change"] = b - a if a is not None and b is not None else None
        rows.append(row)
    return Table(tid, cols, rows, caption=caption, source=source, note=note)


def numastat_sections(m: Model) -> tuple[list[Section], dict[str, Table]]:
    ds = m.ds
    s = Section("numastat", "NUMA nodes: numastat")
    data: dict[str, Table] = {}
    end, start = ds.end.numastat, ds.start.numastat
    if end is None and ds.numa:
        end = ds.numa[-1].value
        start = ds.numa[0].value
    if end:
        every_node = node_file("*", NODE_NUMASTAT)
        src = [start_of(every_node), end_of(every_node)] if ds.end.numastat else [series(every_node)]
        t = _per_node("numastat", "numastat at the end and change over the window (pages)", COUNTERS, start, end,
                      "d", "pages", src,
                      "numa_miss: allocated here although another node was preferred; numa_foreign: meant for "
                      "this node, allocated elsewhere; other_node: allocated here for a task running elsewhere.")
        s.blocks.append(t)
        data[t.id] = t
    else:
        s.blocks.append(absent(ds, "NUMA counters", end_of(node_file(0, NODE_NUMASTAT))))
    if ds.end.numa_meminfo:
        t = _per_node("numastat-m", "Per-node memory at the end and change (kB, as numastat -m in kB)", MEMINFO,
                      ds.start.numa_meminfo, ds.end.numa_meminfo, ".0f", "kB",
                      [start_of(node_file("*", NODE_MEMINFO)), end_of(node_file("*", NODE_MEMINFO))],
                      "HugePages_* are page counts.")
        s.blocks.append(t)
        data[t.id] = t
        total = (ds.end.meminfo or {}).get("MemTotal")
        nodes_total = sum(v.get("MemTotal", 0) for v in ds.end.numa_meminfo.values())
        if total and abs(nodes_total - total) > total * 0.01:
            s.blocks.append(Paragraph(
                f"The nodes' MemTotal add up to {nodes_total:,} kB, /proc/meminfo says {total:,} kB: part of "
                f"this machine's memory is managed outside the NUMA nodes' zones (seen on some hypervisors), "
                f"so per-node figures do not add up to the system's."))
    return [s], data
