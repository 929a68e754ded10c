"""Processes: a cheap pass over all of them every pass, detail for the top N.

Each pass reads /proc/PID/stat of every process and writes one line each:
the raw stat line, a TAB, the real uid (first field of ``Uid:`` in
/proc/PID/status), a TAB, ``VmSwap`` in kB. That is what
``ps -o pid,comm,state,vsz,rss``, ``pidstat -r`` (minflt/majflt are
fields 10 and 12 of stat) and a swap column need. Sample line::

    1234 (python3) S 1 1234 1234 0 -1 4194560 98765 0 12 0 ... 0\t1000\t512

/proc/PID/status costs the kernel more than stat to format (about 9 us
against 6 us a process on kernel 6.18), so it is not read for every
process on every pass, only for: a process seen for the first time (or a
pid reused: its starttime changed), the ``STATUS_TOP`` largest by RSS and
the ``STATUS_TOP`` largest by swap at the previous pass, and one process
in ``STATUS_EVERY`` in turn, so that each one's is read at least every
``STATUS_EVERY`` passes. Where status was not read, the uid is the one
read last for that process (a real uid changes only through setuid(2))
and VmSwap is empty; VmSwap is also empty for kernel threads and kernels
before 2.6.34, which lack it.

The comm inside ``( )`` may hold spaces and parentheses (parse up to the
LAST ``)``); a newline or TAB in comm is replaced by a space so that one
process stays one line.

The pass runs in a worker thread (see jobs.py): reading status can wait on
a sick process. Each pass has a time budget; processes not reached in
time are left out of that pass and the tick says so. A process whose read
blocked past the tick's deadline is skipped by later passes until that
read returns (on a slow host a read can be late without being stuck). The pass
measures its own CPU time (the thread's), which the sampler uses to space
passes out on a host with many processes.

The detail read once at the end for the top N by RSS: /proc/PID/smaps
(what ``pmap -x`` prints), smaps_rollup (4.14+: Pss, Swap totals),
cmdline (NUL-separated, as the kernel gives it) and status. smaps and
cmdline take the target's mmap lock.
"""

from __future__ import annotations

import heapq
import os
import time
from dataclasses import dataclass, field

from snapcollect.bundle.names import PID_CMDLINE, PID_SMAPS, PID_SMAPS_ROLLUP, PID_STATUS
from snapcollect.collect.jobs import Job
from snapcollect.collect.sources import Outcome, read_capped

KIB = 1024
MIB = 1024 * KIB

# name under procs/<pid>/ (names.pid_file) -> (file in /proc/PID, size cap)
DETAIL_FILES: dict[str, tuple[str, int]] = {
    PID_STATUS: ("status", 64 * KIB),
    PID_CMDLINE: ("cmdline", 128 * KIB),
    PID_SMAPS_ROLLUP: ("smaps_rollup", 64 * KIB),
    # A JVM or database can have tens of thousands of mappings (~1 KB each).
    PID_SMAPS: ("smaps", 32 * MIB),
}

PASS_CAP = 32 * MIB

# Why a /proc/PID read is refused: the kernel's ptrace access check
# (PTRACE_MODE_READ) also refuses root when the target holds capabilities
# the reader lacks, or a security module says no.
_DENIED_WHY = {
    False: "another user's process; needs root",
    True: "ptrace check: the process holds capabilities the collector lacks, or an LSM refused",
}


@dataclass
class ProcInfo:
    """What the top-N choice needs from the last pass."""

    pid: int
    comm: str
    rss_pages: int
    uid: int | None


@dataclass
class PassResult:
    text: str
    rows: list[tuple[int, int, int | None, bytes]]   # (pid, rss pages, uid, raw comm) per process
    seen: int                   # pids listed
    written: int                # lines written
    cut_reason: str | None = None
    vanished: int = 0           # exited between listing and reading
    status_read: int = 0        # lines whose uid and VmSwap come from this pass's status read
    cpu_s: float = 0.0          # CPU time the pass took (its thread's)

    @property
    def procs(self) -> list[ProcInfo]:
        """The processes of the pass; built on demand (most passes never need comm)."""
        return [ProcInfo(pid, comm.decode("utf-8", "surrogateescape"), rss, uid) for pid, rss, uid, comm in self.rows]


