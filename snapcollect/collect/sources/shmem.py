"""Where shared memory lives: memory file systems, per-process memory fields, open deleted files.

Shmem in /proc/meminfo (tmpfs pages, SysV and POSIX shared memory,
shared anonymous mappings, since 2.6.32) cannot be dropped like page
cache, yet free(1) counts it in "buff/cache". Meminfo says how much, not
where; these sources say where, each read once at the start and once at
the end of the window (the fd scan at the end only):

- ``fs/memfs``: every tmpfs, ramfs and hugetlbfs mount of
  /proc/self/mountinfo, one line each: ``statvfs`` figures, a TAB, the
  mountinfo line verbatim. statvfs on tmpfs and hugetlbfs counts the
  pages the files hold (``f_blocks - f_bfree`` blocks of ``f_frsize``);
  ramfs keeps no count and says 0::

      4096 262144 5 1048576 1048570\t612 30 0:61 / /tmp/scratch rw,relatime - tmpfs tmpfs rw,size=1048576k

  A mount whose statvfs fails has ``! <errno name>`` instead of numbers.
- ``procs/memory``: for every process, the memory fields of
  /proc/PID/status (VmRSS, RssAnon, RssFile, RssShmem since 4.5;
  VmSwap 2.6.34; VmLck; VmPin 3.2) and its memory cgroup (the
  ``memory`` line of /proc/PID/cgroup on v1, ``0::`` on v2), as TAB
  separated values with a header line; then, for the cgroups of the
  processes holding ``CGROUP_MIN_KB`` or more, that cgroup's usage and
  limit (``cgroup`` lines), which is what "time left until the limit"
  needs even for a group the cgroups source did not choose::

      pid\tName\tVmRSS\tRssAnon\tRssFile\tRssShmem\tVmSwap\tVmLck\tVmPin\tcgroup
      4711\tjava\t524288\t500000\t24288\t0\t0\t0\t0\t/system.slice/app.service
      cgroup\t/system.slice/app.service\t601000000\t1073741824

  Bounded by a time budget; a pass cut short says so in the artifact's
  status (``truncated``) and reason.
- ``procs/open-deleted``: files that are deleted but still open, found
  by reading the /proc/PID/fd links of at most ``FD_PROCESSES``
  processes (the largest by RssShmem, then by RSS) and keeping the links
  that end in ``(deleted)``, each stat(2)ed through the link for its size
  and device (which tells the mount). A deleted tmpfs file keeps its
  pages until its last holder closes it: this is the "df says full, ls
  shows nothing" case. Bounded in processes, links and time; the header
  says what was scanned::

      # scanned 64 processes, 2210 fds, 0.031 s
      pid\tfd\tdev\tsize\tblocks\ttarget
      4711\t7\t0:61\t1073741824\t2097152\t/tmp/scratch/buf (deleted)

SysV segments are /proc/sysvipc/shm, read raw with the other /proc files.
"""

from __future__ import annotations

import errno
import os
import re
import time

from snapcollect.collect.sources import Outcome, read_capped

KIB = 1024
MIB = 1024 * KIB

MEMFS_TYPES = frozenset({"tmpfs", "ramfs", "hugetlbfs"})
MAX_MOUNTS = 4000
MEMFS_CAP = 2 * MIB

STATUS_FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmSwap", "VmLck", "VmPin")
MEMORY_CAP = 8 * MIB
MEMORY_BUDGET_S = 0.6
CGROUP_MIN_KB = 32 * 1024          # a cgroup's limit is read for processes this large or larger
MAX_CGROUPS = 256

FD_PROCESSES = 64
FD_PER_PROCESS = 20000
FD_BUDGET_S = 0.3
DELETED_CAP = 1 * MIB
DELETED = " (deleted)"
_OCTAL = re.compile(r"\\([0-7]{3})")


def _errname(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))


