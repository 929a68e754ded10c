"""Live collections on this machine, as root, through the real command line.

A 3-second run whose bundle must hold every artifact of
docs/bundle-format.md with status ok; the free/meminfo cross-check; kill
-9, SIGINT, SIGTERM, SIGHUP and a double Ctrl-C mid-run; an unprivileged run
(setpriv to nobody); a file system too small to start on and one that
fills during the run; the progress line on a terminal, plain lines in a pipe.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from snapcollect.bundle import names, open_bundle

pytestmark = pytest.mark.live

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = [sys.executable, "-m", "snapcollect"]
NOBODY = 65534

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (runs as root on the CI machine)")


def run_cli(*args, timeout=120, **kw):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw)


def bundle_path(stdout: str) -> str:
    lines = stdout.strip().splitlines()
    assert lines, "no path printed on stdout"
    return lines[-1]


def assert_no_traceback(proc):
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


def nodes() -> list[int]:
    return sorted(int(n[4:]) for n in os.listdir("/sys/devices/system/node") if re.fullmatch(r"node\d+", n))


SNAPSHOT_SOURCES = ["proc/meminfo", "proc/vmstat", "proc/swaps", "proc/slabinfo", "proc/buddyinfo",
                    "proc/zoneinfo", "proc/pagetypeinfo", "proc/pressure/memory", "proc/uptime",
                    "proc/loadavg", "proc/sys/vm", "sys/kernel/mm/transparent_hugepage", "cmd/free",
                    "cmd/vmstat-s", "cmd/swapon", "cmd/numastat", "cmd/numastat-m", "cgroups/memory"]
SERIES_SOURCES = ["proc/vmstat", "proc/meminfo", "proc/pressure/memory", "proc/uptime", "procs"]
DETAIL = ["smaps", "smaps_rollup", "cmdline", "status", "pmap-x"]


def expected_names() -> list[str]:
    out = ["host/info", "procs/top", "kmsg"]
    snaps = SNAPSHOT_SOURCES + [f"sys/node/node{n}/{f}" for n in nodes() for f in ("meminfo", "numastat")]
    out += [f"{s}@{p}" for s in snaps for p in (names.START, names.END)]
    out += [f"series/{s}" for s in SERIES_SOURCES + [f"sys/node/node{n}/numastat" for n in nodes()]]
    return out


def memory_hog(mib: int, maps: int = 0) -> subprocess.Popen:
    """A process holding ``mib`` MiB of touched memory (and ``maps`` separate mappings)."""
    code = (f"import mmap, sys, time\n"
            f"keep = [mmap.mmap(-1, 4096, prot=mmap.PROT_READ if i % 2 else mmap.PROT_READ | mmap.PROT_WRITE)"
            f" for i in range({maps})]\n"
            f"buf = b'x' * ({mib} << 20)\n"
            f"print('ready', flush=True)\n"
            f"time.sleep(600)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def wait_for_ticks(partial: str, n: int, timeout: float = 60.0) -> None:
    """Wait until the collector's .partial archive holds ``n`` ticks."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(partial):
            try:
                if len(open_bundle(partial).ticks) >= n:
                    return
            except Exception:  # noqa: BLE001 - not readable yet (first member being written)
                pass
        time.sleep(0.1)
    raise AssertionError(f"{partial}: fewer than {n} ticks after {timeout} s")


PROGRESS_LINE = re.compile(r"snapcollect: ([A-Za-z ]+ \d+/\d+ s elapsed, \d+ samples, <?=?\d+ s left"
                           r"|\S+ s window; Ctrl-C to stop early and keep what was collected)")


def not_progress(stderr: str) -> list[str]:
    """stderr's lines less the progress lines written when it is not a terminal."""
    return [ln for ln in stderr.strip().splitlines() if not PROGRESS_LINE.fullmatch(ln)]