# status for every pass's largest processes (by RSS, by swap), and for
# each of the rest at least every STATUS_EVERY passes.
STATUS_TOP = 64
STATUS_EVERY = 10


class Known:
    """A process's last status read: whose it was (starttime) and what it said."""

    __slots__ = ("starttime", "uid", "swap_kb")     # one per process: 10,000 on a big host

    def __init__(self, starttime: bytes, uid: int | None, swap_kb: int):
        self.starttime = starttime
        self.uid = uid
        self.swap_kb = swap_kb


@dataclass
class PassState:
    """Shared between passes: pids that blocked a read, not tried again
    until that read returns; what the last status reads said; whose status
    to read every pass."""

    blocked: dict[int, str] = field(default_factory=dict)
    # pid -> the abandoned pass that was reading it. On a slow host a pass
    # can run past its deadline without any read being stuck; once that
    # pass has finished, the pid it was on is tried again.
    blocked_by: dict[int, Job] = field(default_factory=dict)
    known: dict[int, Known] = field(default_factory=dict)
    watch: frozenset[int] = frozenset()
    passes: int = 0


_O_READ = os.O_RDONLY | os.O_CLOEXEC


def _read_small(path: str, size: int = 8192) -> bytes:
    fd = os.open(path, _O_READ)
    try:
        out = os.read(fd, size)
        if len(out) == size:        # rare: long status; read the rest
            rest = [out]
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                rest.append(chunk)
            out = b"".join(rest)
        return out
    finally:
        os.close(fd)


def _status_fields(status: bytes) -> tuple[int | None, str]:
    """(real uid, VmSwap kB text or '') from /proc/PID/status."""
    uid: int | None = None
    swap = ""
    i = status.find(b"\nUid:")
    if i >= 0:
        line = status[i + 5:status.find(b"\n", i + 1)]
        parts = line.split()
        if parts:
            uid = int(parts[0])
    j = status.find(b"\nVmSwap:")
    if j >= 0:
        line = status[j + 8:status.find(b"\n", j + 1)]
        parts = line.split()
        if parts:
            swap = parts[0].decode()
    return uid, swap


def list_pids() -> list[int]:
    pids = []
    with os.scandir("/proc") as it:
        for e in it:
            if e.name.isdigit():
                pids.append(int(e.name))
    pids.sort()
    return pids


def _watch(rows: list[tuple[int, int, int | None, bytes]], known: dict[int, Known]) -> frozenset[int]:
    """The pids whose status the next pass reads whatever their turn:
    the largest by RSS and the largest by swap."""
    by_rss = heapq.nlargest(STATUS_TOP, rows, key=lambda r: r[1])
    by_swap = heapq.nlargest(STATUS_TOP, ((k.swap_kb, pid) for pid, k in known.items() if k.swap_kb > 0))
    return frozenset([r[0] for r in by_rss] + [pid for _, pid in by_swap])


