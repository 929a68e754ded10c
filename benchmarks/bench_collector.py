#!/usr/bin/env python3
"""Benchmark: what a collection costs the host, on an idle and on a busy host.

    sudo .venv/bin/python benchmarks/bench_collector.py [--duration 60] [--json out.json]

Runs ``snapcollect collect -d D`` (default 60 s, interval 1 s) as a user
would, with BPF and with ``--no-bpf``, first on the host as it is
("idle": nothing started by the benchmark), then while the benchmark
keeps the host busy: a C program faulting in fresh pages in a loop on one
CPU, another allocating and freeing 256 MiB in a loop, and 300 sleeping
processes (the per-process pass reads every one of them each second).

From each bundle's manifest: CPU seconds of the collector (``cpu_self_s``)
and with the commands and the BPF process it ran (``cpu_s``), the
collector's peak RSS and the BPF process's, the wall time beyond the
requested window (``wall_s`` - D; it includes the BPF start, which the
window waits for), and the bundle's size, per minute of window. Not a
test: the machine is shared; the load is printed beside the figures.
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

FAULT_LOOP_C = r"""
#include <sys/mman.h>
#define SZ (64L << 20)
int main(void) {
    for (;;) {
        char *p = mmap(0, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return 1;
        for (long i = 0; i < SZ; i += 4096) ((volatile char *)p)[i] = 1;
        munmap(p, SZ);
    }
}
"""

CHURN_PY = """
import time
while True:
    b = bytearray(256 << 20)
    for i in range(0, len(b), 4096):
        b[i] = 1
    del b
    time.sleep(0.2)
"""


def loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


class Busy:
    """The busy host: started by us in a session of its own, ended by its process group."""

    def __init__(self, workdir: str, sleepers: int = 300):
        self.workdir, self.sleepers = workdir, sleepers
        self.procs: list[subprocess.Popen] = []

    def __enter__(self):
        src = os.path.join(self.workdir, "faultloop.c")
        with open(src, "w") as fh:
            fh.write(FAULT_LOOP_C)
        exe = os.path.join(self.workdir, "snapcollect-bench-faultloop")
        subprocess.run(["gcc", "-O2", "-o", exe, src], check=True)
        self.procs.append(subprocess.Popen([exe], start_new_session=True))
        self.procs.append(subprocess.Popen([sys.executable, "-c", CHURN_PY], start_new_session=True))
        self.procs.append(subprocess.Popen(
            ["sh", "-c", f"for i in $(seq {self.sleepers}); do sleep 3600 & done; wait"],
            start_new_session=True))
        time.sleep(2.0)
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def collect(duration: float, out_dir: str, extra: list[str]) -> dict:
    t = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "snapcollect", "collect", "-d", f"{duration:g}", "-q",
                           "-o", out_dir, *extra], cwd=ROOT, capture_output=True, text=True, check=True)
    wall_outside = time.monotonic() - t
    path = done.stdout.strip().splitlines()[-1]
    m = open_bundle(path).manifest
    size = os.path.getsize(path)
    bpf = m.get("bpf") or {}
    return {
        "bpf": bool(bpf.get("enabled")), "bpf_reason": bpf.get("reason"),
        "ticks": m.get("ticks"), "skipped_ticks": m.get("skipped_ticks"),
        "cpu_s": m.get("cpu_s"), "cpu_self_s": m.get("cpu_self_s"),
        "cpu_pct_of_core": round(100 * (m.get("cpu_s") or 0) / m["wall_s"], 2),
        "peak_rss_kb": m.get("peak_rss_kb"),
        "bpf_process": m.get("bpf_process"),
        "bpf_start_s": bpf.get("start_s"), "compile_s": bpf.get("compile_s"),
        "wall_s": m.get("wall_s"), "wall_outside_s": round(wall_outside, 3),
        "overrun_s": round(m["wall_s"] - duration, 3),
        "bundle_bytes": size, "bundle_bytes_per_min": int(size * 60 / duration),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--sleepers", type=int, default=300)
    ap.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_collector: needs root (BPF, the whole of /proc)", file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="snapcollect-bench-collector-")
    rows = []
    try:
        for host in ("idle", "busy"):
            ctx = Busy(work, args.sleepers) if host == "busy" else None
            if ctx:
                ctx.__enter__()
            try:
                for label, extra in (("BPF (default)", []), ("--no-bpf", ["--no-bpf"])):
                    before = loadavg()
                    r = collect(args.duration, work, extra)
                    r.update(host=host, configuration=label, load_before=before, load_after=loadavg())
                    rows.append(r)
                    print(f"{host:<5} {label:<14} cpu {r['cpu_s']:.2f} s ({r['cpu_pct_of_core']:.1f}% of a core), "
                          f"self {r['cpu_self_s']:.2f} s, peak RSS {r['peak_rss_kb'] // 1024} MiB"
                          + (f", BPF process {r['bpf_process']['peak_rss_kb'] // 1024} MiB"
                             if r.get("bpf_process") else "")
                          + f", overrun {r['overrun_s']:.2f} s, {r['bundle_bytes_per_min'] / 1e6:.2f} MB/min "
                          f"(load {before} -> {r['load_after']})", flush=True)
            finally:
                if ctx:
                    ctx.__exit__(None, None, None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"duration_s": args.duration, "sleepers": args.sleepers, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