def start_collector(tmp: str, *args) -> tuple[subprocess.Popen, str]:
    """Start a long collection into ``tmp``/x.tar.zst; returns it and the final path."""
    path = os.path.join(tmp, "x" + names.SUFFIX)
    p = subprocess.Popen([*CLI, "collect", "-d", "60", "-o", path, *args], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p, path


# -- one real 3-second collection, checked from several sides ---------------------


@pytest.fixture(scope="module")
def three_second_run():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    hog = memory_hog(96)
    # Enough small processes that the top 10 can be filled on a quiet host
    # (a minimal CI machine runs only a handful of its own).
    crowd = [subprocess.Popen(["sleep", "60"]) for _ in range(10)]
    tmp = tempfile.mkdtemp(prefix="snapcollect-live-")
    try:
        proc = run_cli("collect", "--duration", "3", "-o", tmp)
        yield proc, hog.pid
    finally:
        for p in [hog, *crowd]:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


@needs_root
def test_three_second_run_every_artifact_ok(three_second_run):
    proc, hog_pid = three_second_run
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)
    path = bundle_path(proc.stdout)
    assert re.fullmatch(r"snapcollect-[A-Za-z0-9._-]+-\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}\.tar\.zst", os.path.basename(path))
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    b = open_bundle(path)
    assert b.complete, b.incomplete_reason
    m = b.manifest
    assert m["stopped_by"] == "deadline" and m["stop_reason"] is None
    for name in expected_names():
        status, reason = b.status(name)
        assert status == "ok", f"{name}: {status}: {reason}"
    # Series: one sample per tick; ticks on the fixed schedule 0..3.
    assert m["ticks"] + m["skipped_ticks"] == 4
    ks = [t["k"] for t in b.ticks]
    assert ks == sorted(ks) and ks[0] == 0 and len(ks) == m["ticks"]
    for src in SERIES_SOURCES:
        assert b.entry(f"series/{src}")["samples"] == m["ticks"], src
    # Top processes: the memory hog is among them, with every detail file ok.
    top = json.loads(b.text("procs/top"))
    assert len(top) == 10
    assert [t["rss_kb"] for t in top] == sorted((t["rss_kb"] for t in top), reverse=True)
    assert hog_pid in [t["pid"] for t in top]
    for t in top:
        for f in DETAIL:
            status, reason = b.status(f"procs/{t['pid']}/{f}")
            if status != "ok":
                # Only what the kernel refuses root too (a process holding
                # capabilities we lack), or a process that exited meanwhile.
                assert (status == "denied" and "ptrace" in reason) or \
                    (status == "missing" and not os.path.exists(f"/proc/{t['pid']}")) or \
                    (f == "pmap-x" and status == "denied"), f"{t['pid']}/{f}: {status}: {reason}"
    for f in DETAIL:
        assert b.status(f"procs/{hog_pid}/{f}")[0] == "ok", f
    assert f"{hog_pid}:" in b.text(f"procs/{hog_pid}/pmap-x").splitlines()[0]
    assert b.text(f"procs/{hog_pid}/smaps_rollup").startswith(tuple("0123456789abcdef"))
    # Manifest fields of the collector's issue.
    for key in ("format", "format_version", "tool_version", "host", "kernel", "started_at", "ended_at",
                "duration_requested_s", "interval_s", "complete", "stopped_by", "cpu_s", "peak_rss_kb",
                "clock", "skipped_ticks", "window", "artifacts", "bpf"):
        assert key in m, key
    assert m["peak_rss_kb"] > 0 and m["cpu_s"] > 0
    assert m["window"]["end"] >= m["window"]["start"]
    assert set(m["clock"]) == {"wall", "monotonic"}
    info = json.loads(b.text("host/info"))
    assert info["kernel_release"] == os.uname().release and info["page_size"] == os.sysconf("SC_PAGE_SIZE")


@needs_root
def test_three_second_run_procs_series_format(three_second_run):
    proc, hog_pid = three_second_run
    b = open_bundle(bundle_path(proc.stdout))
    last = b.series("procs")[-1].text.splitlines()
    hog = [ln for ln in last if ln.startswith(f"{hog_pid} (")]
    assert len(hog) == 1
    stat, uid, swap = hog[0].rsplit("\t", 2)
    assert uid == "0" and swap.isdigit()
    fields = stat[stat.rindex(")") + 2:].split()
    assert int(fields[21]) * os.sysconf("SC_PAGE_SIZE") >= 96 << 20     # RSS, field 24
    # kmsg records carry the documented fields
    for r in b.records("kmsg")[:5]:
        assert set(r) == {"seq", "ts_us", "prio", "facility", "text", "before_window"}