def procs_pass(job: Job | None, state: PassState, budget_s: float, skip_pids: frozenset[int] = frozenset(),
               cap: int = PASS_CAP) -> PassResult:
    """One pass over all processes (see the module docstring for the format).

    ``skip_pids`` (the collector and the programs it started) and their
    children are left out: they are never processes of the incident, and
    a bundle cut short keeps no manifest to tell them apart later.
    """
    cpu0 = time.thread_time()
    skip_parents = {b"%d" % p for p in skip_pids}
    t_end = time.monotonic() + budget_s
    pids = list_pids()
    lines: list[bytes] = []
    rows: list[tuple[int, int, int | None, bytes]] = []
    known_before, watch, turn = state.known, state.watch, state.passes % STATUS_EVERY
    known: dict[int, Known] = {}
    blocked = state.blocked
    # Bound once: this loop runs for every process on every pass.
    os_open, os_read, os_close, monotonic = os.open, os.read, os.close, time.monotonic
    size = 0
    vanished = 0
    status_read = 0
    cut = None
    for n, pid in enumerate(pids):
        if pid in blocked or pid in skip_pids:
            continue
        if n % 32 == 0 and monotonic() > t_end:       # a clock read costs as much as a line
            cut = f"time budget of {budget_s:.2f} s spent after {n} of {len(pids)} processes"
            break
        path = f"/proc/{pid}/stat"
        if job is not None:
            job.current = path
        try:
            fd = os_open(path, _O_READ)
            try:
                # One read: a stat line is a few hundred bytes (comm is at
                # most 64 once escaped), the kernel formats it whole.
                stat = os_read(fd, 4096)
            finally:
                os_close(fd)
        except OSError:
            vanished += 1       # exited (ENOENT/ESRCH) or a zombie being reaped
            continue
        rp = stat.rfind(b")")
        rest = stat[rp + 2:].split(None, 22)
        if rp < 0 or len(rest) < 22:
            continue            # not a stat line: nothing to write or choose from
        if rest[1] in skip_parents:
            continue            # a child of the collector's (bcc runs helpers, a command its own)
        starttime = rest[19]
        k = known_before.get(pid)
        if k is None or k.starttime != starttime or pid in watch or pid % STATUS_EVERY == turn:
            if job is not None:
                job.current = f"/proc/{pid}/status"
            try:
                status = _read_small(f"/proc/{pid}/status", 4096)
            except OSError:
                vanished += 1
                continue
            uid, swap = _status_fields(status)
            k = Known(starttime, uid, int(swap) if swap.isdigit() else 0)
            status_read += 1
            tail = b"\t%s\t%s\n" % (b"" if uid is None else b"%d" % uid, swap.encode())
        else:
            uid = k.uid
            tail = b"\t\t\n" if uid is None else b"\t%d\t\n" % uid
        known[pid] = k
        stat = stat.rstrip(b"\n").replace(b"\n", b" ").replace(b"\t", b" ")
        size += len(stat) + len(tail)
        if size > cap:
            cut = f"size cap of {cap} bytes reached after {n} of {len(pids)} processes"
            break
        lines.append(stat)
        lines.append(tail)
        try:
            # comm only, not the whole line: the last pass is kept until the end.
            rows.append((pid, int(rest[21]), uid, stat[stat.find(b"(") + 1:rp]))
        except ValueError:
            pass
    if job is not None:
        job.current = None
    if cut is None:
        state.known = known     # bounded by the processes that exist
    else:
        state.known = {**known_before, **known}
    state.watch = _watch(rows, state.known)
    state.passes += 1
    written = len(lines) // 2
    data = b"".join(lines)
    del lines               # 10,000 processes: 3 MB each for the lines, their join and the text
    text = data.decode("utf-8", "surrogateescape")
    del data
    return PassResult(text, rows, len(pids), written, cut, vanished, status_read,
                      round(time.thread_time() - cpu0, 4))


def pid_from_current(current: str | None) -> int | None:
    """The pid in a job's ``current`` (``/proc/123/status`` -> 123)."""
    if not current or not current.startswith("/proc/"):
        return None
    part = current.split("/")[2]
    return int(part) if part.isdigit() else None


def top_by_rss(procs: list[ProcInfo], n: int, exclude: set[int]) -> list[ProcInfo]:
    """The ``n`` processes with the largest RSS (kernel threads have none)."""
    cands = [p for p in procs if p.rss_pages > 0 and p.pid not in exclude]
    cands.sort(key=lambda p: (-p.rss_pages, p.pid))
    return cands[:n]


def read_detail(job: Job | None, pid: int, got: dict[str, Outcome]) -> dict[str, Outcome]:
    """Read all DETAIL_FILES of one process into ``got``, as they come.

    The caller owns ``got``: when it gives up on a blocked read it still
    has the files that came back before it.
    """
    for name, (fname, cap) in DETAIL_FILES.items():
        path = f"/proc/{pid}/{fname}"
        if job is not None:
            job.current = path
        out = read_capped(path, cap)
        if out.status == "denied":
            out.reason = f"{path}: {out.reason} ({_DENIED_WHY[os.geteuid() == 0]})"
        elif out.status == "missing" and (out.reason or "").startswith("not present"):
            out.reason = f"{path}: process exited"
        elif out.reason and not out.reason.startswith("/"):
            out.reason = f"{path}: {out.reason}"
        got[name] = out
    if job is not None:
        job.current = None
    return got
