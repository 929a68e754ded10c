"""Shared memory and tmpfs: where Shmem lives (``analysis/shmem.py``).

Memory file system mounts with their usage at the start and end and who
holds them, SysV segments, processes by RssShmem, deleted files still
open. Bundles of collectors that did not gather the inventory get no
section.
"""

from __future__ import annotations

from snapcollect.analysis.model import Model
from snapcollect.bundle.names import (FS_MEMFS, PROCS_MEMORY, PROCS_OPEN_DELETED, PROC_SYSVIPC_SHM, end_of,
                                      start_of)
from snapcollect.report.formatting import iec_kb
from snapcollect.report.model import Column, Paragraph, Section, Table

MOUNT_COLUMNS = [Column("mount", "mount point", "", "left"), Column("fstype", "type", "", "left"),
                 Column("size_kb", "size", "iec_kb", unit="kB"), Column("start_kb", "used at start", "iec_kb", unit="kB"),
                 Column("end_kb", "used at end", "iec_kb", unit="kB"), Column("growth_kb", "change", "+iec_kb", unit="kB"),
                 Column("deleted_kb", "deleted, open", "iec_kb", unit="kB"),
                 Column("holders", "held by", "", "left")]
SHM_COLUMNS = [Column("shmid", "shmid", "d"), Column("key", "key", "", "left"),
               Column("size_kb", "size", "iec_kb", unit="kB"), Column("rss_kb", "rss", "iec_kb", unit="kB"),
               Column("swap_kb", "swap", "iec_kb", unit="kB"), Column("nattch", "nattch", "d"),
               Column("cpid", "cpid", "d"), Column("lpid", "lpid", "d"), Column("locked", "locked", "", "left")]
PROC_COLUMNS = [Column("pid", "PID", "d"), Column("comm", "COMMAND", "", "left"),
                Column("shmem_kb", "RssShmem", "iec_kb", unit="kB"), Column("rss_kb", "VmRSS", "iec_kb", unit="kB"),
                Column("locked_kb", "VmLck", "iec_kb", unit="kB"), Column("swap_kb", "VmSwap", "iec_kb", unit="kB")]


def shmem_sections(m: Model) -> tuple[list[Section], dict[str, Table]]:
    f = m.shmem
    if not f.collected:
        return [], {}
    s = Section("shmem", "Shared memory and tmpfs")
    data: dict[str, Table] = {}
    if f.trend is not None:
        s.blocks.append(Paragraph(f"Shmem (/proc/meminfo) went from {iec_kb(f.trend.first_kb)} to "
                                  f"{iec_kb(f.trend.last_kb)} over the window. It counts tmpfs files, SysV "
                                  "and POSIX shared memory and shared anonymous mappings: free(1) shows "
                                  "it in buff/cache, but it cannot be dropped, only swapped."))
    rows = [{"mount": ", ".join(u.mount_points), "fstype": u.fstype, "size_kb": u.size_kb,
             "start_kb": u.used_start_kb, "end_kb": u.used_end_kb, "growth_kb": u.growth_kb,
             "deleted_kb": u.deleted_open_kb, "holders": ", ".join(u.holders) or "none"} for u in f.mounts]
    if rows:
        t = Table("shmem-mounts", MOUNT_COLUMNS, rows, caption="Memory file systems (tmpfs, hugetlbfs, ramfs)",
                  source=[start_of(FS_MEMFS), end_of(FS_MEMFS), end_of(PROCS_OPEN_DELETED)],
                  note="One row per file system (bind mounts of one share a row). Used: statvfs blocks "
                       "in use (ramfs keeps no count). Held by: processes with a deleted file there still "
                       f"open ({f.deleted_scan or 'fd scan not collected'}), or mapping a file there "
                       "(top processes' smaps).")
        s.blocks.append(t)
        data[t.id] = t
    if f.segments:
        rows = [{"shmid": g.shmid, "key": f"{g.key:#x}", "size_kb": g.size_bytes // 1024,
                 "rss_kb": None if g.rss_bytes is None else g.rss_bytes // 1024,
                 "swap_kb": None if g.swap_bytes is None else g.swap_bytes // 1024, "nattch": g.nattch,
                 "cpid": g.cpid, "lpid": g.lpid, "locked": "SHM_LOCK" if g.locked else ""} for g in f.segments[:20]]
        t = Table("shmem-sysv", SHM_COLUMNS, rows, caption="SysV shared memory segments at the end (ipcs -m)",
                  source=[end_of(PROC_SYSVIPC_SHM)])
        s.blocks.append(t)
        data[t.id] = t
    else:
        s.blocks.append(Paragraph("No SysV shared memory segment at the end."))
    if f.processes:
        rows = [{"pid": p.pid, "comm": p.comm, "shmem_kb": p.shmem_kb, "rss_kb": p.rss_kb,
                 "locked_kb": p.locked_kb, "swap_kb": p.swap_kb} for p in f.processes]
        t = Table("shmem-processes", PROC_COLUMNS, rows, caption="Processes by shared memory mapped (RssShmem)",
                  source=[end_of(PROCS_MEMORY)])
        s.blocks.append(t)
        data[t.id] = t
    return [s], data
