"""Where Shmem lives: memory file systems, SysV segments, processes, deleted files still open.

/proc/meminfo ``Shmem`` (2.6.32+) counts tmpfs and ramfs-less shared
memory pages: files on tmpfs (/dev/shm, /run, a scratch mount), SysV and
POSIX shared memory, shared anonymous mappings. It cannot be dropped
like page cache (only swapped), yet ``free`` shows it in buff/cache.
The inventory places it:

- each tmpfs / hugetlbfs / ramfs superblock (``fs/memfs@start/@end``,
  one entry per device: bind mounts and a mount seen twice are one), its
  usage at the start and the end, and its holders: processes with a
  deleted file on it still open (``procs/open-deleted@end``) or a
  mapping of a file on it among the top processes' smaps;
- SysV segments (``proc/sysvipc/shm@end``): size, rss, attached count,
  creator and last pid;
- processes by RssShmem (``procs/memory@end``, 4.5+): shared memory they
  map, which also counts /dev/shm files mapped and memfd.

A file on tmpfs keeps its pages until it is deleted and, if deleted,
until its last holder closes or unmaps it, whether or not any process
uses it: "held by no process" is worth saying.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from snapcollect.analysis import series
from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.trend import Trend, trend
from snapcollect.analysis.wording import human_kb
from snapcollect.parsers.records import MemfsMount, ProcDetail, ShmSegment, StatusMemory

TOP = 10


@dataclass(frozen=True)
class MountUse:
    dev: str
    mount_points: tuple[str, ...]   # every mount of this superblock, first seen first
    fstype: str
    source: str
    size_kb: int | None             # the mount's size limit (tmpfs size=)
    used_start_kb: int | None
    used_end_kb: int | None
    deleted_open_kb: int            # in deleted files still open (at the end)
    holders: tuple[str, ...]        # "java (pid 4711)" of each process holding or mapping a file there

    @property
    def mount_point(self) -> str:
        return self.mount_points[0]

    @property
    def growth_kb(self) -> int | None:
        if self.used_start_kb is None or self.used_end_kb is None:
            return None
        return self.used_end_kb - self.used_start_kb


@dataclass(frozen=True)
class ShmemFacts:
    trend: Trend | None             # meminfo Shmem over the window
    mem_total_kb: int | None
    available_end_kb: int | None
    mounts: tuple[MountUse, ...]    # largest at the end first
    segments: tuple[ShmSegment, ...]  # SysV at the end, largest first
    processes: tuple[StatusMemory, ...]  # by RssShmem at the end, top TOP
    deleted_scan: str               # what the fd scan covered
    collected: bool                 # the bundle has the inventory sources at all


def _mounts(start: Sequence[MemfsMount] | None, end: Sequence[MemfsMount] | None) -> dict[str, list[MemfsMount]]:
    by: dict[str, list[MemfsMount]] = {}
    for m in end or start or []:
        by.setdefault(m.dev, []).append(m)
    return by


def _used(mounts: Sequence[MemfsMount] | None, dev: str) -> int | None:
    for m in mounts or []:
        if m.dev == dev and m.used_kb is not None:
            return m.used_kb
    return None


def _under(path: str, mount_point: str) -> bool:
    mp = mount_point.rstrip("/") or "/"
    return mp == "/" or path == mp or path.startswith(mp + "/")


def shmem_facts(ds: Dataset, top: Sequence[ProcDetail] = ()) -> ShmemFacts:
    pts = [(t, mi["Shmem"]) for t, mi in series.samples(ds, "meminfo") if "Shmem" in mi]
    end_mi, _, _ = series.at(ds, "meminfo", "end")
    end_mi = end_mi or {}
    names = {p.pid: p.comm for p in ds.end.proc_memory or []}
    deleted = ds.end.open_deleted or []
    mounts = []
    for dev, ms in _mounts(ds.start.memfs, ds.end.memfs).items():
        points = tuple(dict.fromkeys(m.mount_point for m in ms))
        held = [f for f in deleted if f.dev == dev]
        holders = {f"{names.get(f.pid, '?')} (pid {f.pid})" for f in held}
        for d in top:
            if any(_under(mp.mapping, p) for mp in d.mappings for p in points if mp.mapping.startswith("/")):
                holders.add(f"{d.comm} (pid {d.pid})")
        # a deleted file counted once however many fds hold it
        files = {(f.target, f.blocks) for f in held}
        mounts.append(MountUse(dev, points, ms[0].fstype, ms[0].source, ms[0].size_kb,
                               _used(ds.start.memfs, dev), _used(ds.end.memfs, dev),
                               sum(b * 512 // 1024 for _, b in files), tuple(sorted(holders))))
    mounts.sort(key=lambda u: (-(u.used_end_kb or 0), u.mount_point))
    segs = sorted(ds.end.shm or [], key=lambda s: -(s.rss_bytes if s.rss_bytes is not None else s.size_bytes))
    procs = sorted((p for p in ds.end.proc_memory or [] if p.shmem_kb), key=lambda p: (-p.shmem_kb, p.pid))
    collected = ds.end.memfs is not None or ds.end.shm is not None or ds.end.proc_memory is not None
    return ShmemFacts(trend(pts), end_mi.get("MemTotal"),
                      end_mi.get("MemAvailable", end_mi.get("MemFree")), tuple(mounts), tuple(segs),
                      tuple(procs[:TOP]), ds.end.open_deleted_scan, collected)


@dataclass(frozen=True)
class Place:
    """One place Shmem lives, with what the sentence says about it."""

    kind: str            # "mount", "sysv", "process"
    label: str           # "/tmp/scratch on tmpfs", "SysV segment 3 (key 0x0)", "postgres (pid 99)"
    kb: int              # what it holds at the end
    growth_kb: int | None
    holders: str         # "held by no process", "held by java (pid 4711)", "attached 2 times"


def places(f: ShmemFacts) -> list[Place]:
    """Every place of the inventory, the largest growth first (then the largest)."""
    out = []
    for u in f.mounts:
        if not u.used_end_kb:
            continue
        if u.holders:
            held = "held open or mapped by " + ", ".join(u.holders[:3])
        else:
            held = "held by no process"
        if u.deleted_open_kb:
            held += f" ({human_kb(u.deleted_open_kb)} in deleted files still open)"
        out.append(Place("mount", f"{u.mount_point} on {u.fstype}", u.used_end_kb, u.growth_kb, held))
    for s in f.segments:
        kb = (s.rss_bytes if s.rss_bytes is not None else s.size_bytes) // 1024
        if not kb:
            continue
        held = (f"attached by {s.nattch} process(es), last pid {s.lpid}" if s.nattch else
                f"attached by no process (created by pid {s.cpid})")
        out.append(Place("sysv", f"SysV segment {s.shmid} (key {s.key:#x})", kb, None, held))
    for p in f.processes:
        out.append(Place("process", f"{p.comm} (pid {p.pid})", p.shmem_kb or 0, None, "mapped (RssShmem)"))
    out.sort(key=lambda p: (-(p.growth_kb or 0), -p.kb))
    return out
