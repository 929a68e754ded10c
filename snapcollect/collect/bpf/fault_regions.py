"""Where page faults land: fault addresses -> the mappings they hit (bpf/fault_files).

Kernel interfaces: the BPF map ``fault_regions`` of memevents.bpf.c,
(tgid, kind, address >> 21) -> count, kind 0 a sampled fault (1 in the
sample period, perf event page-faults or tracepoint
exceptions:page_fault_user) and 1 a major fault (perf event major-faults,
every one), and /proc/PID/maps (every mapping: start-end perms offset
dev inode path) with /proc/PID/comm, read while the process lives.

A process's maps vanish at its exit, so the regions recorded so far are
named during the window (``RegionNamer.observe``, on the reader's
resolve pass) and again at the end; a region whose process is gone and
was never read is ``[unknown mapping]``. The kernel keeps 2 MiB regions,
not addresses: a region that several mappings share (small libraries side
by side) goes to the one covering most of it, and the count says how many
faults came from shared regions.

What a mapping is, from its maps line (``mapping_kind``): no path,
``[heap]``, ``[stack]``, ``[anon:...]`` anonymous; ``/dev/shm``, a tmpfs
mount, ``/memfd:``, ``/SYSV`` (System V shm), ``/dev/zero`` (a shared
anonymous mapping) and ``[anon_shmem:...]`` shmem; a hugetlbfs mount or
``/anon_hugepage`` (MAP_HUGETLB) hugetlb; ``[vdso]``-like names special;
any other path a file. A major fault on anonymous or shmem memory is a
page read back from swap: a swap-in.

Paths keep undecodable bytes as surrogateescape (the bundle writes them
back as the original bytes; the report prints them as ``\\xNN``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

REGION_SHIFT = 21                  # address >> 21: 2 MiB regions (memevents.bpf.c count_region)
SAMPLED, MAJOR = 0, 1              # REGION_SAMPLED, REGION_MAJOR
MAX_PROCESSES = 100                # in the document, most faults first
MAX_MAPPINGS = 20                  # per process
MAX_MAPS_BYTES = 4 << 20           # of one /proc/PID/maps
MAX_TGIDS = 8192                   # processes whose region names are kept
UNKNOWN = "[unknown mapping]"      # the process was gone before its maps were read
NOT_MAPPED = "[not mapped when read]"   # unmapped (munmap, exec) before the maps were read
KINDS = ("file", "anon", "shmem", "hugetlb", "special", "unknown")
SWAP_KINDS = ("anon", "shmem")     # a major fault there is a page read back from swap


@dataclass(frozen=True)
class Vma:
    start: int
    end: int
    perms: str
    path: str


@dataclass(frozen=True)
class Place:
    """What one region of a process was: its main mapping and whether others shared it."""

    label: str
    kind: str
    executable: bool = False
    shared: bool = False


GONE = Place(UNKNOWN, "unknown")
UNMAPPED = Place(NOT_MAPPED, "unknown")


def parse_maps(text: bytes) -> list[Vma]:
    """Every mapping of a /proc/PID/maps text; garbage lines are skipped."""
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, _, hi = parts[0].partition(b"-")
        try:
            start, end = int(lo, 16), int(hi, 16)
        except ValueError:
            continue
        path = parts[5].strip() if len(parts) > 5 else b""
        out.append(Vma(start, end, parts[1].decode("ascii", "replace"), path.decode("utf-8", "surrogateescape")))
    out.sort(key=lambda v: v.start)
    return out


def memory_mounts(mountinfo: bytes) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(tmpfs mount points, hugetlbfs mount points) of a /proc/PID/mountinfo text."""
    tmpfs, huge = [], []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(b" - ")
        fields, rest = left.split(), right.split()
        if not sep or len(fields) < 5 or not rest:
            continue
        point = fields[4].decode("utf-8", "surrogateescape").replace("\\040", " ")
        if rest[0] in (b"tmpfs", b"shmem"):
            tmpfs.append(point)
        elif rest[0] == b"hugetlbfs":
            huge.append(point)
    return tuple(tmpfs), tuple(huge)


def _under(path: str, points: tuple[str, ...]) -> bool:
    return any(p != "/" and (path == p or path.startswith(p.rstrip("/") + "/")) for p in points)


def mapping_kind(path: str, perms: str = "", tmpfs: tuple[str, ...] = (),
                 hugetlbfs: tuple[str, ...] = ()) -> tuple[str, str, bool]:
    """(label, kind, executable) of one mapping of /proc/PID/maps."""
    label = path or "[anon]"
    executable = "x" in perms
    bare = path[:-len(" (deleted)")] if path.endswith(" (deleted)") else path
    if not path or bare == "[heap]" or bare.startswith(("[stack", "[anon:")):
        return label, "anon", False
    if bare.startswith("[anon_shmem:"):
        return label, "shmem", False
    if bare.startswith("["):
        return label, "special", executable
    if bare.startswith("/anon_hugepage") or _under(bare, hugetlbfs):
        return label, "hugetlb", False
    if (bare.startswith(("/memfd:", "/SYSV", "/dev/shm/")) or bare == "/dev/zero"
            or _under(bare, tmpfs)):
        return label, "shmem", executable
    return label, "file", executable


