"""Build a real bundle from this host's /proc with BundleWriter.

Test helper, not the collector: it samples the sources that the sar,
pidstat and snapshot views need, on a fixed monotonic clock, and writes
them under the artifact names of docs/bundle-format.md.
tests/fixtures/capture.py uses it to record the fixture bundle, so that
the fixture depends only on the bundle format, not on the collector's
code of the day.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import time

from snapcollect import __version__
from snapcollect.bundle import BundleWriter

SNAPSHOT_FILES = ("proc/meminfo", "proc/vmstat", "proc/swaps", "proc/slabinfo", "proc/buddyinfo",
                  "proc/zoneinfo", "proc/pagetypeinfo", "proc/pressure/memory", "proc/uptime",
                  "proc/loadavg")
COMMANDS = {"cmd/free": ["free", "-w"], "cmd/vmstat-s": ["vmstat", "-s"],
            "cmd/swapon": ["swapon", "--show"], "cmd/numastat": ["numastat"],
            "cmd/numastat-m": ["numastat", "-m"]}


def read(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "surrogateescape")
    except OSError:
        return None


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def node_dirs() -> list[str]:
    return sorted(glob.glob("/sys/devices/system/node/node[0-9]*"))


def procs_text() -> str:
    """The `procs` series: raw stat line TAB real uid TAB VmSwap kB."""
    lines = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        stat = read(f"/proc/{pid}/stat")
        status = read(f"/proc/{pid}/status")
        if stat is None or status is None:
            continue  # the process exited between listdir and read
        uid = swap = ""
        for line in status.splitlines():
            if line.startswith("Uid:"):
                uid = line.split()[1]
            elif line.startswith("VmSwap:"):
                swap = line.split()[1]
        lines.append(f"{stat.rstrip(chr(10))}\t{uid}\t{swap}")
    return "\n".join(lines) + "\n"


def tick_texts() -> dict[str, str]:
    texts = {}
    for src in ("proc/vmstat", "proc/meminfo", "proc/pressure/memory", "proc/uptime"):
        text = read("/" + src)
        if text is not None:
            texts[src] = text
    for d in node_dirs():
        text = read(f"{d}/numastat")
        if text is not None:
            texts[f"sys/node/{os.path.basename(d)}/numastat"] = text
    texts["procs"] = procs_text()
    return texts


def name_value_dump(directory: str) -> str:
    out = []
    for root, _dirs, files in os.walk(directory):
        for f in sorted(files):
            path = os.path.join(root, f)
            text = read(path)
            if text is None:
                continue
            out.append(f"{os.path.relpath(path, directory)} = {text.strip()}")
    return "\n".join(sorted(out)) + "\n"


def cgroups_json(paths: list[str] | None = None) -> str:
    """cgroups/memory in the documented JSON shape, for the given groups."""
    v1 = "/sys/fs/cgroup/memory"
    if os.path.exists(f"{v1}/memory.usage_in_bytes"):
        version, root = 1, v1
    else:
        version, root = 2, "/sys/fs/cgroup"
    groups = {}
    for rel in paths or ["/"]:
        d = os.path.join(root, rel.lstrip("/"))
        files = {}
        for f in sorted(os.listdir(d)):
            if not f.startswith("memory.") or f in ("memory.force_empty", "memory.kmem.slabinfo"):
                continue
            text = read(os.path.join(d, f))
            if text is not None:
                files[f] = text
        groups[rel] = files
    return json.dumps({"version": version, "root": root, "groups": groups})


def host_info() -> str:
    u = os.uname()
    return json.dumps({"hostname": socket.gethostname(), "kernel_release": u.release,
                       "kernel_version": u.version, "machine": u.machine, "ncpu": os.cpu_count(),
                       "page_size": os.sysconf("SC_PAGE_SIZE"), "clk_tck": os.sysconf("SC_CLK_TCK"),
                       "boot_time": _boot_time(), "uid": os.getuid()})


def _boot_time() -> int | None:
    for line in (read("/proc/stat") or "").splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    return None


def snapshot(w: BundleWriter, phase: str, cgroup_paths: list[str] | None) -> None:
    for src in SNAPSHOT_FILES:
        text = read("/" + src)
        if text is None:
            w.add_missing(f"{src}@{phase}", "missing", f"/{src} does not exist on this kernel")
        else:
            w.add_file(f"{src}@{phase}", text)
    for d in node_dirs():
        n = os.path.basename(d)
        for f in ("meminfo", "numastat"):
            text = read(f"{d}/{f}")
            if text is not None:
                w.add_file(f"sys/node/{n}/{f}@{phase}", text)
    w.add_file(f"proc/sys/vm@{phase}", name_value_dump("/proc/sys/vm"))
    w.add_file(f"sys/kernel/mm/transparent_hugepage@{phase}",
               name_value_dump("/sys/kernel/mm/transparent_hugepage"))
    for name, argv in COMMANDS.items():
        if shutil.which(argv[0]) is None:
            w.add_missing(f"{name}@{phase}", "missing", f"{argv[0]} is not installed")
            continue
        out = subprocess.run(argv, capture_output=True, text=True, env={"LC_ALL": "C", "PATH": os.environ["PATH"]})
        w.add_file(f"{name}@{phase}", out.stdout)
    w.add_file(f"cgroups/memory@{phase}", cgroups_json(cgroup_paths))


def top_processes(w: BundleWriter, n: int) -> None:
    procs = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            status = read(f"/proc/{pid}/status") or ""
            rss = next((int(l.split()[1]) for l in status.splitlines() if l.startswith("VmRSS:")), 0)
            comm = (read(f"/proc/{pid}/comm") or "").strip()
            if rss:
                procs.append({"pid": int(pid), "comm": comm, "rss_kb": rss})
    procs.sort(key=lambda p: -p["rss_kb"])
    top = procs[:n]
    w.add_file("procs/top", json.dumps(top))
    for p in top:
        pid = p["pid"]
        for f in ("smaps", "smaps_rollup", "cmdline", "status"):
            text = read(f"/proc/{pid}/{f}")
            if text is None:
                w.add_missing(f"procs/{pid}/{f}", "missing", "process exited")
            else:
                w.add_file(f"procs/{pid}/{f}", text)
        if shutil.which("pmap"):
            out = subprocess.run(["pmap", "-x", str(pid)], capture_output=True, text=True)
            w.add_file(f"procs/{pid}/pmap-x", out.stdout)


def _kmsg_records(fd: int, window_start_us: int) -> list[dict]:
    out = []
    while True:
        try:
            raw = os.read(fd, 8192)
        except BlockingIOError:
            break
        except OSError:  # EPIPE: a record was overwritten; go on reading
            continue
        if not raw:
            break
        head, _, text = raw.decode("utf-8", "replace").rstrip("\n").partition(";")
        fields = head.split(",")
        pf, seq, ts = int(fields[0]), int(fields[1]), int(fields[2])
        out.append({"seq": seq, "ts_us": ts, "prio": pf & 7, "facility": pf >> 3,
                    "text": text.split("\n")[0], "before_window": ts < window_start_us})
    return out


def sample_bundle(out_path: str, duration_s: float, interval_s: float = 1.0, *, top_n: int = 5,
                  cgroup_paths: list[str] | None = None, on_tick=None) -> str:
    """Write a bundle of ``duration_s / interval_s + 1`` ticks; return its path."""
    wall0, mono0 = time.time(), time.monotonic()
    manifest = {"tool_version": __version__, "host": socket.gethostname(), "kernel": platform.release(),
                "started_at": iso(wall0), "duration_requested_s": duration_s, "interval_s": interval_s,
                "clock": {"wall": wall0, "monotonic": mono0}}
    w = BundleWriter(out_path, manifest)
    w.add_file("host/info", host_info())
    try:
        kfd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        kfd = None
    snapshot(w, "start", cgroup_paths)
    n = int(round(duration_s / interval_s))
    start = time.monotonic()
    for k in range(n + 1):
        delay = start + k * interval_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t_wall, t_mono = time.time(), time.monotonic()
        w.add_tick(k, t_wall, t_mono, tick_texts())
        if on_tick:
            on_tick(k)
    snapshot(w, "end", cgroup_paths)
    top_processes(w, top_n)
    if kfd is not None:
        recs = _kmsg_records(kfd, int(mono0 * 1e6))
        before = [r for r in recs if r["before_window"]][-50:]
        w.add_records("kmsg", before + [r for r in recs if not r["before_window"]])
        os.close(kfd)
    else:
        w.declare_stream("kmsg", status="denied", reason="/dev/kmsg not readable")
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return w.close(complete=True, stopped_by="deadline", ended_at=iso(time.time()),
                   cpu_s=round(ru.ru_utime + ru.ru_stime, 2), peak_rss_kb=ru.ru_maxrss)