def test_collector_and_its_commands_are_not_processes_of_the_incident(three_second_run):
    """The process pass leaves the collector, its programs and their children out at the source; the
    manifest names them, and analysis leaves them out of older bundles' rankings too."""
    from snapcollect.analysis.dataset import load_dataset
    from snapcollect.analysis.processes import process_memory

    proc, _hog = three_second_run
    b = open_bundle(bundle_path(proc.stdout))
    pids = b.manifest["collector_pids"]
    # The collector itself, then free, vmstat, swapon, numastat (x2) at each
    # snapshot and pmap for each top process.
    assert len(pids) >= 1 + 2 * 5 + 1 and len(set(pids)) == len(pids)
    me = pids[0]
    own = {str(p) for p in pids}
    raw = [ln for s in b.series("procs") for ln in s.text.splitlines()
           if ln.split(" ", 1)[0] in own or (len(ln.split(") ", 1)) == 2 and ln.split(") ", 1)[1].split()[1:2] == [str(me)])]
    assert not raw, f"the process pass listed the collector's own: {raw[:3]}"
    top = json.loads(b.text("procs/top"))
    assert not {e["pid"] for e in top} & set(pids), "a top-N detail slot went to the collector's own"
    ds = load_dataset(b)
    assert ds.collector_pids == frozenset(pids)
    assert all(me not in p.value for p in ds.procs)
    assert me not in [d.pid for d in ds.top]
    assert me not in [p.pid for p in process_memory(ds.procs, None)]


def _free_columns(free_text: str) -> dict[str, int]:
    lines = free_text.splitlines()
    head = lines[0].split()
    mem = dict(zip(head, map(int, lines[1].split()[1:])))
    swap = dict(zip(["total", "used", "free"], map(int, lines[2].split()[1:])))
    return {**{f"mem_{k}": v for k, v in mem.items()}, **{f"swap_{k}": v for k, v in swap.items()}}


def _meminfo(text: str) -> dict[str, int]:
    return {ln.split(":")[0]: int(ln.split()[1]) for ln in text.splitlines()}


@needs_root
@pytest.mark.parametrize("phase", [names.START, names.END])
def test_free_agrees_with_meminfo(three_second_run, phase):
    """cmd/free runs right after proc/meminfo is read; procps 4.0.2 computes
    used = MemTotal - MemAvailable, buff/cache = Buffers | Cached + SReclaimable."""
    proc, _ = three_second_run
    b = open_bundle(bundle_path(proc.stdout))
    free = _free_columns(b.text(f"cmd/free@{phase}"))
    mi = _meminfo(b.text(f"proc/meminfo@{phase}"))
    # free's own figures obey procps 4's definitions exactly
    assert free["mem_used"] == free["mem_total"] - free["mem_available"]
    # the same moment, give or take the few ms between the two reads
    assert free["mem_total"] == mi["MemTotal"]
    assert free["swap_total"] == mi["SwapTotal"]
    tol = 64 * 1024     # kB: other work on this shared machine in those few ms
    expected = {"mem_used": mi["MemTotal"] - mi["MemAvailable"], "mem_free": mi["MemFree"],
                "mem_shared": mi["Shmem"], "mem_buffers": mi["Buffers"],
                "mem_cache": mi["Cached"] + mi["SReclaimable"], "mem_available": mi["MemAvailable"],
                "swap_used": mi["SwapTotal"] - mi["SwapFree"], "swap_free": mi["SwapFree"]}
    for k, v in expected.items():
        assert abs(free[k] - v) <= tol, f"{k}: free says {free[k]}, meminfo gives {v}"


@needs_root
def test_show_lists_the_bundle(three_second_run):
    proc, _ = three_second_run
    path = bundle_path(proc.stdout)
    show = run_cli("show", path)
    assert show.returncode == 0
    assert "complete:  yes" in show.stdout and "proc/meminfo@start" in show.stdout
    js = run_cli("show", path, "--json")
    assert json.loads(js.stdout)["format"] == names.FORMAT


