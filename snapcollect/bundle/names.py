"""Artifact names and the archive paths behind them.

An artifact name is what the rest of the code uses; every name the format
knows is a constant below (or built by a helper: ``start_of``, ``end_of``,
``series``, ``pid_file``, ``node_file``), and no other module spells one
out (tests/unit/test_artifact_names.py). Three kinds exist:

- file:   one blob, e.g. ``proc/meminfo@start``, ``cmd/free@end``,
          ``procs/1234/smaps``. Stored at ``data/<name>``.
- series: one text per sampling tick, e.g. ``series/proc/vmstat``. All
          series of one tick share one member ``ticks/<k>.json`` so a tick
          is either wholly in the archive or not at all.
- stream: records appended in chunks while collecting (kernel log, BPF
          events), e.g. ``bpf/oom_kill``. Stored as JSON lines in
          ``streams/<name>/<seq>.jsonl``; the reader concatenates them.

Phase suffixes: a snapshot taken at the start and at the end of the
window is two file artifacts, ``<source>@start`` and ``<source>@end``.
"""

from __future__ import annotations

FORMAT = "snapcollect-bundle"
FORMAT_VERSION = 1
# Every version this reader understands; older ones stay here forever.
READABLE_VERSIONS = (1,)

MANIFEST = "manifest.json"
SUFFIX = ".tar.zst"
PARTIAL_SUFFIX = ".partial"

KINDS = ("file", "series", "stream")
STATUSES = ("ok", "missing", "denied", "timeout", "truncated", "error", "unavailable",
            "corrupt")  # corrupt: set by the reader when data fails its declared checksum

START = "start"
END = "end"


def at(source: str, phase: str) -> str:
    """Name of a snapshot artifact: ``at(PROC_MEMINFO, START)``."""
    return f"{source}@{phase}"


def start_of(source: str) -> str:
    """The start snapshot of ``source``: ``proc/meminfo@start``."""
    return at(source, START)


def end_of(source: str) -> str:
    """The end snapshot of ``source``: ``proc/meminfo@end``."""
    return at(source, END)


SERIES_PREFIX = "series/"


def series(source: str) -> str:
    """Name of a per-tick series artifact: ``series(PROC_VMSTAT)``."""
    return f"{SERIES_PREFIX}{source}"


def is_series(name: str) -> bool:
    return name.startswith(SERIES_PREFIX)


def series_source(name: str) -> str:
    """The source a series artifact samples: ``series/proc/vmstat`` -> ``proc/vmstat``."""
    return name[len(SERIES_PREFIX):] if is_series(name) else name


# ---------------------------------------------------------------------------
# Every artifact the format knows. The collector writes these names, the
# dataset reads them, findings and report sections cite them, and
# ``show``/``export`` list them; nothing else spells one out.
#
# Kernel files, snapshot at the start and the end of the window
# (``start_of(X)``, ``end_of(X)``); the first four are also series.
PROC_MEMINFO = "proc/meminfo"                # /proc/meminfo: system memory figures
PROC_VMSTAT = "proc/vmstat"                  # /proc/vmstat: event and page counters
PROC_PRESSURE_MEMORY = "proc/pressure/memory"  # /proc/pressure/memory: PSI some/full
PROC_UPTIME = "proc/uptime"                  # /proc/uptime: the clock PSI and sar divide by
PROC_SWAPS = "proc/swaps"                    # /proc/swaps: swap devices and their use
PROC_LOADAVG = "proc/loadavg"                # /proc/loadavg: run queue
PROC_BUDDYINFO = "proc/buddyinfo"            # /proc/buddyinfo: free blocks per order and zone
PROC_SLABINFO = "proc/slabinfo"              # /proc/slabinfo: slab caches (root only)
PROC_ZONEINFO = "proc/zoneinfo"              # /proc/zoneinfo: per-zone free pages and watermarks
PROC_PAGETYPEINFO = "proc/pagetypeinfo"      # /proc/pagetypeinfo: free blocks per migrate type
PROC_SYSVIPC_SHM = "proc/sysvipc/shm"        # /proc/sysvipc/shm: SysV shared memory segments
PROC_SYS_VM = "proc/sys/vm"                  # /proc/sys/vm/*: VM sysctls as ``name = value`` lines
SYS_THP = "sys/kernel/mm/transparent_hugepage"  # THP settings and counters, as ``name = value``

# The heads of the names above: tables the kernel formats (no user text
# but comm and file paths).
KERNEL_PREFIXES = ("proc/", "sys/")

