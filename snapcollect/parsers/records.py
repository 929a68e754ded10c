"""Typed records shared by parsers, analysis and findings.

Values keep the kernel's field names. /proc/meminfo and per-node meminfo
values are kB (HugePages_* are page counts); /proc/vmstat values are the
kernel's counters (pages or events).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Mapping, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Point(Generic[T]):
    """One parsed sample of a series, on the bundle's clock."""

    k: int          # tick index
    t: float        # wall clock, epoch seconds, when the source was read
    value: T


@dataclass(frozen=True)
class PsiLine:
    avg10: float
    avg60: float
    avg300: float
    total_us: int


@dataclass(frozen=True)
class Psi:
    """/proc/pressure/memory (4.20+). ``full`` is absent on some kernels."""

    some: PsiLine
    full: PsiLine | None


@dataclass(frozen=True)
class ProcSample:
    """One process in the cheap per-tick pass (/proc/PID/stat + status)."""

    pid: int
    comm: str
    state: str
    ppid: int
    minflt: int         # cumulative, this process only (not children)
    majflt: int
    vsize_kb: int
    rss_kb: int
    uid: int | None
    swap_kb: int | None
    starttime: int      # clock ticks since boot: tells a reused pid apart


@dataclass(frozen=True)
class SlabCache:
    name: str
    active_objs: int
    num_objs: int
    objsize: int        # bytes
    objperslab: int
    pagesperslab: int
    active_slabs: int
    num_slabs: int


@dataclass(frozen=True)
class SwapDevice:
    filename: str
    type: str
    size_kb: int
    used_kb: int
    priority: int


@dataclass(frozen=True)
class Mapping_:
    """One mapping of pmap -x, from /proc/PID/smaps."""

    address: int
    kbytes: int
    rss_kb: int
    pss_kb: int
    dirty_kb: int
    anonymous_kb: int
    swap_kb: int
    mode: str           # pmap's 5-char mode, e.g. "rw---"
    mapping: str        # file name, "[ anon ]", "[ stack ]"
    shared_kb: int = 0


@dataclass(frozen=True)
class ProcDetail:
    """Expensive detail for one top process, taken once at the end."""

    pid: int
    comm: str
    cmdline: str
    rss_kb: int | None
    pss_kb: int | None
    swap_kb: int | None
    mappings: tuple[Mapping_, ...]
    pmap_text: str | None        # verbatim `pmap -x` output, when collected
    pmap_total: tuple[int, int, int] | None = None   # its total line (Kbytes, RSS, Dirty), when it parses
    anon_huge_kb: int | None = None   # AnonHugePages of smaps_rollup: THP-backed anonymous memory


@dataclass(frozen=True)
class KmsgLine:
    seq: int
    ts_us: int          # kernel monotonic time of the message
    t: float | None     # wall clock estimate (bundle clock)
    prio: int
    text: str
    before_window: bool

    @property
    def level(self) -> str:
        """The priority's name (include/linux/kern_levels.h), or its number when out of range."""
        return KMSG_LEVELS[self.prio] if 0 <= self.prio < len(KMSG_LEVELS) else str(self.prio)


# Syslog levels as the kernel names them, by priority 0..7.
KMSG_LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


@dataclass(frozen=True)
class MemCgroup:
    """One memory cgroup (v1 or v2) at one moment, from ``cgroups/memory@P``.

    Byte values as the kernel prints them; a limit of ``None`` means
    unlimited ("max" in v2, PAGE_COUNTER_MAX in v1). ``events`` holds v2's
    memory.events (low, high, max, oom, oom_kill, oom_group_kill); for v1
    it holds ``failcnt`` and memory.oom_control's ``under_oom`` and
    ``oom_kill`` (the latter since 4.13).
    """

    path: str
    version: int
    usage_bytes: int | None
    limit_bytes: int | None
    high_bytes: int | None = None          # v2 memory.high
    peak_bytes: int | None = None          # v2 memory.peak (5.19+), v1 max_usage_in_bytes
    swap_usage_bytes: int | None = None    # v2 memory.swap.current; v1 memsw.usage - usage
    swap_limit_bytes: int | None = None    # v2 memory.swap.max; v1 memsw.limit - limit
    stat: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    pressure: Psi | None = None            # v2 memory.pressure (4.20+)
    # The group's own processes (cgroup.procs; not its descendants'), as
    # far as the collector read them (the file is read up to a size cap).
    tasks: tuple[int, ...] = ()


@dataclass(frozen=True)
class OomKill:
    """One OOM kill, from BPF oom:mark_victim and/or the kernel log."""

    t: float
    victim_pid: int
    victim_comm: str
    trigger_pid: int | None = None
    trigger_comm: str | None = None
    memcg: bool | None = None            # True: memcg OOM, False: global, None: unknown
    constraint: str | None = None        # CONSTRAINT_MEMCG, CONSTRAINT_NONE, ... (kernel log)
    oom_memcg: str | None = None
    task_memcg: str | None = None
    total_vm_kb: int | None = None
    anon_rss_kb: int | None = None
    file_rss_kb: int | None = None
    shmem_rss_kb: int | None = None
    pgtables_kb: int | None = None
    uid: int | None = None
    oom_score_adj: int | None = None
    sources: tuple[str, ...] = ()        # artifact names it came from


