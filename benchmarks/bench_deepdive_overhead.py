#!/usr/bin/env python3
"""Benchmark: how much the --pid deep dive slows a malloc-heavy program, beside memleak.

    sudo .venv/bin/python benchmarks/bench_deepdive_overhead.py [--rounds 3] [--pairs 200000] [--json out.json]

The workload, a C program, waits for a line on stdin, then makes N
malloc(64)/free pairs and prints the nanoseconds they took (its own
clock: the start-up and the wait for the probes are not counted). Each
round runs it, in random order:

- alone;
- under ``snapcollect collect --pid PID`` (uprobes on the malloc family,
  every page fault, brk/mmap; the workload starts once the collector says
  the probes are attached);
- under ``memleak-bpfcc -p PID`` (bcc's memleak: the same uprobes on
  malloc/free and their returns; started once it prints "Attaching").

It prints, per mode, the median time per pair and the slowdown against
"alone": the median over rounds of each round's ratio, with the lowest
and highest ratio. Not a test: the machine is shared and timings are
noisy; read the spread. The figure the deep dive itself reports (calls x
the per-call cost it measured at the start) is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MALLOC_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    char line[8];
    struct timespec a, b;
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("ready\n");
    if (!fgets(line, sizeof line, stdin)) return 1;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        void *volatile p = malloc(64);
        free(p);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%ld\n", (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec));
    return 0;
}
"""
ATTACH_WAIT_S = 120.0


def build(tmp: str) -> str:
    src, exe = os.path.join(tmp, "mallocs.c"), os.path.join(tmp, "mallocs")
    with open(src, "w") as fh:
        fh.write(MALLOC_C)
    subprocess.run(["gcc", "-O1", "-fno-omit-frame-pointer", "-o", exe, src], check=True)
    return exe


def _wait_for(path: str, text: str, proc: subprocess.Popen) -> None:
    end = time.monotonic() + ATTACH_WAIT_S
    while time.monotonic() < end and proc.poll() is None:
        with open(path, errors="replace") as fh:
            if text in fh.read():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{text!r} never appeared in {path}")


def run_once(exe: str, pairs: int, mode: str, tmp: str) -> tuple[int, float | None]:
    """(ns the pairs took, the deep dive's own overhead figure in s or None)."""
    prog = subprocess.Popen([exe, str(pairs)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert prog.stdout.readline().strip() == "ready"
    tracer, log, out_dir, reported = None, os.path.join(tmp, f"{mode}.log"), tempfile.mkdtemp(dir=tmp), None
    try:
        with open(log, "w") as fh:
            if mode == "deepdive":
                tracer = subprocess.Popen([sys.executable, "-m", "snapcollect", "collect", "-d", "600",
                                           "--pid", str(prog.pid), "-o", out_dir], stdout=subprocess.PIPE,
                                          stderr=fh, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), text=True)
                _wait_for(log, "deep dive attached", tracer)
            elif mode == "memleak":
                tracer = subprocess.Popen(["memleak-bpfcc", "-p", str(prog.pid), "60"], stdout=fh,
                                          stderr=subprocess.STDOUT)
                _wait_for(log, "Attaching", tracer)
                time.sleep(0.5)     # it prints before attaching the probes
        prog.stdin.write("go\n")
        prog.stdin.flush()
        took = int(prog.stdout.readline().strip())
        prog.wait()
    finally:
        if tracer is not None:
            tracer.send_signal(2)     # both finish on SIGINT
            out, _ = tracer.communicate(timeout=120)
            if mode == "deepdive" and out and out.strip():
                from snapcollect.bundle.reader import open_bundle

                reported = (open_bundle(out.strip().splitlines()[-1]).manifest.get("deepdive") or {}).get("overhead_s")
        if prog.poll() is None:
            prog.kill()
    return took, reported


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=200000)
    ap.add_argument("--json", metavar="FILE")
    ns = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    modes = ["alone", "deepdive"] + (["memleak"] if shutil.which("memleak-bpfcc") else [])
    results: dict[str, list[int]] = {m: [] for m in modes}
    reported: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(tmp)
        for r in range(ns.rounds):
            order = modes[:]
            random.shuffle(order)
            for mode in order:
                took, figure = run_once(exe, ns.pairs, mode, tmp)
                results[mode].append(took)
                if figure is not None:
                    reported.append(figure)
            print(f"round {r + 1}: " + ", ".join(f"{m} {results[m][-1] / ns.pairs:.0f} ns/pair" for m in modes),
                  file=sys.stderr)
    summary = {}
    for m in modes:
        ratios = [t / a for t, a in zip(results[m], results["alone"])]
        summary[m] = {"median_ns_per_pair": statistics.median(results[m]) / ns.pairs,
                      "slowdown_median": statistics.median(ratios), "slowdown_low": min(ratios),
                      "slowdown_high": max(ratios)}
        print(f"{m:9s} {summary[m]['median_ns_per_pair']:9.0f} ns/pair   x{summary[m]['slowdown_median']:.1f} "
              f"(x{summary[m]['slowdown_low']:.1f} - x{summary[m]['slowdown_high']:.1f})")
    if reported:
        extra = statistics.median(results["deepdive"]) - statistics.median(results["alone"])
        print(f"the deep dive's own figure (calls x measured cost): median {statistics.median(reported):.3f} s; "
              f"measured here: {extra / 1e9:.3f} s added")
        summary["deepdive"]["reported_overhead_s"] = statistics.median(reported)
    if ns.json:
        with open(ns.json, "w") as fh:
            json.dump({"pairs": ns.pairs, "rounds": ns.rounds, "runs_ns": results, "summary": summary}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