# -- stopping early ------------------------------------------------------------------


@needs_root
def test_kill_9_leaves_a_readable_incomplete_bundle(tmp_path):
    p, path = start_collector(str(tmp_path), "--no-bpf")
    try:
        wait_for_ticks(path + names.PARTIAL_SUFFIX, 2)
    finally:
        p.kill()
        p.wait()
    assert not os.path.exists(path)
    show = run_cli("show", path + names.PARTIAL_SUFFIX)
    assert show.returncode == 0, show.stderr
    assert "complete:  NO" in show.stdout and "killed" in show.stdout
    b = open_bundle(path + names.PARTIAL_SUFFIX)
    assert b.stopped_by == "killed" and len(b.series("proc/vmstat")) >= 2
    assert b.text("proc/meminfo@start").startswith("MemTotal:")


@needs_root
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_stops_early_with_readable_bundle(tmp_path, sig, code):
    p, path = start_collector(str(tmp_path))
    wait_for_ticks(path + names.PARTIAL_SUFFIX, 2)
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert p.returncode == code, err
    assert "Traceback" not in err
    assert bundle_path(out) == path and os.path.exists(path)
    assert f"stopped by {signal.Signals(sig).name}" in err
    b = open_bundle(path)
    assert not b.complete and b.stopped_by == "signal"
    assert signal.Signals(sig).name in b.manifest["stop_reason"]
    assert b.manifest["ticks"] >= 2
    assert b.status("proc/meminfo@end")[0] == "ok"
    assert b.status("procs/top")[0] == "ok"


@needs_root
def test_second_ctrl_c_still_ends_cleanly(tmp_path):
    p, path = start_collector(str(tmp_path))
    wait_for_ticks(path + names.PARTIAL_SUFFIX, 1)
    p.send_signal(signal.SIGINT)
    time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert "Traceback" not in err
    b = open_bundle(bundle_path(out))
    assert not b.complete and b.stopped_by == "signal"
    assert b.read_problem is None


# -- unprivileged --------------------------------------------------------------------


@needs_root
def test_unprivileged_run_lists_denied_artifacts():
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) not installed")
    # pytest's tmp_path is under a 0700 directory nobody cannot enter.
    out_dir = tempfile.mkdtemp(prefix="snapcollect-nobody-")
    os.chown(out_dir, NOBODY, NOBODY)
    try:
        proc = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                               *CLI, "collect", "-d", "2", "-q", "-o", out_dir],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
        _check_unprivileged(proc)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def _check_unprivileged(proc):
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)
    b = open_bundle(bundle_path(proc.stdout))
    assert b.complete and b.manifest["uid"] == NOBODY
    for name in ("proc/slabinfo@start", "proc/pagetypeinfo@end"):
        status, reason = b.status(name)
        assert status == "denied" and "root" in reason, (name, status, reason)
    if open("/proc/sys/kernel/dmesg_restrict").read().strip() == "1":
        assert b.status("kmsg")[0] == "denied"
    top = json.loads(b.text("procs/top"))
    root_owned = [t["pid"] for t in top if t["uid"] == 0]
    assert root_owned, "some of the largest processes here are root's"
    for pid in root_owned:
        status, reason = b.status(f"procs/{pid}/smaps")
        assert status in ("denied", "missing"), (pid, status, reason)
    for name in ("proc/meminfo@start", "cmd/free@end", "series/procs", "series/proc/vmstat"):
        assert b.status(name)[0] == "ok", name
    assert b.manifest["bpf"]["enabled"] is False
    show = run_cli("show", bundle_path(proc.stdout))
    assert "proc/slabinfo@start: denied" in show.stdout


# -- disk space ----------------------------------------------------------------------


@pytest.fixture
def tiny_tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = []

    def mount(size: str) -> str:
        d = tmp_path / f"tmpfs{len(mounted)}"
        d.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)], check=True)
        mounted.append(str(d))
        return str(d)

    yield mount
    for d in mounted:
        subprocess.run(["umount", "-l", d], check=False)