@dataclass(frozen=True)
class ReclaimStall:
    """A direct or memcg reclaim episode of one task (begin/end pair)."""

    t: float                 # begin, bundle clock
    latency_us: float
    pid: int
    comm: str
    kind: str                # "direct" or "memcg"
    order: int | None
    gfp_flags: str | None
    nr_reclaimed: int | None


@dataclass(frozen=True)
class ShrinkerStats:
    """One slab shrinker callback on one node (vmscan:mm_shrink_slab_start/end)."""

    callback: str            # kallsyms name, or the address when it could not be named
    address: str             # hex
    nid: int
    calls: int
    total_ns: int
    max_ns: int
    freed: int               # objects the shrinker said it freed
    scanned: int             # objects it was asked to scan and did


@dataclass(frozen=True)
class ShrinkerCall:
    """One shrink_slab call of 10 ms or more."""

    t: float                 # begin, bundle clock
    callback: str
    nid: int
    latency_ns: int
    freed: int
    scanned: int
    pid: int                 # the reclaiming task (kswapd, or a task in direct reclaim)
    comm: str


@dataclass(frozen=True)
class KswapdRun:
    """kswapd of one node from its first wake to its sleep."""

    t: float                 # the wake; the sleep when ``no_start``
    nid: int
    order: int | None
    awake_ns: int | None     # None: it was already running when tracing began
    wakes: int               # kswapd_wake events in the run (balance_pgdat passes)

    @property
    def no_start(self) -> bool:
        return self.awake_ns is None


@dataclass(frozen=True)
class MigrationCount:
    """migrate:mm_migrate_pages calls of one (reason, mode), or of one process and reason."""

    reason: str
    mode: str | None         # None in the per-process rows
    pid: int | None
    comm: str | None
    calls: int
    succeeded: int           # pages
    failed: int              # pages
    thp_succeeded: int
    thp_failed: int
    thp_split: int
    large_folio_split: int   # 6.18+; 0 before


@dataclass(frozen=True)
class SwapinResidency:
    """Swap-ins of one process whose swap-out was seen (bpf/swap_residency)."""

    pid: int
    comm: str
    swapins: int
    total_us: int            # time those pages had been in swap, summed
    under_1s: int            # of them read back within a second of going out


@dataclass(frozen=True)
class SwapResidency:
    """How long pages stayed in swap before a fault read them back (kprobes)."""

    histogram_us: dict[int, int]       # log2 slot of microseconds -> swap-ins (bcc's slots)
    processes: list[SwapinResidency]
    slots_allocated: int               # pages swapped out while the probes were on
    swapins_matched: int               # swap-ins of those pages
    tracked_entries: int               # slots followed at most at a time
    map_full: int


@dataclass(frozen=True)
class ThpFaultCount:
    """Anonymous THP faults of one process (bpf/thp_faults)."""

    pid: int
    comm: str
    attempts: int            # do_huge_pmd_anonymous_page returns
    fallbacks: int           # of them VM_FAULT_FALLBACK: went on with 4 KiB pages
    other: int               # of them another result (VM_FAULT_OOM, ...)


@dataclass(frozen=True)
class ThpFaults:
    """THP fault results per process and for the host (a kretprobe)."""

    processes: list[ThpFaultCount]
    attempts: int                      # host-wide, while the probe was on
    fallbacks: int
    other: int
    tracked_entries: int               # processes the map holds at most
    map_full: int                      # faults of processes the full map had no room for
    warnings: list[str] = field(default_factory=list)   # rows left out, and why


@dataclass(frozen=True)
class CompactionStall:
    t: float
    latency_us: float
    pid: int
    comm: str
    status: str | None


@dataclass(frozen=True)
class FaultMapping:
    """Faults of one process in one mapping (bpf/fault_files)."""

    mapping: str                  # path, or [heap]/[stack]/[anon]/[vdso]/[unknown mapping]...
    kind: str                     # file, anon, shmem, hugetlb, special, unknown
    executable: bool              # a file mapping with x permission (code)
    faults_estimated: int         # sampled faults x the sample period
    major_faults: int             # exact
    from_shared_regions: int      # of both, from 2 MiB regions other mappings shared


@dataclass(frozen=True)
class FaultProcess:
    pid: int
    comm: str
    faults_estimated: int
    major_faults: int
    swapins: int                  # major faults in anonymous or shmem mappings
    hugetlb_faults_estimated: int
    hugetlb_major_faults: int
    executable_major_faults: int  # major faults in executable file mappings (code)
    mappings: tuple[FaultMapping, ...]
    mappings_omitted: int = 0


