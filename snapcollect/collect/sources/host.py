"""The host and the collector itself: uname, CPUs, page size, boot time, cost.

``host/info`` is JSON built from uname(2), sysconf, /proc/stat ``btime``,
/proc/cmdline (boot options such as transparent_hugepage= or psi=) and
/etc/os-release. The collector's own cost comes from getrusage(2) and
/proc/self/status ``VmHWM`` (peak RSS, 2.6.x+)::

    VmHWM:     38212 kB
"""

from __future__ import annotations

import json
import os
import resource
import socket

from snapcollect import __version__
from snapcollect.collect.sources import read_capped


def _btime() -> int | None:
    got = read_capped("/proc/stat", 1024 * 1024)
    for line in got.text.splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    return None


def _os_release() -> str | None:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        got = read_capped(path, 64 * 1024)
        if got.ok:
            for line in got.text.splitlines():
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    return None


def hostname() -> str:
    return socket.gethostname() or os.uname().nodename


def info() -> dict:
    u = os.uname()
    try:
        online = len(os.sched_getaffinity(0))
    except OSError:
        online = None
    cmdline = read_capped("/proc/cmdline", 64 * 1024)
    return {
        "hostname": hostname(),
        "kernel_release": u.release,
        "kernel_version": u.version,
        "machine": u.machine,
        "os": _os_release(),
        "ncpu": os.cpu_count(),
        "ncpu_usable": online,
        "page_size": os.sysconf("SC_PAGE_SIZE"),
        "clk_tck": os.sysconf("SC_CLK_TCK"),
        "boot_time": _btime(),
        "kernel_cmdline": cmdline.text.strip() if cmdline.ok else None,
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "collector_pid": os.getpid(),
        "tool_version": __version__,
    }


def info_bytes() -> bytes:
    return json.dumps(info(), indent=1).encode()


def self_cost() -> dict:
    """The collector's CPU time and peak memory so far, for the manifest."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    hwm = None
    got = read_capped("/proc/self/status", 64 * 1024)
    for line in got.text.splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return {
        # CPU of the collector and of the commands it ran (free, pmap, ...).
        "cpu_s": round(me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime, 3),
        "cpu_self_s": round(me.ru_utime + me.ru_stime, 3),
        # ru_maxrss is kB on Linux; VmHWM is the same figure from the kernel.
        "peak_rss_kb": hwm if hwm is not None else me.ru_maxrss,
        "children_peak_rss_kb": kids.ru_maxrss,
    }
