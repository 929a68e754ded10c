"""Everything parsed from one bundle, the input of analysis and findings.

``load_dataset(bundle)`` is the only place that asks the bundle for
artifacts by name and hands their text to the parsers. Every field may be
empty or None: old kernels, containers and unprivileged runs leave gaps;
``missing`` says why a source is absent. An artifact that is present but
does not parse is listed in ``missing`` with status ``error`` and the
parser's one-line reason; the rest of the bundle still loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from snapcollect.bundle.names import (BPF_PREFIX, CGROUPS_MEMORY, DELAY_TASKSTATS, CMD_FREE, CMD_NUMASTAT, CMD_NUMASTAT_M,
                                      CMD_SWAPON, CMD_VMSTAT_S, FS_MEMFS, HOST_INFO, KMSG, NODE_DIR_PREFIX,
                                      NODE_MEMINFO, NODE_NUMASTAT, PID_CMDLINE, PID_PMAP_X, PID_SMAPS,
                                      PID_SMAPS_ROLLUP, PID_STATUS, PROCS, PROCS_MEMORY,
                                      PROCS_OPEN_DELETED, PROCS_TOP, PROC_BUDDYINFO, PROC_MEMINFO,
                                      PROC_PRESSURE_MEMORY, PROC_SLABINFO, PROC_SWAPS, PROC_SYSVIPC_SHM,
                                      PROC_SYS_VM, PROC_UPTIME, PROC_VMSTAT, PROC_ZONEINFO,
                                      SERIES_CGROUPS_MEMORY, SYS_THP, pid_file, series, series_source)
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.bpf_events import load_bpf_data
from snapcollect.parsers.buddyinfo import parse_buddyinfo
from snapcollect.parsers.deepdive import DeepDiveTarget, parse_target, split_name
from snapcollect.parsers.cgroups import parse_cgroups
from snapcollect.parsers.kmsg import parse_kmsg
from snapcollect.parsers.taskstats import DelayRead, parse_delay_records
from snapcollect.parsers.meminfo import parse_meminfo
from snapcollect.parsers.memfs import parse_memfs
from snapcollect.parsers.numastat import parse_node_meminfo, parse_node_numastat
from snapcollect.parsers.open_deleted import parse_open_deleted
from snapcollect.parsers.pmap_cmd import parse_pmap_x
from snapcollect.parsers.proc_memory import parse_proc_memory
from snapcollect.parsers.proc_status import kb_field, parse_status
from snapcollect.parsers.procs import parse_procs
from snapcollect.parsers.psi import parse_psi
from snapcollect.parsers.records import (BpfData, CgroupLimit, KmsgLine, MemCgroup, MemfsMount, OpenDeleted,
                                         Point, ProcDetail, ProcSample, Psi, ShmSegment, SlabCache,
                                         StatusMemory, SwapDevice)
from snapcollect.parsers.slabinfo import parse_slabinfo
from snapcollect.parsers.smaps import parse_smaps, parse_smaps_rollup, rollup_from_smaps
from snapcollect.parsers.swaps import parse_swaps
from snapcollect.parsers.sysvipc_shm import parse_sysvipc_shm
from snapcollect.parsers.sysctl import parse_name_values
from snapcollect.parsers.uptime import parse_uptime
from snapcollect.parsers.vmstat import parse_vmstat
from snapcollect.parsers.vmstat_s_cmd import parse_vmstat_s
from snapcollect.parsers.zoneinfo import parse_zoneinfo

T = TypeVar("T")

# Classic command outputs kept verbatim per phase: Snapshot.commands key -> artifact source.
COMMANDS = {"free": CMD_FREE, "vmstat-s": CMD_VMSTAT_S, "swapon": CMD_SWAPON,
            "numastat": CMD_NUMASTAT, "numastat-m": CMD_NUMASTAT_M}


@dataclass
class Snapshot:
    """Parsed snapshot of the host at one phase (start or end)."""

    t: float | None = None
    meminfo: dict[str, int] | None = None
    vmstat: dict[str, int] | None = None
    swaps: list[SwapDevice] | None = None
    slabinfo: list[SlabCache] | None = None
    buddyinfo: list[dict] | None = None            # {"node", "zone", "free": [count per order]}
    zoneinfo: dict | None = None                   # parsers.zoneinfo: {"zones": {(node, zone): {...}}, "nodes": {...}}
    psi: Psi | None = None
    sysvm: dict[str, str] | None = None            # /proc/sys/vm/<name> -> value text
    thp: dict[str, str] | None = None              # transparent_hugepage/<path> -> value text
    numa_meminfo: dict[int, dict[str, int]] | None = None
    numastat: dict[int, dict[str, int]] | None = None
    # The cgroups/memory document as stored: {"version", "root", "groups": {path: {file: text}}}.
    cgroups: dict | None = None
    commands: dict[str, str] = field(default_factory=dict)   # "free" -> verbatim output
    # Parsed memory cgroups by path (parsers.cgroups), from ``cgroups``.
    memcgs: dict[str, MemCgroup] | None = None
    uptime_s: float | None = None                  # /proc/uptime first field
    vmstat_s: list[tuple[str, int, str]] | None = None   # parsed ``vmstat -s``: (label, value, unit)
    # Where Shmem lives (collect/sources/shmem.py): memory file systems,
    # SysV segments, every process's status memory fields and the limits
    # of their cgroups; the deleted files still open (end only).
    memfs: list[MemfsMount] | None = None
    shm: list[ShmSegment] | None = None
    proc_memory: list[StatusMemory] | None = None
    cgroup_limits: dict[str, CgroupLimit] | None = None
    open_deleted: list[OpenDeleted] | None = None
    open_deleted_scan: str = ""                    # what the fd scan covered, in its own words


@dataclass
class Dataset:
    manifest: dict[str, Any]
    host: dict[str, Any]
    interval_s: float
    page_size: int
    start: Snapshot
    end: Snapshot
    meminfo: list[Point[dict[str, int]]] = field(default_factory=list)
    vmstat: list[Point[dict[str, int]]] = field(default_factory=list)
    uptime: list[Point[float]] = field(default_factory=list)
    psi: list[Point[Psi]] = field(default_factory=list)
    numa: list[Point[dict[int, dict[str, int]]]] = field(default_factory=list)
    procs: list[Point[dict[int, ProcSample]]] = field(default_factory=list)
    # The memory cgroups the collector followed, by path, at each tick
    # (``series/cgroups/memory``; bundles before it have none).
    memcgs: list[Point[dict[str, MemCgroup]]] = field(default_factory=list)
    top: list[ProcDetail] = field(default_factory=list)
    kmsg: list[KmsgLine] = field(default_factory=list)
    bpf: BpfData = field(default_factory=BpfData)
    # The --pid/--comm deep dive, one per process followed (``deepdive/<pid>/...``)
    deepdive: list[DeepDiveTarget] = field(default_factory=list)
    # Per-process delay accounting reads (``delay/taskstats``; older bundles have none)
    delays: list[DelayRead] = field(default_factory=list)
    # artifact name -> (status, reason) for everything not "ok"
    missing: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    clk_tck: int = 100
    # ticks the bundle holds (some series may have fewer samples)
    ticks: int = 0
    # The collector and the commands it ran (manifest ``collector_pids``):
    # left out of ``procs``, ``top`` and the per-process BPF tables, so no
    # ranking or finding names them; their cost is the manifest's.
    collector_pids: frozenset[int] = frozenset()

    @property
    def window(self) -> tuple[float, float] | None:
        times = [p.t for p in self.vmstat] or [p.t for p in self.meminfo]
        return (times[0], times[-1]) if times else None


class _Loader:
    def __init__(self, bundle):
        self.b = bundle
        self.missing: dict[str, tuple[str, str | None]] = {}
        for a in bundle.artifacts():
            if a.get("status", "ok") != "ok":
                self.missing[a["name"]] = (a.get("status"), a.get("reason"))

    def parse(self, name: str, parser: Callable[[str], T], newer: bool = False) -> T | None:
        """Parse a file artifact; None when absent or unparsable (then recorded).

        ``newer``: an artifact that bundles of older collectors lack; its
        absence from such a bundle is not listed as missing.
        """
        text = self.b.text(name)
        if text is None:
            if name not in self.missing and self.b.entry(name) is None and not newer:
                self.missing[name] = ("missing", "not in this bundle")
            return None
        try:
            return parser(text)
        except ParseError as exc:
            self.missing[name] = ("error", f"could not parse: {exc}")
            return None

    def series(self, source: str, parser: Callable[[str], T]) -> list[Point[T]]:
        out: list[Point[T]] = []
        errors = 0
        first_error = None
        for s in self.b.series(source):
            try:
                out.append(Point(s.k, s.t, parser(s.text)))
            except ParseError as exc:
                errors += 1
                first_error = first_error or str(exc)
        name = series(source)
        if errors:
            self.missing[name] = ("error", f"{errors} samples could not be parsed, e.g.: {first_error}")
        elif not out and name not in self.missing and self.b.entry(name) is None:
            self.missing[name] = ("missing", "not in this bundle")
        return out


def _nodes(bundle, kind: str, phase: str | None) -> list[tuple[int, str]]:
    """(node number, artifact name) of sys/node/node<N>/<kind>[@phase]."""
    out = []
    suffix = f"/{kind}@{phase}" if phase else f"/{kind}"
    if phase:
        candidates = bundle.names(NODE_DIR_PREFIX)
    else:
        candidates = [series(s) for s in bundle.series_sources() if s.startswith(NODE_DIR_PREFIX)]
    for name in candidates:
        body = series_source(name)
        if body.endswith(suffix):
            node = body[len(NODE_DIR_PREFIX):-len(suffix)]
            if node.isdigit():
                out.append((int(node), name))
    return sorted(out)


def _snapshot(ld: _Loader, phase: str) -> Snapshot:
    b = ld.b
    s = Snapshot()
    at = lambda src: f"{src}@{phase}"  # noqa: E731
    s.meminfo = ld.parse(at(PROC_MEMINFO), parse_meminfo)
    s.vmstat = ld.parse(at(PROC_VMSTAT), parse_vmstat)
    s.swaps = ld.parse(at(PROC_SWAPS), parse_swaps)
    s.slabinfo = ld.parse(at(PROC_SLABINFO), parse_slabinfo)
    s.buddyinfo = ld.parse(at(PROC_BUDDYINFO), parse_buddyinfo)
    s.zoneinfo = ld.parse(at(PROC_ZONEINFO), parse_zoneinfo)
    s.psi = ld.parse(at(PROC_PRESSURE_MEMORY), parse_psi)
    s.sysvm = ld.parse(at(PROC_SYS_VM), parse_name_values)
    s.thp = ld.parse(at(SYS_THP), parse_name_values)
    s.uptime_s = ld.parse(at(PROC_UPTIME), parse_uptime)
    raw_cg = ld.parse(at(CGROUPS_MEMORY), lambda t: (parse_cgroups(t), _json(t)))
    if raw_cg is not None:
        parsed, s.cgroups = raw_cg
        s.memcgs = parsed["groups"]
    nm = {n: v for n, name in _nodes(b, NODE_MEMINFO, phase)
          if (v := ld.parse(name, parse_node_meminfo)) is not None}
    ns = {n: v for n, name in _nodes(b, NODE_NUMASTAT, phase)
          if (v := ld.parse(name, parse_node_numastat)) is not None}
    s.numa_meminfo = nm or None
    s.numastat = ns or None
    for key, src in COMMANDS.items():
        text = b.text(at(src))
        if text is not None:
            s.commands[key] = text
    s.memfs = ld.parse(at(FS_MEMFS), parse_memfs, newer=True)
    s.shm = ld.parse(at(PROC_SYSVIPC_SHM), parse_sysvipc_shm, newer=True)
    memory = ld.parse(at(PROCS_MEMORY), parse_proc_memory, newer=True)
    if memory is not None:
        s.proc_memory, s.cgroup_limits = memory
    if phase == "end":
        deleted = ld.parse(at(PROCS_OPEN_DELETED), parse_open_deleted, newer=True)
        if deleted is not None:
            s.open_deleted, s.open_deleted_scan = deleted
    if "vmstat-s" in s.commands:
        s.vmstat_s = ld.parse(at(COMMANDS["vmstat-s"]), parse_vmstat_s)
    return s


def _top(ld: _Loader) -> list[ProcDetail]:
    b = ld.b
    chosen = ld.parse(PROCS_TOP, _json)
    if not isinstance(chosen, list):
        return []
    out = []
    for entry in chosen:
        try:
            pid = int(entry["pid"])
        except (KeyError, TypeError, ValueError):
            continue
        smaps_name = pid_file(pid, PID_SMAPS)
        mappings = ld.parse(smaps_name, parse_smaps) or ()
        rollup = ld.parse(pid_file(pid, PID_SMAPS_ROLLUP), parse_smaps_rollup)
        if rollup is None and mappings:
            rollup = rollup_from_smaps(mappings)   # kernels before 4.14
        rollup = rollup or {}
        status = ld.parse(pid_file(pid, PID_STATUS), parse_status) or {}
        cmdline_raw = b.text(pid_file(pid, PID_CMDLINE))
        cmdline = cmdline_raw.replace("\0", " ").strip() if cmdline_raw else ""
        comm = status.get("Name") or str(entry.get("comm") or "")
        rss = rollup.get("Rss", kb_field(status, "VmRSS") or entry.get("rss_kb"))
        swap = rollup.get("Swap", kb_field(status, "VmSwap"))
        pmap_name = pid_file(pid, PID_PMAP_X)
        pmap_text = b.text(pmap_name)
        pmap = ld.parse(pmap_name, parse_pmap_x) if pmap_text is not None else None
        out.append(ProcDetail(pid=pid, comm=comm, cmdline=cmdline, rss_kb=rss, pss_kb=rollup.get("Pss"),
                              swap_kb=swap, mappings=tuple(mappings),
                              pmap_text=pmap_text,
                              pmap_total=None if pmap is None else (pmap[1]["kbytes"], pmap[1]["rss_kb"],
                                                                    pmap[1]["dirty_kb"]),
                              anon_huge_kb=rollup.get("AnonHugePages")))
    return out


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"not JSON ({exc.msg} at line {exc.lineno})") from None


def _bpf(ld: _Loader) -> BpfData:
    names = [a["name"] for a in ld.b.artifacts() if a["name"].startswith(BPF_PREFIX)]
    streams = {n: ld.b.records(n) for n in names}
    status = {n: ld.b.status(n) for n in names}
    try:
        return load_bpf_data(streams, status, ld.b.manifest, {n: ld.b.data(n) for n in names if ld.b.data(n)})
    except ParseError as exc:
        ld.missing["bpf"] = ("error", f"could not parse: {exc}")
        return BpfData(available={n: ("error", str(exc)) for n in names})


def _collector_pids(manifest: dict) -> frozenset[int]:
    raw = manifest.get("collector_pids")
    if not isinstance(raw, list):
        return frozenset()
    return frozenset(p for p in raw if isinstance(p, int) and not isinstance(p, bool) and p > 0)


def _descendants(pids: frozenset[int], procs: list[Point[dict[int, ProcSample]]]) -> frozenset[int]:
    """``pids`` and every process of ``procs`` whose parent chain reaches one of them.

    The manifest lists what the collector started itself; bcc's helpers
    and a command's own children are theirs too (bundles of collectors
    that did not leave them out at the source).
    """
    children: dict[int, set[int]] = {}
    for p in procs:
        for pid, s in p.value.items():
            children.setdefault(s.ppid, set()).add(pid)
    # A walk down the tree: linear in the processes, whatever chain a bundle holds.
    out = set(pids)
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return frozenset(out)


def _without(pids: frozenset[int], ds: Dataset) -> None:
    """Drop the collector's own processes (and their children) from every per-process input."""
    if not pids:
        return
    pids = _descendants(pids, ds.procs)
    ds.procs = [Point(p.k, p.t, {pid: s for pid, s in p.value.items() if pid not in pids})
                for p in ds.procs]
    ds.top = [d for d in ds.top if d.pid not in pids]
    ds.bpf.majfaults_by_proc = {k: v for k, v in ds.bpf.majfaults_by_proc.items() if k[0] not in pids}
    for snap in (ds.start, ds.end):
        if snap.proc_memory is not None:
            snap.proc_memory = [p for p in snap.proc_memory if p.pid not in pids]
        if snap.open_deleted is not None:
            snap.open_deleted = [f for f in snap.open_deleted if f.pid not in pids]
    ds.bpf.heap_growth = [e for e in ds.bpf.heap_growth
                          if not (isinstance(e, dict) and e.get("pid") in pids)]