def memfs() -> Outcome:
    """statvfs of every tmpfs, ramfs and hugetlbfs mount (see the module docstring)."""
    got = read_capped("/proc/self/mountinfo", 4 * MIB)
    if not got.has_data:
        return got
    lines = []
    size = 0
    for line in got.text.splitlines():
        pre, sep, post = line.partition(" - ")
        fields, fs = pre.split(), post.split()
        if not sep or len(fields) < 5 or not fs or fs[0] not in MEMFS_TYPES:
            continue
        if len(lines) >= MAX_MOUNTS:
            return Outcome("truncated", "".join(lines).encode("utf-8", "surrogateescape"),
                           f"cut after {MAX_MOUNTS} memory file system mounts")
        mnt = _unescape(fields[4])
        try:
            st = os.statvfs(mnt)
            figures = f"{st.f_frsize} {st.f_blocks} {st.f_bfree} {st.f_files} {st.f_ffree}"
        except OSError as exc:
            figures = f"! {_errname(exc)}"
        out = f"{figures}\t{line}\n"
        size += len(out)
        if size > MEMFS_CAP:
            return Outcome("truncated", "".join(lines).encode("utf-8", "surrogateescape"),
                           f"cut at the size cap of {MEMFS_CAP} bytes")
        lines.append(out)
    return Outcome("ok", "".join(lines).encode("utf-8", "surrogateescape"))


def _unescape(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \\ooo.
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), path)


def _status_values(status: bytes) -> tuple[str, list[str]]:
    name = ""
    values = dict.fromkeys(STATUS_FIELDS, "")
    for line in status.split(b"\n"):
        key, sep, rest = line.partition(b":")
        if not sep:
            continue
        k = key.decode("ascii", "replace")
        if k == "Name":
            name = rest.strip().decode("utf-8", "surrogateescape").replace("\t", " ")
        elif k in values:
            parts = rest.split()
            values[k] = parts[0].decode("ascii", "replace") if parts else ""
    return name, [values[k] for k in STATUS_FIELDS]


def _memory_cgroup(text: bytes, version: int | None) -> str:
    v2 = ""
    for line in text.split(b"\n"):
        parts = line.split(b":", 2)
        if len(parts) != 3:
            continue
        if version != 2 and b"memory" in parts[1].split(b","):
            return parts[2].decode("utf-8", "surrogateescape").replace("\t", " ")
        if parts[0] == b"0" and parts[1] == b"":
            v2 = parts[2].decode("utf-8", "surrogateescape").replace("\t", " ")
    return v2 if version != 1 else ""


def _read_int(path: str) -> int | None:
    got = read_capped(path, 64)
    if not got.ok:
        return None
    text = got.text.strip()
    if text == "max":
        return -1
    return int(text) if text.isdigit() else None


def _cgroup_figures(hierarchy: tuple[int, str] | None, path: str) -> tuple[int | None, int | None]:
    """(usage, limit) bytes of one memory cgroup; limit -1 means none ("max")."""
    if hierarchy is None:
        return None, None
    version, root = hierarchy
    d = os.path.join(root, path.lstrip("/"))
    if version == 2:
        return _read_int(os.path.join(d, "memory.current")), _read_int(os.path.join(d, "memory.max"))
    return _read_int(os.path.join(d, "memory.usage_in_bytes")), _read_int(os.path.join(d, "memory.limit_in_bytes"))