# Per-NUMA-node files: ``node_file(0, NODE_MEMINFO)`` is sys/node/node0/meminfo.
NODE_PREFIX = "sys/node/"
NODE_DIR_PREFIX = "sys/node/node"
NODE_MEMINFO = "meminfo"                     # /sys/devices/system/node/nodeN/meminfo
NODE_NUMASTAT = "numastat"                   # /sys/devices/system/node/nodeN/numastat: numa_hit, ...
NODE_FILES = (NODE_MEMINFO, NODE_NUMASTAT)
# Every node's file of one kind, as a rule's ``needs`` names it (no artifact
# has this name; the engine matches it against the nodeN ones).
NODES_MEMINFO = f"{NODE_PREFIX}{NODE_MEMINFO}"
NODES_NUMASTAT = f"{NODE_PREFIX}{NODE_NUMASTAT}"
# How a caption names all nodes' files at once.
NODES_ANY = f"{NODE_DIR_PREFIX}*"


def node_file(node: int | str, fname: str) -> str:
    """Source name of one node's file: ``sys/node/node0/numastat``."""
    return f"{NODE_DIR_PREFIX}{node}/{fname}"


# Classic commands, verbatim output, snapshot at the start and the end.
CMD_FREE = "cmd/free"                        # free -w
CMD_VMSTAT_S = "cmd/vmstat-s"                # vmstat -s
CMD_SWAPON = "cmd/swapon"                    # swapon --show
CMD_NUMASTAT = "cmd/numastat"                # numastat
CMD_NUMASTAT_M = "cmd/numastat-m"            # numastat -m

# Memory cgroups, file systems and processes.
CGROUPS_MEMORY = "cgroups/memory"            # JSON: every memory cgroup's counters and limits; also a series
FS_MEMFS = "fs/memfs"                        # JSON: tmpfs/ramfs/hugetlbfs mounts and their use
PROCS_PREFIX = "procs/"
PROCS = "procs"                              # series only: one /proc/PID/stat pass per tick
PROCS_MEMORY = "procs/memory"                # JSON: every process's status memory lines and cgroup
PROCS_OPEN_DELETED = "procs/open-deleted"    # JSON: open deleted files on memory file systems (end only)
PROCS_TOP = "procs/top"                      # JSON: the processes chosen for detail, once at the end

# Per-process detail of the processes in PROCS_TOP, once at the end:
# ``procs/<pid>/<file>``.
PID_STATUS = "status"                        # /proc/PID/status
PID_CMDLINE = "cmdline"                      # /proc/PID/cmdline
PID_SMAPS_ROLLUP = "smaps_rollup"            # /proc/PID/smaps_rollup
PID_SMAPS = "smaps"                          # /proc/PID/smaps
PID_PMAP_X = "pmap-x"                        # pmap -x PID


def pid_file(pid: int | str, fname: str) -> str:
    """Name of one process's detail artifact: ``procs/1234/smaps``."""
    return f"{PROCS_PREFIX}{pid}/{fname}"


# The host, once at the start.
HOST_INFO = "host/info"                      # JSON: kernel, CPUs, page size, clocks, options

# Streams.
KMSG = "kmsg"                                # kernel log records (/dev/kmsg, else dmesg)
DELAY_TASKSTATS = "delay/taskstats"          # per-process delay accounting reads (taskstats netlink)
BPF_PREFIX = "bpf/"
BPF_OOM_KILL = "bpf/oom_kill"                # oom:mark_victim events
BPF_RECLAIM = "bpf/reclaim"                  # direct reclaim stalls (begin/end pairs)
BPF_KSWAPD_WAKE = "bpf/kswapd_wake"          # kswapd wakeups
BPF_COMPACTION = "bpf/compaction"            # compaction runs (begin/end pairs)
BPF_KSWAPD_RUNS = "bpf/kswapd_runs"          # kswapd runs per node (wake -> sleep)
BPF_SHRINKER_SLOW = "bpf/shrinker_slow"      # shrink_slab calls of 10 ms or more, with their time
BPF_STREAMS = (BPF_OOM_KILL, BPF_RECLAIM, BPF_KSWAPD_WAKE, BPF_COMPACTION, BPF_KSWAPD_RUNS, BPF_SHRINKER_SLOW)