def _deepdive(ld: _Loader) -> list[DeepDiveTarget]:
    parts: dict[int, dict[str, bytes | None]] = {}
    for a in ld.b.artifacts():
        split = split_name(a.get("name", ""))
        if split is not None and a.get("status", "ok") == "ok":
            parts.setdefault(split[0], {})[split[1]] = ld.b.data(a["name"])
    out = []
    for pid, got in sorted(parts.items()):
        try:
            out.append(parse_target(pid, got))
        except ParseError as exc:
            ld.missing[f"deepdive/{pid}"] = ("error", f"could not parse: {exc}")
    return out


def load_dataset(bundle) -> Dataset:
    """Parse every artifact of an opened bundle (``bundle.reader.Bundle``)."""
    ld = _Loader(bundle)
    m = bundle.manifest
    host = ld.parse(HOST_INFO, _json)
    if not isinstance(host, dict):
        host = {}
    page_size = int(host.get("page_size") or 4096)
    clk_tck = int(host.get("clk_tck") or 100)
    start, end = _snapshot(ld, "start"), _snapshot(ld, "end")

    ds = Dataset(manifest=m, host=host, interval_s=float(m.get("interval_s") or 1.0), page_size=page_size,
                 start=start, end=end, clk_tck=clk_tck, ticks=len(bundle.ticks))
    ds.meminfo = ld.series(PROC_MEMINFO, parse_meminfo)
    ds.vmstat = ld.series(PROC_VMSTAT, parse_vmstat)
    ds.uptime = ld.series(PROC_UPTIME, parse_uptime)
    ds.psi = ld.series(PROC_PRESSURE_MEMORY, parse_psi)
    cache: dict = {}
    ds.procs = ld.series(PROCS, lambda text: parse_procs(text, page_size, cache))
    if bundle.entry(SERIES_CGROUPS_MEMORY) is not None:
        # Bundles of earlier versions have only the start/end snapshots,
        # which analysis.cgroup_series falls back to: not a missing source.
        ds.memcgs = ld.series(CGROUPS_MEMORY, lambda text: parse_cgroups(text)["groups"])
    node_series = _nodes(bundle, NODE_NUMASTAT, None)
    if node_series:
        by_k: dict[int, tuple[float, dict[int, dict[str, int]]]] = {}
        for node, name in node_series:
            for p in ld.series(series_source(name), parse_node_numastat):
                by_k.setdefault(p.k, (p.t, {}))[1][node] = p.value
        ds.numa = [Point(k, t, v) for k, (t, v) in sorted(by_k.items())]
    # Snapshots carry no read time of their own: the first and last ticks
    # stand for them (the collector takes them right before and after).
    times = [t["t"] for t in bundle.ticks]
    if times:
        start.t, end.t = times[0], times[-1]
    records = bundle.records(KMSG)
    if records:
        try:
            ds.kmsg = parse_kmsg(records, m.get("clock"))
        except ParseError as exc:
            ld.missing[KMSG] = ("error", f"could not parse: {exc}")
    delay_records = bundle.records(DELAY_TASKSTATS)
    if delay_records:
        ds.delays, dropped = parse_delay_records(delay_records)
        if dropped:
            ld.missing.setdefault(DELAY_TASKSTATS, ("corrupt", f"{dropped} malformed records dropped"))
    ds.top = _top(ld)
    ds.bpf = _bpf(ld)
    ds.deepdive = _deepdive(ld)
    ds.collector_pids = _collector_pids(m)
    _without(ds.collector_pids, ds)
    ds.missing = ld.missing
    return ds
