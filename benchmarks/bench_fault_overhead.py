#!/usr/bin/env python3
"""Benchmark: how much snapcollect slows a fault-heavy and a syscall-heavy program.

    sudo .venv/bin/python benchmarks/bench_fault_overhead.py [--rounds 5] [--json out.json]

Two workloads, C programs pinned to the last CPU, fixed work per run:

- fault-heavy: touches fresh anonymous pages (mmap 64 MiB, write one
  byte per page, munmap; repeated), one user page fault per page, ~3 us
  each;
- syscall-heavy: N getppid() calls (default 3,000,000), ~0.1 us each: what
  any syscall tracepoint costs, since it puts every task's syscalls on the
  kernel's slow path.

Each runs, in random order in every round:

- alone, twice (the second run's "slowdown" is the noise of the machine);
- under ``snapcollect collect`` as a user starts it (the default: BPF
  programs in their process, the page-fault stacks sampled 1 in 128 by the
  perf software event, the /proc pass every second), started before the
  run and stopped after it; the workload starts once the BPF programs are
  attached;
- under ``snapcollect collect --heap-trace`` (adds the brk/mmap syscall
  tracepoints with user stacks: the opt-in);
- under ``snapcollect collect --no-bpf`` (the /proc and sysfs sampling only);
- under ``snapcollect collect --no-delayacct`` (the default but for delay
  accounting: ``kernel.task_delayacct`` left off, so the kernel keeps no
  timestamps around the swap-in, reclaim, block I/O and compaction waits
  of the tasks forked in the window, the workload among them);
- under ``perf record -e page-faults -g -a`` (every fault, with stacks);
- under ``stackcount-bpfcc -U t:exceptions:page_fault_user``;
- under sadc (sysstat's collector behind sar) at a 1 s interval, ``-S XALL``.

For each it prints the median wall and CPU time (user + sys of the
workload) and the slowdown against "alone": the median, over rounds, of
each round's ratio to that round's run alone (load drifts cancel out),
with the spread (lowest and highest ratio). Target (issue 12): the
default slows both workloads by under 2 %. Not a test: the machine is
shared and timings are noisy; read the spread.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FAULTS_C = r"""
#include <stdlib.h>
#include <sys/mman.h>
#define SZ (64L << 20)
__attribute__((noinline)) void touch(volatile char *p) { for (long i = 0; i < SZ; i += 4096) p[i] = 1; }
int main(int argc, char **argv) {
    long rounds = atol(argv[1]);
    for (long r = 0; r < rounds; r++) {
        char *p = mmap(0, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return 1;
        touch(p);
        munmap(p, SZ);
    }
    return 0;
}
"""

SYSCALLS_C = r"""
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    for (long i = 0; i < n; i++) getppid();
    return 0;
}
"""


def build(src: str, path: str) -> str:
    with open(path + ".c", "w") as fh:
        fh.write(src)
    subprocess.run(["gcc", "-O2", "-fno-omit-frame-pointer", "-o", path, path + ".c"], check=True)
    return path


PIN_CPU = (os.cpu_count() or 1) - 1


def run_workload(argv: list[str]) -> tuple[float, float]:
    """(wall s, user+sys CPU s) of one run, pinned to one CPU (less noise
    from the scheduler moving it; the tracers run on every CPU)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, preexec_fn=lambda: os.sched_setaffinity(0, {PIN_CPU}))
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited {proc.returncode}")
    return wall, ru.ru_utime + ru.ru_stime


class Alone:
    name = "alone"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def _perf_fds(pid: int) -> int:
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[perf_event]":
                    n += 1
            except OSError:
                pass
    except OSError:
        pass
    return n


