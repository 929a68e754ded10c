"""``snapcollect doctor``: which collectors work on this host, and how to fix the rest.

Checks, per capability, what the collector will need: root, /proc memory
files, bcc (python3-bpfcc), kernel headers, tracefs and each tracepoint
(its format file), the memory left for a BPF compile, a real start of
the BPF process (compile and attach, timed, then detached) judged by the
same functions as collect's (collect/bpf_start.py), so that "BPF start"
says what collect will do with --bpf-start-timeout, perf
events (/proc/sys/kernel/perf_event_paranoid), PSI (/proc/pressure/memory,
4.20+), the cgroup memory controller (v1 or v2, from /proc/self/mounts),
/dev/kmsg, the classic commands, and free disk space in the current
directory. Prints works / does not work / why / how to fix; ``--json``
for machines. Exit 0 when the core collection works (BPF is optional),
1 otherwise. Runs without root: it then says what root would add.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import textwrap
import time
from dataclasses import asdict, dataclass

from snapcollect.collect import bpf_hook, bpf_start, headroom
from snapcollect.collect.options import CollectOptions
from snapcollect.collect.bpf import capabilities, header_layouts, program, tracefs
from snapcollect.collect.protocols import BpfProcessCommand, MeasureHeadroom

MIN_FREE_MB = 64
MEASURE_LIMIT_S = 120.0     # how long doctor lets a BPF start run to measure it
WIDTH = 80
COMMANDS = {
    "free": "apt-get install procps",
    "vmstat": "apt-get install procps",
    "pmap": "apt-get install procps",
    "swapon": "apt-get install util-linux",
    "numastat": "apt-get install numactl",
}


# One line per perf event the session opens: page-faults is the sampler of
# the fault stacks, major-faults the per-process major fault counter.
PERF_CHECK_NAMES = {
    "perf:page-faults": "perf event page-faults (fault stack sampler)",
    "perf:major-faults": "perf event major-faults (per-process counts)",
}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None
    core: bool = False
    group: str = "host"


def _read_first(path: str) -> tuple[str | None, str | None]:
    try:
        with open(path) as fh:
            return fh.readline(), None
    except OSError as exc:
        return None, exc.strerror or str(exc)


def check_proc() -> Check:
    bad = [f"{p}: {why}" for p in ("/proc/meminfo", "/proc/vmstat", "/proc/self/stat")
           for _, why in [_read_first(p)] if why]
    if bad:
        return Check("/proc memory files", False, "; ".join(bad), "mount /proc (mount -t proc proc /proc)", True)
    return Check("/proc memory files", True, "/proc/meminfo, /proc/vmstat, /proc/PID/stat readable", core=True)


def check_disk(path: str = ".") -> Check:
    try:
        st = os.statvfs(path)
    except OSError as exc:
        return Check("free disk space", False, f"cannot stat {os.path.abspath(path)}: {exc.strerror}",
                     "run from a writable directory or give -o DIR", True)
    free_mb = st.f_bavail * st.f_frsize // (1024 * 1024)
    where = os.path.abspath(path)
    if not os.access(path, os.W_OK):
        return Check("free disk space", False, f"{where} is not writable", "give -o DIR on a writable "
                     "file system", True)
    if free_mb < MIN_FREE_MB:
        return Check("free disk space", False, f"{free_mb} MiB free in {where} (a bundle needs a few MiB, "
                     f"{MIN_FREE_MB} MiB wanted)", "give -o DIR on a file system with more room", True)
    return Check("free disk space", True, f"{free_mb:,} MiB free in {where}", core=True)


def check_root() -> Check:
    problem = capabilities.privilege_problem()
    if problem:
        return Check("root", False, problem.reason + "; without it: no BPF, no smaps/pmap of other "
                     "users' processes", problem.remedy)
    return Check("root", True, f"uid {os.geteuid()}")


def check_psi() -> Check:
    line, why = _read_first("/proc/pressure/memory")
    if why:
        fix = ("needs Linux 4.20+ with CONFIG_PSI; boot with psi=1 if it is built but off"
               if why and "No such file" in why else "boot with psi=1")
        return Check("PSI (memory pressure)", False, f"/proc/pressure/memory: {why}", fix)
    return Check("PSI (memory pressure)", True, "/proc/pressure/memory: " + line.strip())


def _cgroup_mounts() -> list[tuple[str, str, str]]:
    try:
        with open("/proc/self/mounts") as fh:
            return [tuple(line.split()[1:4]) for line in fh if len(line.split()) >= 4]
    except OSError:
        return []


def check_cgroups() -> Check:
    found = []
    for mnt, fstype, opts in _cgroup_mounts():
        if fstype == "cgroup" and "memory" in opts.split(","):
            found.append(f"v1 memory controller at {mnt}")
        elif fstype == "cgroup2":
            ctrl, _ = _read_first(os.path.join(mnt, "cgroup.controllers"))
            if ctrl is not None and "memory" in ctrl.split():
                found.append(f"v2 with memory at {mnt}")
    if found:
        return Check("cgroup memory controller", True, "; ".join(found))
    return Check("cgroup memory controller", False, "no cgroup with the memory controller is mounted: "
                 "per-cgroup limits and usage will be missing",
                 "mount cgroup2 with memory enabled (systemd does this by default), or "
                 "mount -t cgroup -o memory none /sys/fs/cgroup/memory")


def check_kmsg() -> Check:
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        fix = ("run as root, or sysctl kernel.dmesg_restrict=0" if exc.errno in (errno.EPERM, errno.EACCES)
               else "needs /dev/kmsg (Linux 3.5+)")
        return Check("/dev/kmsg (kernel log)", False, f"cannot open /dev/kmsg: {exc.strerror}; OOM kill "
                     "lines will be missing", fix)
    try:
        os.read(fd, 8192)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EPIPE):
            return Check("/dev/kmsg (kernel log)", False, f"cannot read /dev/kmsg: {exc.strerror}",
                         "run as root, or sysctl kernel.dmesg_restrict=0")
    finally:
        os.close(fd)
    return Check("/dev/kmsg (kernel log)", True, "readable")


def check_commands() -> list[Check]:
    out = []
    for cmd, fix in COMMANDS.items():
        path = shutil.which(cmd)
        out.append(Check(f"command {cmd}", bool(path), path or f"{cmd} not found in PATH; its verbatim "
                         "output will be missing (snapcollect still reads the same /proc files)",
                         None if path else fix, group="commands"))
    return out


def check_bcc() -> tuple[Check, object]:
    bcc, problem = capabilities.bcc_problem()
    if problem:
        return Check("bcc (python3-bpfcc)", False, problem.reason, problem.remedy, group="bpf"), None
    version = getattr(bcc, "__version__", None)
    if version is None:
        try:
            from bcc.version import __version__ as version  # type: ignore
        except Exception:  # noqa: BLE001
            version = "?"
    return Check("bcc (python3-bpfcc)", True, f"bcc {version} from {os.path.dirname(bcc.__file__)}",
                 group="bpf"), bcc


def check_headers() -> Check:
    where, release = capabilities.find_headers()
    running = os.uname().release
    if where is None:
        return Check("kernel headers", False, f"none for {running}: bcc compiles against them",
                     capabilities.HEADERS_REMEDY, group="bpf")
    return Check("kernel headers", True, f"{where}", group="bpf")


def check_header_release() -> Check | None:
    """One line when bcc will compile against another kernel's headers; None when they match."""
    _where, release = capabilities.find_headers()
    running = os.uname().release
    if not release or release == running:
        return None
    affected = [a for a, e in header_layouts.manifest_entry().items() if e["header_dependent"]]
    # Tracepoint fields are laid out from tracefs: only kernel struct reads
    # (collect/bpf/header_layouts.py) take the headers' offsets.
    effect = f"{len(affected)} BPF artifact(s) read kernel structs" if affected else "BPF data unaffected"
    return Check("headers", True, f"{release} != kernel {running}: {effect}", group="bpf")


