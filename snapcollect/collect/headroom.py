"""How much memory the collector may still use before it hurts the host or itself.

Read before the BPF process starts (its compile is the run's biggest
cost, ~180 MB of LLVM): the collector's own memory cgroup and each of its
ancestors (a limit anywhere up the tree applies), and the host's
MemAvailable. Kernel interfaces: /proc/self/cgroup, /proc/self/mounts,
cgroup v1 ``memory.limit_in_bytes`` / ``memory.usage_in_bytes`` /
``memory.stat`` (``total_inactive_file``), cgroup v2 ``memory.max`` /
``memory.current`` / ``memory.stat`` (``inactive_file``), and
/proc/meminfo's MemAvailable (3.14+). Samples::

    /proc/self/cgroup (v1):   7:memory:/user.slice
    /proc/self/cgroup (v2):   0::/system.slice/cron.service
    memory.max:               67108864        (or "max")

Inactive file pages are counted as free: the kernel reclaims them first
when the group reaches its limit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

V1_UNLIMITED = 1 << 62          # v1 shows "no limit" as 9223372036854771712


@dataclass(frozen=True)
class Headroom:
    """The tightest bound found, in kB, and where it comes from."""

    free_kb: int | None         # None: nothing could be read
    source: str

    def short_of(self, need_kb: int) -> bool:
        return self.free_kb is not None and self.free_kb < need_kb


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _stat_field(text: str | None, key: str) -> int:
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return 0


def own_cgroups(cgroup_text: str) -> dict[str, str]:
    """{"v1": path, "v2": path} of the memory cgroup(s) named in /proc/self/cgroup."""
    out: dict[str, str] = {}
    for line in cgroup_text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if "memory" in controllers.split(","):
            out["v1"] = path
        elif parts[0] == "0" and controllers == "":
            out["v2"] = path
    return out


def memory_mounts(mounts_text: str) -> dict[str, str]:
    """{"v1": mount point of the memory controller, "v2": the cgroup2 mount}."""
    out: dict[str, str] = {}
    for line in mounts_text.splitlines():
        f = line.split()
        if len(f) < 4:
            continue
        if f[2] == "cgroup" and "memory" in f[3].split(",") and "v1" not in out:
            out["v1"] = f[1]
        elif f[2] == "cgroup2" and "v2" not in out:
            out["v2"] = f[1]
    return out


def _free_in(directory: str, version: str) -> int | None:
    """Bytes this cgroup may still take, or None when it has no limit."""
    if version == "v1":
        limit = _int(_read(os.path.join(directory, "memory.limit_in_bytes")))
        usage = _int(_read(os.path.join(directory, "memory.usage_in_bytes")))
        reclaimable = _stat_field(_read(os.path.join(directory, "memory.stat")), "total_inactive_file")
        if limit is None or usage is None or limit >= V1_UNLIMITED:
            return None
    else:
        text = _read(os.path.join(directory, "memory.max"))
        if text is None or text.strip() == "max":
            return None
        limit = _int(text)
        usage = _int(_read(os.path.join(directory, "memory.current")))
        reclaimable = _stat_field(_read(os.path.join(directory, "memory.stat")), "inactive_file")
        if limit is None or usage is None:
            return None
    return max(0, limit - max(0, usage - reclaimable))


def cgroup_headroom(cgroup_text: str, mounts_text: str, root: str = "") -> tuple[int | None, str]:
    """(bytes free under the tightest limit of our cgroup and its ancestors, which cgroup)."""
    mounts = memory_mounts(mounts_text)
    best: tuple[int | None, str] = (None, "")
    for version, path in own_cgroups(cgroup_text).items():
        mnt = mounts.get(version)
        if mnt is None:
            continue
        # v2 lists a path for processes even where memory is not enabled;
        # a directory without memory.max just has no limit of its own.
        rel = path.strip("/")
        while True:
            free = _free_in(os.path.join(root + mnt, rel) if rel else root + mnt, version)
            if free is not None and (best[0] is None or free < best[0]):
                best = (free, f"cgroup {version} /{rel}")
            if not rel:
                break
            rel = os.path.dirname(rel)
    return best


def mem_available_kb(meminfo_text: str | None) -> int | None:
    for line in (meminfo_text or "").splitlines():
        if line.startswith("MemAvailable:"):
            return _int(line.split()[1])
    return None


def measure() -> Headroom:
    """The tightest of the cgroup limits and MemAvailable, on this host, now."""
    free_b, where = cgroup_headroom(_read("/proc/self/cgroup") or "", _read("/proc/self/mounts") or "")
    avail = mem_available_kb(_read("/proc/meminfo"))
    candidates = []
    if free_b is not None:
        candidates.append((free_b // 1024, f"{where} limit"))
    if avail is not None:
        candidates.append((avail, "MemAvailable"))
    if not candidates:
        return Headroom(None, "no cgroup limit or MemAvailable readable")
    kb, source = min(candidates)
    return Headroom(kb, source)
