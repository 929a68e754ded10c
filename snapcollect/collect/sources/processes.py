"""Processes: a cheap pass over all of them every tick, detail for the top N.

The per-tick pass reads /proc/PID/stat and /proc/PID/status of every
process and writes one line each: the raw stat line, a TAB, the real uid
(first field of ``Uid:`` in status), a TAB, ``VmSwap`` in kB (empty for
kernel threads and kernels before 2.6.34, which lack it). That is what
``ps -o pid,comm,state,vsz,rss``, ``pidstat -r`` (minflt/majflt are
fields 10 and 12 of stat) and a swap column need. Sample line::

    1234 (python3) S 1 1234 1234 0 -1 4194560 98765 0 12 0 ... 0\t1000\t512

The comm inside ``( )`` may hold spaces and parentheses (parse up to the
LAST ``)``); a newline or TAB in comm is replaced by a space so that one
process stays one line.

The pass runs in a worker thread (see jobs.py): reading status can wait on
a sick process. Each pass has a time budget; processes not reached in
time are left out of that tick and the tick says so. A process whose read
blocked past the tick's deadline is skipped by later passes.

The detail read once at the end for the top N by RSS: /proc/PID/smaps
(what ``pmap -x`` prints), smaps_rollup (4.14+: Pss, Swap totals),
cmdline (NUL-separated, as the kernel gives it) and status. smaps and
cmdline take the target's mmap lock.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from snapcollect.collect.jobs import Job
from snapcollect.collect.sources import Outcome, outcome_from_oserror, read_capped

KIB = 1024
MIB = 1024 * KIB

# name under procs/<pid>/ -> (file in /proc/PID, size cap)
DETAIL_FILES: dict[str, tuple[str, int]] = {
    "status": ("status", 64 * KIB),
    "cmdline": ("cmdline", 128 * KIB),
    "smaps_rollup": ("smaps_rollup", 64 * KIB),
    # A JVM or database can have tens of thousands of mappings (~1 KB each).
    "smaps": ("smaps", 32 * MIB),
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
    procs: list[ProcInfo]
    seen: int                   # pids listed
    written: int                # lines written
    cut_reason: str | None = None
    vanished: int = 0           # exited between listing and reading


@dataclass
class PassState:
    """Shared between passes: pids that blocked a read, never tried again."""

    blocked: dict[int, str] = field(default_factory=dict)


def _read_small(path: str, size: int = 8192) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        out = os.read(fd, size)
        if len(out) == size:        # rare: long status; read the rest
            rest = [out]
            while chunk := os.read(fd, 65536):
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


def _parse_stat(line: str) -> tuple[str, int]:
    """(comm, rss pages) from a raw stat line."""
    lp = line.find("(")
    rp = line.rfind(")")
    comm = line[lp + 1:rp]
    rest = line[rp + 2:].split()
    # Fields after comm start at field 3 (state); rss is field 24.
    rss = int(rest[21]) if len(rest) > 21 else 0
    return comm, rss


def list_pids() -> list[int]:
    pids = []
    with os.scandir("/proc") as it:
        for e in it:
            if e.name.isdigit():
                pids.append(int(e.name))
    pids.sort()
    return pids


def procs_pass(job: Job | None, state: PassState, budget_s: float, skip_pids: frozenset[int] = frozenset(),
               cap: int = PASS_CAP) -> PassResult:
    """One pass over all processes (see the module docstring for the format)."""
    t_end = time.monotonic() + budget_s
    pids = list_pids()
    lines: list[str] = []
    procs: list[ProcInfo] = []
    size = 0
    vanished = 0
    cut = None
    for n, pid in enumerate(pids):
        if pid in state.blocked or pid in skip_pids:
            continue
        if time.monotonic() > t_end:
            cut = f"time budget of {budget_s:.2f} s spent after {n} of {len(pids)} processes"
            break
        if job is not None:
            job.current = f"/proc/{pid}/stat"
        try:
            stat = _read_small(f"/proc/{pid}/stat").decode("utf-8", "surrogateescape")
            if job is not None:
                job.current = f"/proc/{pid}/status"
            status = _read_small(f"/proc/{pid}/status", 4096)
        except OSError:
            vanished += 1       # exited (ENOENT/ESRCH) or a zombie being reaped
            continue
        stat = stat.rstrip("\n").replace("\n", " ").replace("\t", " ")
        uid, swap = _status_fields(status)
        line = f"{stat}\t{'' if uid is None else uid}\t{swap}\n"
        size += len(line)
        if size > cap:
            cut = f"size cap of {cap} bytes reached after {n} of {len(pids)} processes"
            break
        lines.append(line)
        try:
            comm, rss = _parse_stat(stat)
        except (ValueError, IndexError):
            continue
        procs.append(ProcInfo(pid, comm, rss, uid))
    if job is not None:
        job.current = None
    return PassResult("".join(lines), procs, len(pids), len(lines), cut, vanished)


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


def pid_alive(pid: int) -> Outcome:
    try:
        os.stat(f"/proc/{pid}")
        return Outcome("ok")
    except OSError as exc:
        return outcome_from_oserror(exc, f"/proc/{pid}")