def check_tracefs() -> tuple[Check, str | None]:
    where, problem = capabilities.tracefs_problem()
    if problem:
        return Check("tracefs", False, problem.reason, problem.remedy, group="bpf"), None
    return Check("tracefs", True, f"{where}/events", group="bpf"), where


def check_tracepoints(where: str | None) -> list[Check]:
    if where is None:
        return [Check("tracepoints", False, f"{len(program.TRACEPOINTS)} not checked: tracefs not reachable",
                      "see tracefs above", group="tracepoints")]
    out = []
    for tp in program.TRACEPOINTS:
        name = f"tracepoint {tp}"
        text, why = tracefs.read_format(where, tp)
        if text is None:
            fix = (capabilities.ROOT_REMEDY if why and "permission" in why
                   else program.TRACEPOINT_REMEDY.get(tp.split(":")[0]))
            out.append(Check(name, False, why or "absent", fix, group="tracepoints"))
            continue
        fields = tracefs.parse_fields(text)
        detail = "present"
        if tp == "oom:mark_victim" and "anon_rss" not in fields:
            detail += " (pid only: sizes and comm arrived in 6.8; the kernel log fills them in)"
        out.append(Check(name, True, detail, group="tracepoints"))
    return out


class _DryWriter:
    """Takes what the BPF process would write into a bundle, and keeps only the manifest."""

    def __init__(self):
        self.manifest: dict = {"clock": {"wall": time.time(), "monotonic": time.monotonic()}}
        self.statuses: dict[str, tuple[str, str | None]] = {}

    def add_file(self, name, data, status="ok", reason=None, **extra):
        self.statuses[name] = (status, reason)

    def add_missing(self, name, status, reason, **extra):
        self.statuses[name] = (status, reason)

    def declare_stream(self, name, status="ok", reason=None, **extra):
        self.statuses[name] = (status, reason)

    def add_records(self, name, records):
        pass

    def merge_manifest(self, key, **fields):
        self.manifest[key] = {**(self.manifest.get(key) or {}), **fields}