@dataclass(frozen=True)
class FaultFiles:
    processes: tuple[FaultProcess, ...]
    sample_period: int = 1
    sampled: bool = True          # the fault sampler fed it
    major: bool = True            # the major-fault event fed it
    map_full: int = 0             # regions lost to a full map
    bad_rows: int = 0             # rows of the wrong type, skipped


@dataclass
class BpfData:
    """What the BPF collectors recorded; ``available`` says which worked."""

    available: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # artifact -> (status, reason)
    oom_kills: list[OomKill] = field(default_factory=list)
    reclaim: list[ReclaimStall] = field(default_factory=list)
    kswapd_wakes: list[tuple[float, int, int]] = field(default_factory=list)  # (t, nid, order)
    compaction: list[CompactionStall] = field(default_factory=list)
    fault_stacks: list[tuple[str, int]] = field(default_factory=list)        # folded lines, scaled counts
    fault_sample_period: int = 1
    fault_source: str = ""            # which kernel event sampled the faults, in words
    fault_sampling_error: str = ""    # what a scaled count is worth, in words
    fault_open_share: float = 1.0     # share of the window the sampler was open (its duty cycle)
    fault_open_counted: int | None = None   # faults the perf events counted while open (exact), all CPUs
    stack_errors: int = 0
    majfaults_by_proc: dict[tuple[int, str], int] = field(default_factory=dict)
    heap_growth: list[dict] = field(default_factory=list)   # per (pid, comm, syscall): calls, bytes, stacks
    fault_files: FaultFiles | None = None                    # faults per process and mapping
    shrinkers: list[ShrinkerStats] = field(default_factory=list)
    shrinker_hist: dict[str, dict[int, int]] = field(default_factory=dict)  # callback -> log2 slot (us) -> calls
    shrinker_note: str | None = None   # e.g. callbacks kallsyms did not name
    shrinker_slow: list[ShrinkerCall] = field(default_factory=list)
    kswapd_runs: list[KswapdRun] = field(default_factory=list)
    migration_by_reason: list[MigrationCount] = field(default_factory=list)
    migration_by_proc: list[MigrationCount] = field(default_factory=list)
    swap_residency: SwapResidency | None = None
    thp_faults: ThpFaults | None = None


Meminfo = Mapping[str, int]
Vmstat = Mapping[str, int]


@dataclass(frozen=True)
class MemfsMount:
    """One tmpfs, ramfs or hugetlbfs mount and its usage (``fs/memfs@P``)."""

    mount_id: int
    dev: str                      # "major:minor": one per superblock, shared by bind mounts
    mount_point: str
    fstype: str
    source: str
    block_size: int | None        # statvfs f_frsize; None when statvfs failed
    blocks: int | None
    blocks_free: int | None
    error: str | None = None      # errno name of a failed statvfs

    @property
    def used_kb(self) -> int | None:
        if self.block_size is None or self.blocks is None or self.blocks_free is None:
            return None
        return max(0, self.blocks - self.blocks_free) * self.block_size // 1024

    @property
    def size_kb(self) -> int | None:
        if self.block_size is None or self.blocks is None:
            return None
        return self.blocks * self.block_size // 1024


@dataclass(frozen=True)
class ShmSegment:
    """One SysV shared memory segment of /proc/sysvipc/shm (sizes in bytes)."""

    key: int
    shmid: int
    size_bytes: int
    cpid: int                     # creator
    lpid: int                     # last shmat/shmdt
    nattch: int
    uid: int
    rss_bytes: int | None         # absent on older kernels
    swap_bytes: int | None
    locked: bool                  # SHM_LOCKED (02000) in perms: unevictable


@dataclass(frozen=True)
class StatusMemory:
    """One process's memory fields of /proc/PID/status (kB) and its memory cgroup (``procs/memory@P``)."""

    pid: int
    comm: str
    rss_kb: int | None
    anon_kb: int | None
    file_kb: int | None
    shmem_kb: int | None          # RssShmem, 4.5+
    swap_kb: int | None
    locked_kb: int | None         # VmLck: mlock()ed
    pinned_kb: int | None         # VmPin: pinned by the kernel (RDMA, io_uring), 3.2+
    cgroup: str                   # memory cgroup path, "" when unknown


@dataclass(frozen=True)
class CgroupLimit:
    """A memory cgroup's usage and limit in bytes at one moment; limit None: unlimited."""

    path: str
    usage_bytes: int | None
    limit_bytes: int | None


@dataclass(frozen=True)
class OpenDeleted:
    """A deleted file still held open (``procs/open-deleted@end``)."""

    pid: int
    fd: int
    dev: str                      # "major:minor" of the file system holding it
    size_bytes: int
    blocks: int                   # 512-byte blocks allocated: what it really holds
    target: str                   # the fd link, "... (deleted)"
