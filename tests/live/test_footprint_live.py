"""The collector's footprint on this host, for real.

- Inside a 64 MiB cgroup v1 memory group the collector sees that a BPF
  compile (~140 MB) would not fit, collects without BPF, says why, and
  the bundle has every sample.
- Peak RSS: at most 32 MB without BPF, 64 MB with BPF for the collector
  and for its BPF reader; the compile runs in a short-lived loader whose
  peak is recorded apart. Nothing that lives through the window imports
  bcc.
- The collector and its BPF process are the OOM killer's first choice
  and run at low CPU and I/O priority.
- A SIGKILL of the real BPF process in the middle of the window costs
  the BPF artifacts it had not written, not the bundle.

Cgroups are named after the branch and the pid, so parallel runs never
collide.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bpf_harness import bpf_missing
from snapcollect.bundle import open_bundle

pytestmark = pytest.mark.live

MEMCG_V1 = "/sys/fs/cgroup/memory"
CLI = [sys.executable, "-m", "snapcollect", "collect"]
NO_BPF_PEAK_KB = 32 * 1024
BPF_PEAK_KB = 64 * 1024
# The bounds hold for hosts of up to this many processes: the process pass
# holds one tick of every process's text (6.9 MB with 10,000 processes
# here, 46 MB peak), which is the process pass's own budget to keep.
BOUND_PROCESSES = 1000


def _processes() -> int:
    return sum(1 for d in os.listdir("/proc") if d.isdigit())


def assert_peak(peak_kb: int, bound_kb: int, processes: int) -> None:
    if processes <= BOUND_PROCESSES:
        assert peak_kb <= bound_kb, f"peak RSS {peak_kb} kB over {bound_kb} kB with {processes} processes"




needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: memory cgroups, oom_score_adj")
needs_bpf = pytest.mark.skipif(bpf_missing() is not None, reason=f"BPF: {bpf_missing()}")
needs_memcg_v1 = pytest.mark.skipif(not os.path.exists(os.path.join(MEMCG_V1, "memory.limit_in_bytes")),
                                    reason="no cgroup v1 memory controller at /sys/fs/cgroup/memory")


@pytest.fixture
def memcg_64m():
    path = os.path.join(MEMCG_V1, f"snapcollect-footprint-{os.getpid()}")
    os.mkdir(path)
    with open(os.path.join(path, "memory.limit_in_bytes"), "w") as fh:
        fh.write(str(64 << 20))
    yield path
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except OSError:       # a process still exiting
            time.sleep(0.1)


def _collect(out_dir, *extra, cgroup: str | None = None, timeout: float = 120) -> tuple[object, str]:
    cmd = CLI + ["-o", str(out_dir), *extra]
    if cgroup:
        # join the group first, then become the collector: all of it is charged there
        cmd = ["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return open_bundle(done.stdout.strip().splitlines()[-1]), done.stderr


def _oom_kills(cgroup: str) -> int:
    with open(os.path.join(cgroup, "memory.oom_control")) as fh:
        for line in fh:
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    return 0


@needs_root
@needs_memcg_v1
def test_collection_in_a_64mib_memory_cgroup_completes_without_bpf(tmp_path, memcg_64m):
    n = _processes()
    b, _ = _collect(tmp_path, "-d", "4", "-i", "1", "-q", cgroup=memcg_64m)
    m = b.manifest
    assert b.complete and m["stopped_by"] == "deadline"
    assert m["ticks"] == 5 and m["skipped_ticks"] == 0
    assert m["bpf"]["enabled"] is False
    name = os.path.basename(memcg_64m)
    assert f"left under cgroup v1 /{name} limit" in m["bpf"]["reason"], m["bpf"]["reason"]
    assert "bpf_process" not in m and "opened_late_s" not in m["window"]
    # what was left out, and on what figure
    assert m["degraded"]["bpf"] == m["bpf"]["reason"]
    assert f"left under cgroup v1 /{name} limit" in m["degraded"]["detail"]
    assert len(json.loads(b.data("procs/top"))) <= 3 < m["top_n"]
    assert_peak(m["peak_rss_kb"], NO_BPF_PEAK_KB, max(n, _processes()))
    assert _oom_kills(memcg_64m) == 0
    assert b.status("series/procs")[0] == "ok" and b.status("proc/meminfo@end")[0] == "ok"


@needs_root
def test_peak_rss_without_bpf_and_priorities(tmp_path):
    n = _processes()
    b, _ = _collect(tmp_path, "-d", "2", "-q", "--no-bpf")
    m = b.manifest
    assert_peak(m["peak_rss_kb"], NO_BPF_PEAK_KB, max(n, _processes()))
    assert m["priority"]["oom_score_adj"] == 1000 and m["priority"]["nice"] >= 10
    assert m["priority"]["ioprio"] == "best-effort 7" and "errors" not in m["priority"]


def _bpf_child(collector_pid: int, timeout_s: float = 60) -> int:
    """The pid of the collector's BPF process, once it runs."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        for task in os.listdir(f"/proc/{collector_pid}/task"):
            try:
                with open(f"/proc/{collector_pid}/task/{task}/children") as fh:
                    kids = [int(p) for p in fh.read().split()]
            except OSError:
                continue
            for kid in kids:
                try:
                    with open(f"/proc/{kid}/cmdline", "rb") as fh:
                        if b"snapcollect.collect.bpf.child" in fh.read():
                            return kid
                except OSError:
                    pass
        time.sleep(0.05)
    raise AssertionError("no BPF process appeared")