class _NoStop:
    stopped = False
    hurry = False


def check_bpf_load(args, command: BpfProcessCommand = bpf_hook.bpf_process_command,
                   room: MeasureHeadroom = headroom.measure) -> list[Check]:
    """Start the BPF process as a collection would, measure it, and say what collect will do.

    The same decisions as collect's (bpf_start.may_start, bpf_start.outcome):
    the memory left to the collector, then the measured start time against
    --bpf-start-timeout. The measurement itself gets more time than the
    limit, so that a start that is too slow is reported with its duration.
    """
    limit = bpf_start.timeout_s(args)
    opts = args.but(no_bpf=False, bpf_start_timeout=max(limit * 3, MEASURE_LIMIT_S))
    out = []
    free = room()
    go = bpf_start.may_start(opts, free)
    if not go.start:
        out.append(Check("memory for the BPF compile", False, go.reason,
                         "free memory, raise the cgroup's limit, or collect with --no-bpf", group="bpf"))
        out.append(Check("BPF start", False, "collect will run without BPF (see above)",
                         "fix the item above", group="bpf"))
        return out
    where = f"{free.free_kb // 1024:,} MiB free under {free.source}" if free.free_kb is not None else \
        free.source
    out.append(Check("memory for the BPF compile", True,
                     f"{where}; a compile needs about {bpf_start.NEED_KB // 1024} MiB", group="bpf"))
    w = _DryWriter()
    hook = bpf_hook.BpfHook(opts, w, _NoStop(), command=command, room=lambda: free)
    hook.start()
    hook.finish_async(time.monotonic() + 30)
    hook.wait_finish(time.monotonic() + 30)
    info = w.manifest.get("bpf", {})
    proc = info.get("process") or {}
    loader = info.get("loader") or {}
    if info.get("compile_s") is not None and "compile_error" not in info and info.get("attach"):
        out.append(Check("BPF compile", True, f"{info['compile_s']:.2f} s; the BPF loader's RSS "
                         f"{info.get('compile_rss_before_kb', 0) // 1024} -> "
                         f"{info.get('compile_peak_rss_kb', 0) // 1024} MiB during the compile, "
                         f"peak {loader.get('peak_rss_kb', 0) // 1024} MiB; the BPF reader's peak "
                         f"{proc.get('peak_rss_kb', 0) // 1024} MiB", group="bpf"))
    else:
        un = info.get("unavailable") or {}
        first = next(iter(un.values()), {"reason": info.get("reason") or "did not run", "remedy": None})
        out.append(Check("BPF compile", False, first["reason"], first.get("remedy"), group="bpf"))
        return out
    for point, result in sorted(info.get("attach", {}).items()):
        name = PERF_CHECK_NAMES.get(point, f"attach {point}")
        if result.startswith("ok"):
            out.append(Check(name, True, "attached and detached", group="bpf"))
        else:
            fix = ("lower /proc/sys/kernel/perf_event_paranoid or run as root" if point.startswith("perf:")
                   else "check that BPF programs may attach to tracepoints on this kernel")
            out.append(Check(name, False, result, fix, group="bpf"))
    measured = info.get("start_s") if hook.enabled else None
    verdict = bpf_start.outcome(measured, limit)
    out.append(Check("BPF start", verdict.attached,
                     f"took {measured:.1f} s here; collect will do this: {verdict.text}"
                     if measured is not None else verdict.text,
                     None if verdict.attached else
                     f"collect with --bpf-start-timeout {bpf_start.suggested_timeout_s(measured or limit)}",
                     group="bpf"))
    return out


