#!/usr/bin/env python3
"""Benchmark: what the collector costs on a host with many processes.

    sudo .venv/bin/python benchmarks/bench_scale.py [--procs 1000,10000] [--duration 30]

For each count N it starts N sleeping processes (a small C program forks
them; each child only waits in pause(), so they cost the host a few pages
each), runs ``snapcollect collect --no-bpf`` for ``--duration`` seconds at
a 1 s interval, and prints:

- the steady cost while sampling: the collector's utime+stime (all its
  threads, from /proc/PID/stat) between 25% and 85% of the window, as a
  share of one core;
- the whole run's cost, ``cpu_s`` from the bundle's manifest (getrusage of
  the collector and the commands it ran: start and end snapshots, top-N
  detail, compression) over the run's wall time;
- the collector's peak RSS and the process pass's spacing as the manifest
  records them (passes are spaced out on a host with many processes).

Targets (issue 12): under 5% of one core with 10,000 processes, under 2%
with 1,000. The sleepers run in their own memory and pids cgroups (v1 or
v2), named after this script's pid, which are removed at the end. Not a
test: the machine is shared; run it on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from snapcollect.bundle import open_bundle  # noqa: E402

TICKS_PER_S = os.sysconf("SC_CLK_TCK")

# Forks N children that wait in pause(); prints "ready" when all exist;
# kills them all when stdin closes. PR_SET_PDEATHSIG: a parent killed by
# anything takes its children with it.
SLEEPERS_C = r"""
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    pid_t *kids = calloc(n, sizeof *kids);
    pid_t parent = getpid();
    for (long i = 0; i < n; i++) {
        pid_t p = fork();
        if (p < 0) { perror("fork"); n = i; break; }
        if (p == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(0);
            for (;;) pause();
        }
        kids[i] = p;
    }
    printf("ready %ld\n", n);
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {}
    for (long i = 0; i < n; i++) kill(kids[i], SIGKILL);
    while (wait(NULL) > 0) {}
    return 0;
}
"""


class Cgroups:
    """A memory and a pids cgroup for the sleepers, v1 or v2."""

    def __init__(self, name: str, n: int):
        self.dirs: list[str] = []
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            d = f"/sys/fs/cgroup/{name}"
            os.mkdir(d)
            self.dirs.append(d)
            self._write(d, "memory.max", str(4 << 30))
            self._write(d, "pids.max", str(n + 16))
        else:
            for ctl, key, value in (("memory", "memory.limit_in_bytes", str(4 << 30)),
                                    ("pids", "pids.max", str(n + 16))):
                d = f"/sys/fs/cgroup/{ctl}/{name}"
                if os.path.isdir(os.path.dirname(d)):
                    os.mkdir(d)
                    self.dirs.append(d)
                    self._write(d, key, value)

    @staticmethod
    def _write(d: str, key: str, value: str) -> None:
        with open(os.path.join(d, key), "w") as fh:
            fh.write(value)

    def enter(self) -> None:
        """Move the calling process (a child before exec) in."""
        for d in self.dirs:
            self._write(d, "cgroup.procs", str(os.getpid()))

    def remove(self) -> None:
        for d in self.dirs:
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.1)


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        rest = fh.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])       # utime, stime: fields 14 and 15


def one(n: int, duration: float, workdir: str, sleepers: str) -> dict:
    name = f"snapcollect-portable-bench-{os.getpid()}-{n}"
    cg = Cgroups(name, n)
    kids = subprocess.Popen([sleepers, str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            preexec_fn=cg.enter, start_new_session=True)
    try:
        ready = kids.stdout.readline().split()
        assert ready and ready[0] == "ready", ready
        started = int(ready[1])
        listed = sum(1 for e in os.listdir("/proc") if e.isdigit())
        out = os.path.join(workdir, f"n{n}")
        os.mkdir(out)
        t0 = time.monotonic()
        coll = subprocess.Popen([sys.executable, "-m", "snapcollect", "collect", "-d", f"{duration:g}",
                                 "-i", "1", "--no-bpf", "-q", "-o", out], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        # The window opens after the start snapshot (a second or two).
        a_at, b_at = t0 + 2 + 0.25 * duration, t0 + 2 + 0.85 * duration
        time.sleep(max(0.0, a_at - time.monotonic()))
        a_t, a_cpu = time.monotonic(), cpu_ticks(coll.pid)
        time.sleep(max(0.0, b_at - time.monotonic()))
        b_t, b_cpu = time.monotonic(), cpu_ticks(coll.pid)
        stdout, stderr = coll.communicate(timeout=duration + 60)
        wall = time.monotonic() - t0
        assert coll.returncode == 0, stderr
        m = open_bundle(stdout.strip().splitlines()[-1]).manifest
    finally:
        kids.stdin.close()
        kids.wait(timeout=120)
        cg.remove()
    steady = (b_cpu - a_cpu) / TICKS_PER_S / (b_t - a_t)
    return {"procs_started": started, "pids_listed": listed, "steady_core_pct": round(100 * steady, 2),
            "run_cpu_s": m.get("cpu_s"), "run_wall_s": round(wall, 1),
            "run_core_pct": round(100 * m["cpu_s"] / wall, 2) if m.get("cpu_s") is not None else None,
            "samples": m.get("ticks"), "peak_rss_kb": m.get("peak_rss_kb"), "procs_pass": m.get("procs_pass")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", default="1000,10000", help="comma-separated process counts")
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--json", action="store_true", help="print one JSON object per count")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_scale: needs root (cgroups for the sleepers)", file=sys.stderr)
        return 1
    if shutil.which("gcc") is None:
        print("bench_scale: needs gcc (Debian package gcc)", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with tempfile.TemporaryDirectory(prefix=f"snapcollect-portable-bench-{os.getpid()}-") as tmp:
        sleepers = os.path.join(tmp, "sleepers")
        with open(sleepers + ".c", "w") as fh:
            fh.write(SLEEPERS_C)
        subprocess.run(["gcc", "-O2", "-o", sleepers, sleepers + ".c"], check=True)
        if not args.json:
            print(f"{'processes':>9}  {'steady % core':>13}  {'run CPU s':>9}  {'run wall s':>10}  "
                  f"{'run % core':>10}  samples  peak RSS kB  process pass")
        for n in (int(x) for x in args.procs.split(",")):
            r = one(n, args.duration, tmp, sleepers)
            if args.json:
                print(json.dumps({"n": n, **r}))
            else:
                pp = r["procs_pass"] or {}
                print(f"{r['pids_listed']:>9}  {r['steady_core_pct']:>13}  {str(r['run_cpu_s']):>9}  "
                      f"{r['run_wall_s']:>10}  {str(r['run_core_pct']):>10}  {str(r['samples']):>7}  {str(r['peak_rss_kb']):>11}  "
                      f"{json.dumps(pp) if pp else '-'}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