# BPF files, written when the BPF program stops.
BPF_FAULT_STACKS_FOLDED = "bpf/fault_stacks.folded"  # sampled page-fault stacks, folded (flamegraph.pl)
BPF_FAULT_STACKS_JSON = "bpf/fault_stacks.json"      # their sample period and what was lost
BPF_MAJFAULT_BY_PROC = "bpf/majfault_by_proc"        # JSON: major faults per process
BPF_HEAP_GROWTH = "bpf/heap_growth"                  # JSON: brk/mmap growth per process
BPF_FAULT_FILES = "bpf/fault_files"                  # JSON: faults per process and mapping (file, anon, shmem)
BPF_TRACEPOINT_FORMATS = "bpf/tracepoint_formats"    # the tracepoints' format files, to decode fields
BPF_SHRINKERS = "bpf/shrinkers"                      # JSON: shrink_slab latency per shrinker and node
BPF_MIGRATION = "bpf/migration"                      # JSON: page migration per reason/mode and process
BPF_SWAP_RESIDENCY = "bpf/swap_residency"            # JSON: time from swap-out to swap-in (kprobes)
BPF_THP_FAULTS = "bpf/thp_faults"                    # JSON: THP fault fallbacks per process (kretprobe)
BPF_FILES = (BPF_FAULT_STACKS_FOLDED, BPF_FAULT_STACKS_JSON, BPF_MAJFAULT_BY_PROC, BPF_HEAP_GROWTH,
             BPF_FAULT_FILES, BPF_SHRINKERS, BPF_MIGRATION, BPF_SWAP_RESIDENCY, BPF_THP_FAULTS)

# Series: one sample per tick (see ``series``).
SERIES_PROC_MEMINFO = series(PROC_MEMINFO)
SERIES_PROC_VMSTAT = series(PROC_VMSTAT)
SERIES_PROC_PRESSURE_MEMORY = series(PROC_PRESSURE_MEMORY)
SERIES_PROC_UPTIME = series(PROC_UPTIME)
SERIES_CGROUPS_MEMORY = series(CGROUPS_MEMORY)
SERIES_PROCS = series(PROCS)
SERIES_NODES_NUMASTAT = series(NODES_NUMASTAT)    # as ``needs`` names every node's series


# The --pid/--comm deep dive: one family of file artifacts per process
# followed (collect/bpf/deepdive_child.py writes them).
DEEPDIVE = "deepdive"
DEEPDIVE_TARGET = "target.json"               # what was probed and why, calls, sizes, exit
DEEPDIVE_ALLOC_BYTES = "alloc_bytes.folded"   # bytes asked of malloc/calloc/realloc per stack
DEEPDIVE_ALLOC_COUNT = "alloc_count.folded"   # calls of them per stack
DEEPDIVE_OUTSTANDING = "outstanding.json"     # blocks not freed at the end, older than a threshold
DEEPDIVE_FAULTS = "fault_stacks.folded"       # every user page fault's stack
DEEPDIVE_HEAP_GROWTH = "heap_growth.json"     # brk/mmap growth per stack
DEEPDIVE_PARTS = (DEEPDIVE_TARGET, DEEPDIVE_ALLOC_BYTES, DEEPDIVE_ALLOC_COUNT, DEEPDIVE_OUTSTANDING,
                  DEEPDIVE_FAULTS, DEEPDIVE_HEAP_GROWTH)


def deepdive(pid: int, part: str) -> str:
    """Name of a deep-dive artifact: ``deepdive(1234, "target.json")`` -> ``deepdive/1234/target.json``."""
    return f"{DEEPDIVE}/{int(pid)}/{part}"


def deepdive_pid(name: str) -> tuple[int, str] | None:
    """``deepdive/1234/target.json`` -> (1234, "target.json"); None for any other name."""
    head, _, rest = name.partition("/")
    pid, _, part = rest.partition("/")
    if head != DEEPDIVE or part not in DEEPDIVE_PARTS:
        return None
    n = _index(pid)
    return (n, part) if n else None


def file_path(name: str) -> str:
    return f"data/{name}"


def tick_path(k: int) -> str:
    return f"ticks/{k:06d}.json"


def stream_path(name: str, seq: int) -> str:
    return f"streams/{name}/{seq:06d}.jsonl"


def _index(text: str) -> int | None:
    # ASCII digits only: int() also takes " 7", "+7", "1_000" and "٣".
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else None


def classify(member: str) -> tuple[str, str | None, int | None]:
    """Map an archive member path back to (kind, name, index).

    kind is one of "manifest", "file", "tick", "stream" or "unknown";
    "unknown" also for a path under ``data/``, ``ticks/`` or ``streams/``
    that does not fit the format (a tick number that is not a number, an
    empty name).
    """
    if member == MANIFEST:
        return "manifest", None, None
    if member.startswith("data/") and len(member) > len("data/"):
        return "file", member[len("data/"):], None
    if member.startswith("ticks/") and member.endswith(".json"):
        k = _index(member[len("ticks/"):-len(".json")])
        if k is not None:
            return "tick", None, k
    if member.startswith("streams/") and member.endswith(".jsonl"):
        head, _, seq = member[len("streams/"):-len(".jsonl")].rpartition("/")
        n = _index(seq)
        if head and n is not None:
            return "stream", head, n
    return "unknown", None, None