def test_too_small_file_system_refused_up_front(tiny_tmpfs):
    d = tiny_tmpfs("600k")
    proc = run_cli("collect", "-d", "3", "-o", d)
    assert proc.returncode == 73
    assert_no_traceback(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "KiB free" in lines[0] and d in lines[0]
    assert os.listdir(d) == []


def test_file_system_filling_mid_run_truncates_cleanly(tiny_tmpfs):
    """Another process fills the output file system during the run; then a
    large artifact (one process's smaps) no longer fits: the bundle ends as
    disk_full with its final manifest, and one clear line says so."""
    d = tiny_tmpfs("4m")
    hog = memory_hog(400, maps=20000)
    p = None
    try:
        p, path = start_collector(d, "--no-bpf", "--top", "20")
        wait_for_ticks(path + names.PARTIAL_SUFFIX, 1)
        with open(os.path.join(d, "filler"), "wb", buffering=0) as fh:
            try:
                while True:
                    fh.write(os.urandom(64 * 1024))
            except OSError:
                pass
        assert os.statvfs(d).f_bavail == 0
        p.send_signal(signal.SIGINT)        # go on to the end phase (smaps of the hog) now
        out, err = p.communicate(timeout=60)
    finally:
        hog.kill()
        hog.wait()
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 1, err
    assert "Traceback" not in err
    assert "output file system full" in err and len(not_progress(err)) == 1, err
    final = bundle_path(out)
    assert final == path
    show = run_cli("show", final)
    assert show.returncode == 0
    b = open_bundle(final)
    assert b.stopped_by == "disk_full" and not b.complete
    assert "filled up" in b.manifest["stop_reason"]
    assert b.manifest["ticks"] >= 1 and b.text("proc/meminfo@start")


# -- progress ------------------------------------------------------------------------


def _run_on_pty(*args) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal; returns (rc, stdout, terminal text)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([*CLI, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    out = p.stdout.read()
    p.wait()
    os.close(master)
    return p.returncode, out, b"".join(chunks).decode(errors="replace")


def test_progress_on_a_terminal_and_in_a_pipe(tmp_path):
    rc, out, term = _run_on_pty("collect", "-d", "2", "--no-bpf", "-o", str(tmp_path))
    assert rc == 0
    assert "Ctrl-C to stop early and keep what was collected" in term
    # the one-screen summary after the run, on the terminal; stdout still ends with the path
    path = out.strip().splitlines()[-1]
    assert f"  bundle: {path}" in term and f"report {path} -o report.html" in term, term[-2000:]
    assert re.search(r"snapcollect: (CRIT|HIGH|WARN|INFO|no findings): ", term), term[-2000:]
    assert "sampling" in term and "samples" in term and "s left" in term
    for line in term.replace("\r", "\n").splitlines():
        if str(tmp_path) not in line:       # a long output path cannot fit
            assert len(line) <= 80, line
    rc, out, term = _run_on_pty("collect", "-d", "1", "--no-bpf", "-q", "-o", str(tmp_path))
    assert rc == 0 and term.strip() == ""
    # not a terminal (a pipe here): plain lines, the first at once, then every 10 s
    proc = run_cli("collect", "-d", "12", "-i", "1", "--no-bpf", "-o", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr
    plain = [ln for ln in proc.stderr.splitlines() if PROGRESS_LINE.fullmatch(ln) and "/12 s elapsed" in ln]
    assert len(plain) >= 2, proc.stderr
    assert any(ln.startswith("snapcollect: sampling ") for ln in plain), proc.stderr
    proc = run_cli("collect", "-d", "1", "--no-bpf", "-q", "-o", str(tmp_path))
    assert proc.returncode == 0 and "elapsed" not in proc.stderr and "\r" not in proc.stderr


def test_never_overwrites_an_existing_file(tmp_path):
    target = tmp_path / "b.tar.zst"
    target.write_text("precious")
    proc = run_cli("collect", "-d", "1", "-o", str(target))
    assert proc.returncode == 73 and "refusing to overwrite" in proc.stderr
    assert target.read_text() == "precious"