def place(region: int, vmas: list[Vma], tmpfs: tuple[str, ...] = (),
          hugetlbfs: tuple[str, ...] = ()) -> Place:
    """The mapping covering most of one 2 MiB region, from a process's mappings."""
    lo, hi = region << REGION_SHIFT, (region + 1) << REGION_SHIFT
    cover: dict[tuple[str, str], list] = {}
    for v in vmas:
        if v.start >= hi:
            break
        if v.end <= lo:
            continue
        label, kind, exe = mapping_kind(v.path, v.perms, tmpfs, hugetlbfs)
        c = cover.setdefault((label, kind), [0, False])
        c[0] += min(v.end, hi) - max(v.start, lo)
        c[1] = c[1] or exe
    if not cover:
        return UNMAPPED
    (label, kind), (_, exe) = max(cover.items(), key=lambda kv: kv[1][0])
    return Place(label, kind, exe, len(cover) > 1)


def _read(path: str, limit: int = MAX_MAPS_BYTES) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(limit)
    except OSError:
        return None


class RegionNamer:
    """Names the regions of the ``fault_regions`` map while their processes live."""

    def __init__(self, own_tgids=frozenset(), mountinfo: bytes | None = None):
        self.own_tgids = own_tgids
        self.tmpfs, self.hugetlbfs = memory_mounts(mountinfo if mountinfo is not None
                                                   else _read("/proc/self/mountinfo") or b"")
        self.places: dict[tuple[int, int], Place] = {}
        self.comms: dict[int, str] = {}
        self.gone: set[int] = set()
        self.maps_read = 0

    def observe(self, keys, budget_s: float = 0.05) -> int:
        """Name the regions of ``keys`` ((tgid, region) pairs) not named yet,
        one /proc/PID/maps read per process; returns the processes left for
        want of time."""
        todo: dict[int, list[int]] = {}
        for tgid, region in keys:
            if tgid in self.own_tgids or tgid in self.gone or (tgid, region) in self.places:
                continue
            todo.setdefault(tgid, []).append(region)
        end = time.monotonic() + budget_s
        left = 0
        for tgid, regions in todo.items():
            if time.monotonic() > end or (tgid not in self.comms and len(self.comms) >= MAX_TGIDS):
                left += 1
                continue
            text = _read(f"/proc/{tgid}/maps")
            if text is None:
                self.gone.add(tgid)
                continue
            self.maps_read += 1
            comm = _read(f"/proc/{tgid}/comm", 64)
            if comm is not None:
                self.comms[tgid] = comm.strip().decode("utf-8", "surrogateescape")
            vmas = parse_maps(text)
            for r in regions:
                self.places[(tgid, r)] = place(r, vmas, self.tmpfs, self.hugetlbfs)
        return left


def fault_files_document(rows, places: dict[tuple[int, int], Place], comms: dict[int, str], period: int,
                         errors: dict[str, int], sources: dict[str, bool], scale: float = 1.0) -> dict:
    """rows: (tgid, kind, region, count) of ``fault_regions``; ``sources``:
    which feeds were attached ({"sampled": bool, "major": bool}); ``scale``:
    window / time the fault sampler was open (fault_duty.py); the
    major-fault event is open all the time."""
    procs: dict[int, dict] = {}
    for tgid, kind, region, count in rows:
        if kind not in (SAMPLED, MAJOR) or count <= 0:
            continue
        pl = places.get((tgid, region), GONE)
        p = procs.setdefault(tgid, {"pid": tgid, "comm": comms.get(tgid, "?"), "samples": 0,
                                    "major_faults": 0, "_maps": {}})
        m = p["_maps"].setdefault((pl.label, pl.kind), {
            "mapping": pl.label, "kind": pl.kind, "executable": False, "samples": 0, "major_faults": 0,
            "from_shared_regions": 0})
        m["executable"] = m["executable"] or pl.executable
        field = "samples" if kind == SAMPLED else "major_faults"
        m[field] += count
        p[field] += count
        if pl.shared:
            m["from_shared_regions"] += count
    out = []
    for p in procs.values():
        maps = list(p.pop("_maps").values())
        for m in maps:
            m["faults_estimated"] = round(m["samples"] * period * scale)
        p["faults_estimated"] = round(p["samples"] * period * scale)
        p["swapins"] = sum(m["major_faults"] for m in maps if m["kind"] in SWAP_KINDS)
        p["hugetlb_faults_estimated"] = sum(m["faults_estimated"] for m in maps if m["kind"] == "hugetlb")
        p["hugetlb_major_faults"] = sum(m["major_faults"] for m in maps if m["kind"] == "hugetlb")
        p["executable_major_faults"] = sum(m["major_faults"] for m in maps
                                           if m["kind"] == "file" and m["executable"])
        maps.sort(key=lambda m: (-m["major_faults"], -m["samples"], m["mapping"]))
        p["mappings"] = maps[:MAX_MAPPINGS]
        p["mappings_omitted"] = max(len(maps) - MAX_MAPPINGS, 0)
        out.append(p)
    out.sort(key=lambda p: (-(p["major_faults"] + p["faults_estimated"]), p["pid"]))
    return {
        "source": "fault addresses in the kernel: the page-fault sampler (1 fault in the sample "
                  "period) and the perf software event major-faults (every one), aggregated per "
                  "process and 2 MiB region; "
                  "regions named from /proc/PID/maps while the process lived",
        "sample_period": period,
        "sampler_scale": scale,
        "sampled": bool(sources.get("sampled")),
        "major": bool(sources.get("major")),
        "region_bytes": 1 << REGION_SHIFT,
        "note": f"faults_estimated = samples x {period}"
                + (f" x {scale:.2f} (the sampler was open part of the window)" if scale > 1.0 else "")
                + "; major_faults are exact; swapins = major faults "
                "in anonymous or shmem mappings",
        "processes": out[:MAX_PROCESSES],
        "processes_omitted": max(len(out) - MAX_PROCESSES, 0),
        "map_full": int(errors.get("region_keys_full", 0)),
    }
