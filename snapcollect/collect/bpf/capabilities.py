"""What BPF through bcc needs on this host, with a reason and a remedy each.

Used by the BPF session (to record why artifacts are unavailable) and by
``snapcollect doctor``. Reads /proc/self/status (CapEff), the kernel
headers bcc compiles against (/lib/modules/$(uname -r)/build, the
kheaders archive of CONFIG_IKHEADERS, or $BCC_KERNEL_SOURCE), tracefs and
/proc/sys/kernel/perf_event_paranoid. Sample of the headers' release file::

    #define UTS_RELEASE "6.1.0-56-amd64"
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from snapcollect.collect.bpf.tracefs import MOUNT_REMEDY, find_tracefs, mounted_tracefs

ROOT_REMEDY = "run as root (sudo snapcollect ...)"
HEADERS_REMEDY = ("install headers for your kernel: apt-get install linux-headers-$(uname -r), "
                  "or link the nearest headers: ln -s /usr/src/linux-headers-<ver>-amd64 "
                  "/lib/modules/$(uname -r)/build and ln -s /usr/src/linux-headers-<ver>-common "
                  "/lib/modules/$(uname -r)/source")

CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39


@dataclass(frozen=True)
class Problem:
    """Why BPF cannot run, and what the user can do."""

    reason: str
    remedy: str


def effective_caps() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def privilege_problem() -> Problem | None:
    """None when we may load tracing BPF programs and read stack maps."""
    if os.geteuid() == 0:
        return None
    caps = effective_caps()
    # 5.8+ splits CAP_SYS_ADMIN into CAP_BPF + CAP_PERFMON for tracing.
    if caps & (1 << CAP_SYS_ADMIN) or (caps & (1 << CAP_BPF) and caps & (1 << CAP_PERFMON)):
        return None
    return Problem(f"not running as root (uid {os.geteuid()}): loading BPF programs needs root",
                   ROOT_REMEDY)


def bcc_problem():
    """(bcc module, None) or (None, Problem)."""
    from snapcollect.collect.bcc_loader import BccUnavailable, load_bcc

    try:
        return load_bcc(), None
    except BccUnavailable as exc:
        return None, Problem(exc.reason, exc.remedy)


def _release_of(build_dir: str) -> str | None:
    path = os.path.join(build_dir, "include", "generated", "utsrelease.h")
    try:
        with open(path) as fh:
            m = re.search(r'UTS_RELEASE\s+"([^"]+)"', fh.read())
            return m.group(1) if m else None
    except OSError:
        return None


def find_headers(release: str | None = None) -> tuple[str | None, str | None]:
    """(where bcc will find kernel headers, their release) or (None, None)."""
    release = release or os.uname().release
    env = os.environ.get("BCC_KERNEL_SOURCE")
    if env and os.path.isdir(os.path.join(env, "include")):
        return env, _release_of(env)
    build = f"/lib/modules/{release}/build"
    if os.path.exists(os.path.join(build, "include", "generated", "autoconf.h")):
        return os.path.realpath(build), _release_of(build)
    # CONFIG_IKHEADERS: bcc unpacks /sys/kernel/kheaders.tar.xz itself.
    if os.path.exists("/sys/kernel/kheaders.tar.xz"):
        return "/sys/kernel/kheaders.tar.xz", release
    return None, None


def headers_problem() -> Problem | None:
    where, _rel = find_headers()
    if where is None:
        release = os.uname().release
        return Problem(f"no kernel headers for {release} (bcc compiles against them)", HEADERS_REMEDY)
    return None


def tracefs_problem() -> tuple[str | None, Problem | None]:
    path = find_tracefs()
    if path is None:
        mounts = mounted_tracefs()
        if mounts:
            # mounted 0700 for root: an ordinary user cannot even see events/
            return None, Problem(f"tracefs at {mounts[0]} is not readable by uid {os.geteuid()}",
                                 ROOT_REMEDY)
        return None, Problem("tracefs is not mounted (no /sys/kernel/tracing/events)", MOUNT_REMEDY)
    if not os.access(os.path.join(path, "events"), os.R_OK | os.X_OK):
        return None, Problem(f"{path}/events is not readable", ROOT_REMEDY)
    return path, None


KPROBE_PMU = "/sys/bus/event_source/devices/kprobe"
KPROBE_EVENTS = ("/sys/kernel/tracing/kprobe_events", "/sys/kernel/debug/tracing/kprobe_events")


def kprobe_problem() -> str | None:
    """None when the kernel offers kprobes: the kprobe PMU (4.17+, what bcc
    opens first) or tracefs kprobe_events (what it falls back to)."""
    if os.path.isdir(KPROBE_PMU) or any(os.path.exists(p) for p in KPROBE_EVENTS):
        return None
    return (f"this kernel offers no kprobes (no kprobe PMU in {os.path.dirname(KPROBE_PMU)}, no "
            "kprobe_events in tracefs)")


VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
TASK_REGS_SINCE = (5, 15)       # bpf_task_pt_regs; bpf_get_current_task_btf is 5.11


def kernel_version(release: str) -> tuple[int, int] | None:
    """``6.1.0-27-amd64`` -> (6, 1); None when the release does not start so."""
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else None


def task_regs_problem(release: str | None = None, btf: str = VMLINUX_BTF) -> str | None:
    """None when the BPF programs may read the task's saved user registers
    (bpf_get_current_task_btf + bpf_task_pt_regs: Linux 5.15+ with kernel
    BTF); otherwise why not. Without them a brk/mmap stack, and the stack
    of a fault taken inside a system call, keep no SP word (leaf_frame.py)."""
    release = release or os.uname().release
    version = kernel_version(release)
    if version is None or version < TASK_REGS_SINCE:
        return f"kernel {release} is older than 5.15 (no bpf_task_pt_regs)"
    if not os.path.exists(btf):
        return f"no kernel BTF ({btf}): bpf_get_current_task_btf needs it"
    return None


def perf_paranoid() -> int | None:
    try:
        with open("/proc/sys/kernel/perf_event_paranoid") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def compile_problem(message: str) -> Problem:
    """Turn a bcc compile/load failure into something the user can act on."""
    text = message.strip().splitlines()[-1] if message.strip() else "unknown error"
    low = message.lower()
    if "kernel headers" in low or "linux/kconfig.h" in low or "no such file" in low:
        return Problem(f"BPF compile failed: {text[:200]}", HEADERS_REMEDY)
    if "operation not permitted" in low or "permission" in low:
        return Problem(f"BPF load failed: {text[:200]}", ROOT_REMEDY)
    return Problem(f"BPF compile/load failed: {text[:200]}",
                   "check `snapcollect doctor`; run with --no-bpf to collect without BPF")