def run_checks(args: CollectOptions | None = None) -> list[Check]:
    args = args if args is not None else CollectOptions()
    checks = [check_proc(), check_disk(), check_root(), check_psi(), check_cgroups(), check_kmsg()]
    checks += check_commands()
    bcc_check, bcc = check_bcc()
    headers = check_headers()
    tfs, where = check_tracefs()
    checks += [bcc_check, headers]
    release = check_header_release()
    checks += [release] if release is not None else []
    checks.append(tfs)
    checks += check_tracepoints(where)
    paranoid = capabilities.perf_paranoid()
    root_ok = checks[2].ok
    if root_ok and bcc is not None and headers.ok and where is not None:
        checks += check_bpf_load(args)
    else:
        missing = [c.name for c in (checks[2], bcc_check, headers, tfs) if not c.ok]
        checks.append(Check("BPF compile", False, "not tried: needs " + ", ".join(missing),
                            "fix the items above", group="bpf"))
        checks.append(Check("perf events", root_ok or (paranoid is not None and paranoid <= 0),
                            f"perf_event_paranoid={paranoid}", None if root_ok else
                            "run as root, or sysctl kernel.perf_event_paranoid=-1", group="bpf"))
    return checks


def _format(checks: list[Check]) -> str:
    lines = [f"snapcollect doctor: kernel {os.uname().release}, uid {os.geteuid()}", ""]
    for c in checks:
        word = "ok" if c.ok else "NO"
        head = f"  {word:<3} {c.name}: "
        lines += textwrap.wrap(head + c.detail, WIDTH, subsequent_indent=" " * 6)
        if not c.ok and c.fix:
            lines += textwrap.wrap("fix: " + c.fix, WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 11)
    core_ok = all(c.ok for c in checks if c.core)
    bpf_ok = all(c.ok for c in checks if c.group in ("bpf", "tracepoints"))
    lines += ["", f"core collection: {'works' if core_ok else 'DOES NOT WORK'}",
              "BPF events: " + ("work" if bpf_ok else "partly or not at all (see NO above); the "
                                "collection runs without them")]
    return "\n".join(lines)


def run_doctor(args) -> int:
    checks = run_checks(args)
    core_ok = all(c.ok for c in checks if c.core)
    if args.json:
        print(json.dumps({"kernel": os.uname().release, "uid": os.geteuid(), "core_ok": core_ok,
                          "bpf_ok": all(c.ok for c in checks if c.group in ("bpf", "tracepoints")),
                          "checks": [asdict(c) for c in checks]}, indent=1))
    else:
        print(_format(checks))
    sys.stdout.flush()
    return 0 if core_ok else 1