def _child_running(pid: int, module: bytes) -> int | None:
    """A child of ``pid`` (any of its threads) running ``python -m <module>``, or None."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                kids = [int(p) for p in fh.read().split()]
        except OSError:
            continue
        for kid in kids:
            try:
                with open(f"/proc/{kid}/cmdline", "rb") as fh:
                    if module in fh.read():
                        return kid
            except OSError:
                pass
    return None


def _bpf_process(collector_pid: int) -> int | None:
    return _child_running(collector_pid, b"snapcollect.collect.bpf.child")


def _has_loader(pid: int) -> bool:
    """The BPF process still has its loader child (compiling or attaching)."""
    return _child_running(pid, b"snapcollect.collect.bpf.loader") is not None


class Collector:
    """``snapcollect collect`` as a user runs it, from before the workload to after it."""

    def __init__(self, name: str, extra: list[str]):
        self.name, self.extra = name, extra
        self.bpf = "--no-bpf" not in extra
        self.costs: list[dict] = []

    def _wait_attached(self, timeout_s: float = 90.0) -> None:
        """Until the BPF process holds perf events and its loader has exited (the handoff is
        done). Not "a steady count": the fault sampler's duty cycle opens and closes its
        events every 0.5 s."""
        end = time.monotonic() + timeout_s
        ready_since = None
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: the collector exited: {self.proc.stderr.read()[-300:]}")
            kid = _bpf_process(self.proc.pid)
            ready = bool(kid) and _perf_fds(kid) > 0 and not _has_loader(kid)
            if not ready:
                ready_since = None
            elif ready_since is None:
                ready_since = time.monotonic()
            elif time.monotonic() - ready_since >= 0.3:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: BPF did not attach within {timeout_s:g} s")

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="snapcollect-bench-collect-")
        self.proc = subprocess.Popen([sys.executable, "-m", "snapcollect", "collect", "-d", "3600", "-q",
                                      "-o", self.dir, *self.extra], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        if self.bpf:
            self._wait_attached()
        time.sleep(1.0)          # the window is open and the /proc pass ticking
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=60)
            from snapcollect.bundle import open_bundle

            m = open_bundle(out.strip().splitlines()[-1]).manifest
            self.costs.append({k: m.get(k) for k in ("cpu_s", "cpu_self_s", "peak_rss_kb", "bpf_process")})
        except (subprocess.TimeoutExpired, IndexError, OSError, ValueError):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Tool:
    """An external tracer running system-wide for the duration of one run."""

    def __init__(self, name: str, argv: list[str], ready: str | None, settle_s: float = 1.0):
        self.name, self.argv, self.ready, self.settle_s = name, argv, ready, settle_s

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="sc-bench-tool-")
        self.proc = subprocess.Popen(self.argv, cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        if self.ready:
            for line in self.proc.stdout:
                if self.ready in line:
                    break
            else:
                raise RuntimeError(f"{self.name} did not start")
            threading.Thread(target=self.proc.stdout.read, daemon=True).start()   # keep the pipe drained
        else:
            threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        time.sleep(self.settle_s)
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited early ({self.proc.returncode})")
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def perf_binary() -> str | None:
    # Debian's /usr/bin/perf is a wrapper that looks for perf_<kernel>;
    # the versioned binary works on a newer kernel too.
    for cand in sorted(glob_perf(), reverse=True) + ["perf"]:
        path = shutil.which(cand)
        if path and subprocess.run([path, "--version"], capture_output=True).returncode == 0:
            return path
    return None


def glob_perf() -> list[str]:
    return [n for n in os.listdir("/usr/bin") if n.startswith("perf_")] if os.path.isdir("/usr/bin") else []


SADC = "/usr/lib/sysstat/sadc"


class AloneAgain(Alone):
    """A second run alone in every round: how far two identical runs differ here (the noise)."""

    name = "alone, again (noise)"


def configs(heap_trace: bool = True, no_bpf: bool = True, no_delayacct: bool = True,
            tools: bool = True) -> list:
    out = [Alone(), AloneAgain(), Collector("snapcollect default", [])]
    if heap_trace:
        out.append(Collector("snapcollect --heap-trace", ["--heap-trace"]))
    if no_bpf:
        out.append(Collector("snapcollect --no-bpf", ["--no-bpf"]))
    if no_delayacct:
        out.append(Collector("snapcollect --no-delayacct", ["--no-delayacct"]))
    if not tools:
        return out
    perf = perf_binary()
    if perf:
        out.append(Tool("perf record -e page-faults -g -a",
                        [perf, "record", "-q", "-e", "page-faults", "-g", "-a", "-o", "perf.data"], None,
                        settle_s=1.5))
    else:
        print("perf not found: install linux-perf", file=sys.stderr)
    stackcount = shutil.which("stackcount-bpfcc") or shutil.which("stackcount")
    if stackcount:
        out.append(Tool("stackcount -U t:exceptions:page_fault_user",
                        [stackcount, "-U", "t:exceptions:page_fault_user"], "Tracing", settle_s=0.5))
    else:
        print("stackcount-bpfcc not found: install bpfcc-tools", file=sys.stderr)
    if os.access(SADC, os.X_OK):
        out.append(Tool("sadc -S XALL 1 (sar)", [SADC, "-S", "XALL", "1", "sa.data"], None, settle_s=1.0))
    else:
        print(f"{SADC} not found: install sysstat", file=sys.stderr)
    return out


def measure(argv: list[str], cfgs: list, rounds: int) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {c.name: [] for c in cfgs}
    for r in range(rounds):
        order = cfgs[:]
        random.shuffle(order)
        for cfg in order:
            with cfg:
                results[cfg.name].append(run_workload(argv))
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr)
    return results


def _paired(runs, base, i) -> float:
    """Median over rounds of (this run / the same round's run alone) - 1:
    drifts of the machine's load cancel out."""
    return 100 * (statistics.median(r[i] / b[i] for r, b in zip(runs, base)) - 1)


def _ratios(runs, base, i) -> list[float]:
    return [100 * (r[i] / b[i] - 1) for r, b in zip(runs, base)]


def summarise(results: dict[str, list[tuple[float, float]]]) -> list[dict]:
    """Per configuration: medians, and the slowdown's median and spread over rounds."""
    base = results["alone"]
    rows = []
    for name, runs in results.items():
        wall, cpu = _ratios(runs, base, 0), _ratios(runs, base, 1)
        rows.append({"configuration": name, "rounds": len(runs),
                     "wall_s": statistics.median(w for w, _ in runs),
                     "cpu_s": statistics.median(c for _, c in runs),
                     "wall_pct": statistics.median(wall), "wall_pct_min": min(wall), "wall_pct_max": max(wall),
                     "cpu_pct": statistics.median(cpu), "cpu_pct_min": min(cpu), "cpu_pct_max": max(cpu)})
    return rows


def report(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'configuration':<40} {'wall s':>7} {'slower (spread)':>22} {'cpu s':>7} {'slower':>7}")
    for r in rows:
        spread = f"{r['wall_pct']:+.1f}% ({r['wall_pct_min']:+.1f}..{r['wall_pct_max']:+.1f})"
        print(f"{r['configuration'][:40]:<40} {r['wall_s']:7.3f} {spread:>22} {r['cpu_s']:7.3f} "
              f"{r['cpu_pct']:+6.1f}%")
    print("(medians over the rounds; slower: median of each round's ratio to the run alone, "
          "spread: lowest..highest)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pages", type=int, default=262144, help="pages touched per run (default 262144 = 1 GiB)")
    ap.add_argument("--syscalls", type=int, default=3_000_000, metavar="N",
                    help="getppid() calls per run of the syscall-heavy workload (0 to skip it)")
    ap.add_argument("--no-heap-trace", action="store_true", help="skip the --heap-trace runs")
    ap.add_argument("--no-no-bpf", action="store_true", help="skip the --no-bpf runs")
    ap.add_argument("--no-no-delayacct", action="store_true", help="skip the --no-delayacct runs")
    ap.add_argument("--no-tools", action="store_true", help="skip perf, stackcount and sadc (snapcollect only)")
    ap.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_fault_overhead: needs root (BPF, perf -a)", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="snapcollect-bench-bin-")
    doc = {"rounds": args.rounds, "workloads": []}
    try:
        workloads = []
        faults = build(FAULTS_C, os.path.join(tmp, "faults"))
        rounds_arg = str(max(1, args.pages // 16384))
        workloads.append((f"fault-heavy ({int(rounds_arg) * 16384:,} user page faults per run)",
                          [faults, rounds_arg]))
        if args.syscalls:
            workloads.append((f"syscall-heavy ({args.syscalls:,} getppid() per run)",
                              [build(SYSCALLS_C, os.path.join(tmp, "syscalls")), str(args.syscalls)]))
        cfgs = configs(not args.no_heap_trace, not args.no_no_bpf, not args.no_no_delayacct, not args.no_tools)
        for title, argv in workloads:
            print(f"{title}: {args.rounds} rounds", file=sys.stderr)
            rows = summarise(measure(argv, cfgs, args.rounds))
            report(f"{title}, {args.rounds} rounds:", rows)
            doc["workloads"].append({"workload": title, "rows": rows})
        doc["collector_costs"] = {c.name: c.costs for c in cfgs if isinstance(c, Collector)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