def process_memory(job, hierarchy: tuple[int, str] | None, budget_s: float = MEMORY_BUDGET_S,
                   skip_pids: frozenset[int] = frozenset()) -> Outcome:
    """The memory fields of every process's status and its memory cgroup (module docstring)."""
    t_end = time.monotonic() + budget_s
    version = hierarchy[0] if hierarchy else None
    lines = ["pid\tName\t" + "\t".join(STATUS_FIELDS) + "\tcgroup\n"]
    size = len(lines[0])
    groups: dict[str, int] = {}
    cut = None
    pids = sorted(int(e) for e in os.listdir("/proc") if e.isdigit())
    for n, pid in enumerate(pids):
        if pid in skip_pids:
            continue
        if n % 32 == 0 and time.monotonic() > t_end:
            cut = f"time budget of {budget_s:.2f} s spent after {n} of {len(pids)} processes"
            break
        if job is not None:
            job.current = f"/proc/{pid}/status"
        try:
            with open(f"/proc/{pid}/status", "rb", buffering=0) as fh:
                status = fh.read(16384)
            with open(f"/proc/{pid}/cgroup", "rb", buffering=0) as fh:
                cg_text = fh.read(16384)
        except OSError:
            continue            # exited, or a kernel thread's cgroup refused
        name, values = _status_values(status)
        if not values[0]:
            continue            # kernel threads have no VmRSS: nothing of theirs to place
        cg = _memory_cgroup(cg_text, version)
        line = f"{pid}\t{name}\t" + "\t".join(values) + f"\t{cg}\n"
        size += len(line)
        if size > MEMORY_CAP:
            cut = f"size cap of {MEMORY_CAP} bytes reached after {n} of {len(pids)} processes"
            break
        lines.append(line)
        rss = int(values[0]) if values[0].isdigit() else 0
        swap = int(values[4]) if values[4].isdigit() else 0
        if cg and rss + swap >= CGROUP_MIN_KB and cg != "/":
            groups[cg] = max(groups.get(cg, 0), rss + swap)
    for cg in sorted(groups, key=lambda g: -groups[g])[:MAX_CGROUPS]:
        if job is not None:
            job.current = f"memory cgroup {cg}"
        usage, limit = _cgroup_figures(hierarchy, cg)
        lines.append(f"cgroup\t{cg}\t{'' if usage is None else usage}\t{'' if limit is None else limit}\n")
    if job is not None:
        job.current = None
    data = "".join(lines).encode("utf-8", "surrogateescape")
    return Outcome("truncated", data, cut) if cut else Outcome("ok", data)


def _largest(memory_text: str, n: int) -> list[int]:
    """Pids of the ``n`` largest processes of a ``procs/memory`` text: by RssShmem, then RSS."""
    rows = []
    for line in memory_text.splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) < 2 + len(STATUS_FIELDS) or not parts[0].isdigit():
            continue
        def kb(i):
            v = parts[2 + i]
            return int(v) if v.isdigit() else 0
        rows.append((kb(3), kb(0), int(parts[0])))
    rows.sort(key=lambda r: (-r[0], -r[1], r[2]))
    return [pid for _s, _r, pid in rows[:n]]


def open_deleted(job, memory_text: str | None, budget_s: float = FD_BUDGET_S,
                 skip_pids: frozenset[int] = frozenset()) -> Outcome:
    """Deleted files still open in the largest processes (module docstring)."""
    t0 = time.monotonic()
    t_end = t0 + budget_s
    pids = [p for p in _largest(memory_text or "", FD_PROCESSES + len(skip_pids)) if p not in skip_pids]
    pids = pids[:FD_PROCESSES]
    rows = []
    scanned = fds = 0
    cut = None
    size = 0
    for pid in pids:
        if time.monotonic() > t_end:
            cut = f"time budget of {budget_s:.2f} s spent after {scanned} of {len(pids)} processes"
            break
        d = f"/proc/{pid}/fd"
        if job is not None:
            job.current = d
        try:
            entries = os.listdir(d)
        except OSError:
            continue
        scanned += 1
        for i, fd in enumerate(entries):
            if i >= FD_PER_PROCESS:
                cut = f"pid {pid}: only the first {FD_PER_PROCESS} of {len(entries)} fds read"
                break
            fds += 1
            try:
                target = os.readlink(f"{d}/{fd}")
            except OSError:
                continue
            if not target.endswith(DELETED) or not target.startswith("/"):
                continue
            try:
                st = os.stat(f"{d}/{fd}")
            except OSError:
                continue
            dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
            row = f"{pid}\t{fd}\t{dev}\t{st.st_size}\t{st.st_blocks}\t{target.replace(chr(9), ' ')}\n"
            size += len(row)
            if size > DELETED_CAP:
                cut = f"size cap of {DELETED_CAP} bytes reached"
                break
            rows.append(row)
        if size > DELETED_CAP:
            break
    if job is not None:
        job.current = None
    head = f"# scanned {scanned} processes, {fds} fds, {time.monotonic() - t0:.3f} s\npid\tfd\tdev\tsize\tblocks\ttarget\n"
    data = (head + "".join(rows)).encode("utf-8", "surrogateescape")
    return Outcome("truncated", data, cut) if cut else Outcome("ok", data)
