"""Make the collector the host's least important task: OOM victim first, low CPU and I/O priority.

Kernel interfaces: /proc/self/oom_score_adj (2.6.36+; 1000 makes the
task the OOM killer's first choice, within its memory cgroup too),
setpriority(2) through os.nice, and ioprio_set(2) through ctypes (no
Python wrapper exists). All three are inherited across fork and exec, so
the commands the collector runs and its BPF process get them as well.

nice and the I/O priority are per thread on Linux: ``lower_own`` is
called before the collector starts any thread. The I/O class is
best-effort at its lowest level (7), not idle: an idle-class writer can
starve for as long as the disk is busy, and the bundle has a deadline.
"""

from __future__ import annotations

import ctypes
import os
import platform

OOM_SCORE_ADJ = 1000
NICE = 10
IOPRIO_CLASS_BE = 2
IOPRIO_LEVEL = 7
IOPRIO_CLASS_SHIFT = 13
IOPRIO_WHO_PROCESS = 1
# ioprio_set's number differs per architecture (asm/unistd.h)
SYS_IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "i686": 289, "i386": 289, "armv7l": 314,
                  "ppc64le": 273, "ppc64": 273, "s390x": 282, "riscv64": 30}


def _set_oom_score_adj(value: int) -> str | None:
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write(str(value))
        return None
    except OSError as exc:
        return exc.strerror or str(exc)


def _ioprio_set(cls: int, level: int) -> str | None:
    nr = SYS_IOPRIO_SET.get(platform.machine())
    if nr is None:
        return f"ioprio_set: no syscall number known for {platform.machine()}"
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        rc = libc.syscall(nr, IOPRIO_WHO_PROCESS, 0, (cls << IOPRIO_CLASS_SHIFT) | level)
    except (OSError, AttributeError) as exc:
        return f"ioprio_set: {exc}"
    if rc != 0:
        return f"ioprio_set: {os.strerror(ctypes.get_errno())}"
    return None


def lower_own() -> dict:
    """Apply all three to this process; what was set, and what failed, for the manifest."""
    out: dict = {}
    errors = []
    why = _set_oom_score_adj(OOM_SCORE_ADJ)
    if why:
        errors.append(f"oom_score_adj: {why}")
    else:
        out["oom_score_adj"] = OOM_SCORE_ADJ
    try:
        current = os.nice(0)
        # never raise our own priority: a user may already have started us lower
        out["nice"] = os.nice(max(0, NICE - current))
    except OSError as exc:
        errors.append(f"nice: {exc.strerror}")
    why = _ioprio_set(IOPRIO_CLASS_BE, IOPRIO_LEVEL)
    if why:
        errors.append(why)
    else:
        out["ioprio"] = f"best-effort {IOPRIO_LEVEL}"
    if errors:
        out["errors"] = errors
    return out


def read_back(pid: int | str = "self") -> dict:
    """oom_score_adj and nice of a process, as the kernel has them (/proc/PID/stat field 19)."""
    out: dict = {}
    try:
        with open(f"/proc/{pid}/oom_score_adj") as fh:
            out["oom_score_adj"] = int(fh.read())
        with open(f"/proc/{pid}/stat") as fh:
            out["nice"] = int(fh.read().rsplit(")", 1)[1].split()[16])
    except (OSError, ValueError, IndexError):
        pass
    return out