@needs_bpf
@pytest.mark.bpf
def _holds_bpf_program(pid: int) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:bpf-prog":
                return True
        except OSError:
            pass
    return False


def test_peak_rss_with_bpf_and_a_killed_bpf_process_keeps_the_bundle(tmp_path):
    # an undisturbed run: the collector's own peak, and the BPF process's beside it
    n = _processes()
    os.makedirs(tmp_path / "a")
    b, _ = _collect(tmp_path / "a", "-d", "2", "-q")
    m = b.manifest
    assert m["bpf"]["enabled"] is True and m["bpf"]["start_s"] > 0
    assert_peak(m["peak_rss_kb"], BPF_PEAK_KB, max(n, _processes()))
    # the compile's cost is the loader's, a process that exits before the window
    assert m["bpf"]["loader"]["peak_rss_kb"] > m["bpf_process"]["peak_rss_kb"]
    assert m["bpf"]["loader"]["exit"] == "exited with status 0"
    assert m["bpf"]["process"] == m["bpf_process"] and m["bpf_process"]["exit"] == "exited with status 0"

    # the same, with the BPF process SIGKILLed in the window (as the OOM killer would)
    os.makedirs(tmp_path / "b")
    proc = subprocess.Popen(CLI + ["-o", str(tmp_path / "b"), "-d", "5", "-i", "1", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        kid = _bpf_child(proc.pid)
        with open(f"/proc/{kid}/oom_score_adj") as fh:
            assert int(fh.read()) == 1000
        # killed once its programs are loaded (the window is open then): a
        # kill during the compile is another path (BPF never started)
        end = time.monotonic() + 120
        while not _holds_bpf_program(kid) and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.05)
        assert _holds_bpf_program(kid), "the BPF process never loaded its programs"
        time.sleep(1.0)
        os.kill(kid, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    b = open_bundle(out.strip().splitlines()[-1])
    m = b.manifest
    assert m["ticks"] == 6 and m["stopped_by"] == "deadline"
    assert m["bpf_process"]["pid"] == kid and m["bpf_process"]["exit"] == "killed by SIGKILL"
    assert "killed by SIGKILL" in m["bpf"]["error"]
    assert b.status("bpf/fault_stacks.json")[0] == "missing"
    assert b.status("series/procs")[0] == "ok" and b.status("proc/meminfo@end")[0] == "ok"
    assert kid in m["collector_pids"]


@needs_bpf
@pytest.mark.bpf
def test_ctrl_c_at_the_terminal_keeps_the_bpf_artifacts(tmp_path):
    # a terminal's Ctrl-C goes to the whole foreground process group
    proc = subprocess.Popen(CLI + ["-o", str(tmp_path), "-d", "30", "-q"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        kid = _bpf_child(proc.pid)
        # once the programs are handed over (the window opens then), not
        # after a fixed time: a compile under load takes longer
        end = time.monotonic() + 120
        while not _holds_bpf_program(kid) and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(2.0)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    b = open_bundle(out.strip().splitlines()[-1])
    m = b.manifest
    assert m["stopped_by"] == "signal" and m["ticks"] >= 1
    assert m["bpf_process"]["exit"] == "exited with status 0", m["bpf"]
    assert "error" not in m["bpf"] and b.status("bpf/fault_stacks.json")[0] == "ok"


FAULTS_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#define SZ (32L << 20)
/* a loop, not memset: libc keeps no frame pointers, and the unwinder
 * would skip the caller of a libc leaf */
__attribute__((noinline)) void sc_footprint_touch(volatile char *p) {
    for (long i = 0; i < SZ; i += 4096) p[i] = 1;
}
int main(int argc, char **argv) {
    for (long r = 0; r < atol(argv[1]); r++) {
        char *p = mmap(0, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return 1;
        sc_footprint_touch(p);
        munmap(p, SZ);
    }
    printf("done\n");
    fflush(stdout);
    char buf[8];
    fgets(buf, sizeof buf, stdin);
    return 0;
}
"""


@needs_root
@needs_bpf
@pytest.mark.bpf
@pytest.mark.skipif(subprocess.run(["which", "gcc"], capture_output=True).returncode != 0, reason="no gcc")
def test_with_bpf_and_faults_the_reader_and_collector_stay_under_64mb(tmp_path):
    """A collection with BPF on and a fault-heavy program: the collector's
    and the BPF reader's peaks within 64 MB, the loader's recorded apart,
    the faults sampled and their stacks named."""
    from bpf_harness import compile_c

    exe = compile_c(FAULTS_C, str(tmp_path / "sc-footprint"))
    n = _processes()
    out = tmp_path / "out"
    os.makedirs(out)
    collector = subprocess.Popen(CLI + ["-o", str(out), "-d", "6", "-i", "1", "-q"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker = None
    try:
        kid = _bpf_child(collector.pid)
        end = time.monotonic() + 120
        while not _holds_bpf_program(kid) and time.monotonic() < end and collector.poll() is None:
            time.sleep(0.05)
        time.sleep(0.5)
        # 96 x 32 MiB of fresh pages, then alive until the collection is over
        worker = subprocess.Popen([exe, "96"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert worker.stdout.readline().strip() == "done"
        got, err = collector.communicate(timeout=120)
    finally:
        if collector.poll() is None:
            collector.kill()
            collector.wait()
        if worker is not None and worker.poll() is None:
            worker.communicate("x\n", timeout=10)
    assert collector.returncode == 0, err
    b = open_bundle(got.strip().splitlines()[-1])
    m = b.manifest
    assert m["bpf"]["enabled"] is True, m["bpf"]
    assert_peak(m["peak_rss_kb"], BPF_PEAK_KB, max(n, _processes()))
    assert_peak(m["bpf_process"]["peak_rss_kb"], BPF_PEAK_KB, max(n, _processes()))
    assert m["bpf"]["reader_peak_rss_kb"] == m["bpf_process"]["peak_rss_kb"]
    assert m["bpf"]["loader"]["peak_rss_kb"] > 0 and m["bpf"]["loader"]["cpu_s"] > 0
    folded = b.text("bpf/fault_stacks.folded").splitlines()
    mine = [ln for ln in folded if ln.startswith("sc-footprint;")]
    assert any(";sc_footprint_touch" in ln for ln in mine), mine[:5]
