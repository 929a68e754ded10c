"""The --pid deep dive on this machine, for real, on a program whose allocations are known.

tests/live/programs/alloc_pattern.c, compiled here with gcc (-O1
-fno-omit-frame-pointer), waits for "go" on stdin, then per round
mallocs and frees 100 x 24 B, 10 x 3000 B and 1 x 100000 B, and
leak_here() keeps 4096 B. The test starts it, runs ``snapcollect
--pid``, sends "go" once the collector says the probes are attached, and
checks the bundle and the report: the exact calls and log2 buckets (the
probes do not sample), the leaking stack through leak_here with all its
bytes, the process named in its section; then a process that exits
mid-window, and a static binary (its own malloc is probed).

Runs as root with bcc, kernel headers and tracefs; skipped only when one
of those, or gcc, is genuinely absent, and says which.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from bpf_harness import bpf_missing
from snapcollect.analysis.dataset import load_dataset
from snapcollect.bundle.reader import open_bundle
from snapcollect.report.build import build_report

pytestmark = [pytest.mark.live]

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PROGRAM = os.path.join(HERE, "programs", "alloc_pattern.c")
ROUNDS = 30
PAUSE_MS = 100          # the leak spans 3 s of the window: a trend, not a step
ATTACH_WAIT_S = 90.0    # compiles under load take long

needs_bpf = pytest.mark.skipif(bpf_missing() is not None, reason=f"BPF: {bpf_missing()}")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


def build(tmp_path, static: bool = False) -> str:
    out = str(tmp_path / ("alloc_static" if static else "alloc_pattern"))
    cmd = ["gcc", "-O1", "-fno-omit-frame-pointer", "-o", out, PROGRAM] + (["-static"] if static else [])
    got = subprocess.run(cmd, capture_output=True, text=True)
    if got.returncode != 0 and static and "cannot find -lc" in got.stderr:
        pytest.skip("no static C library (libc.a) for gcc -static")
    assert got.returncode == 0, got.stderr
    return out


def dive(tmp_path, binary: str, *args: str, duration: float = 7.0, by_name: bool = False):
    """Run the program under ``snapcollect --pid``; the bundle's dataset, report and the collector's stderr."""
    prog = subprocess.Popen([binary, str(ROUNDS), *args, str(PAUSE_MS)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert prog.stdout.readline().strip() == "ready"
        err = tmp_path / "collect.err"
        env = dict(os.environ, PYTHONPATH=REPO)
        with open(err, "w") as fh:
            col = subprocess.Popen([sys.executable, "-m", "snapcollect", "collect", "-d", str(duration),
                                    *(["--comm", os.path.basename(binary)] if by_name else ["--pid", str(prog.pid)]),
                                    "-o", str(tmp_path)],
                                   stdout=subprocess.PIPE, stderr=fh, env=env, text=True, cwd=REPO)
        deadline = time.monotonic() + ATTACH_WAIT_S
        while "deep dive attached" not in err.read_text() and col.poll() is None:
            assert time.monotonic() < deadline, err.read_text()
            time.sleep(0.1)
        prog.stdin.write("go\n")
        prog.stdin.flush()
        out, _ = col.communicate(timeout=duration + 120)
        assert col.returncode == 0, err.read_text()
    finally:
        prog.kill()
        prog.wait()
    path = out.strip().splitlines()[-1]
    b = open_bundle(path)
    ds = load_dataset(b)
    report = build_report(b)
    return prog.pid, ds, report, err.read_text()


def section(report, pid: int):
    top = next(s for s in report.sections if s.id == "deepdive")
    return next(s for s in top.subsections if s.id == f"deepdive-{pid}")


def check_known_pattern(ds, pid: int, allocator: str) -> None:
    (t,) = ds.deepdive
    assert t.pid == pid and t.allocator == allocator
    assert {"malloc", "free"} <= set(t.probed), t.not_probed
    # per round: 111 churn mallocs + 1 leak; 111 frees; nothing else in the loop
    assert t.calls["malloc"] == ROUNDS * 112
    assert t.calls["free"] == ROUNDS * 111
    buckets = {(b.low, b.high): b.count for b in t.malloc_sizes}
    assert buckets == {(16, 31): ROUNDS * 100, (2048, 4095): ROUNDS * 10, (4096, 8191): ROUNDS,
                       (65536, 131071): ROUNDS}
    leak = t.outstanding[0]
    assert "leak_here" in leak.frames, leak.frames
    # every leaked block was made after the probes were attached, and is older than 1 s at the end
    assert (leak.bytes, leak.count) == (ROUNDS * 4096, ROUNDS)
    assert t.outstanding_total_bytes == ROUNDS * 4096
    assert any("churn" in stack for stack, _ in t.alloc_bytes)
    assert sum(n for _, n in t.alloc_bytes) == ROUNDS * (100 * 24 + 10 * 3000 + 100000 + 4096)
    cost = ds.manifest["deepdive"]
    assert cost["calibration"]["measured"], cost["calibration"]
    assert cost["calibration"]["per_call_ns"]["two_traps"] > 0
    assert t.overhead_s is not None and t.overhead_s > 0
    assert ds.manifest["deepdive_process"]["peak_rss_kb"] > 0


@needs_bpf
@needs_gcc
def test_known_leak_sizes_and_counts_are_found(tmp_path):
    pid, ds, report, err = dive(tmp_path, build(tmp_path), "stay")
    check_known_pattern(ds, pid, "glibc")
    assert "measuring that cost" in err         # said before the probes went on
    sec = section(report, pid)
    assert sec.title == f"Deep dive: alloc_pattern ({pid})"
    keys = {f.key for f in report.findings}
    assert "LEAKING_ALLOCATION_STACK" in keys
    leak = next(f for f in report.findings if f.key == "LEAKING_ALLOCATION_STACK")
    assert "leak_here" in leak.title and str(pid) in leak.title


@needs_bpf
@needs_gcc
def test_a_process_that_exits_mid_window_keeps_its_symbols(tmp_path):
    pid, ds, report, _ = dive(tmp_path, build(tmp_path), "exit")
    (t,) = ds.deepdive
    assert t.exited_at is not None
    assert t.calls["malloc"] == ROUNDS * 112
    leak = t.outstanding[0]
    assert "leak_here" in leak.frames and leak.bytes == ROUNDS * 4096
    text = " ".join(getattr(b, "text", "") for b in section(report, pid).blocks)
    assert "exited during the window" in text


@needs_bpf
@needs_gcc
def test_a_static_binary_has_its_own_malloc_probed(tmp_path):
    binary = build(tmp_path, static=True)
    pid, ds, report, _ = dive(tmp_path, binary, "stay")
    check_known_pattern(ds, pid, "own")
    (t,) = ds.deepdive
    assert t.probed_file == binary and "statically linked" in t.why


@needs_bpf
@needs_gcc
def test_comm_follows_every_process_of_that_name(tmp_path):
    pid, ds, report, _ = dive(tmp_path, build(tmp_path), "stay", by_name=True)
    check_known_pattern(ds, pid, "glibc")
    assert ds.manifest["deepdive"]["asked"] == {"pids": [], "comms": ["alloc_pattern"]}
