#!/usr/bin/env python3
"""Benchmark: RSS and time of ``show`` and ``report`` on the worst bundles the reader meets.

    .venv/bin/python benchmarks/bench_hostile_bundles.py [--only NAME] [--keep]

Each case is built in a private temporary directory (small files: the
big members are zstd RLE blocks), then ``snapcollect show`` and
``snapcollect report -f md`` / ``-f json`` run on it in a child process;
the table gives the child's peak RSS (wait4's ru_maxrss; the bundles are
built in other children, since a child's peak starts from its parent's
at fork) and wall time,
and the exit status (2: refused with a one-line error). Target (issue
10): under 512 MB and 30 s for any input. Cases:

- bomb-1g: a 1 GiB member in a ~40 KB bundle (refused at the member cap);
- manifest-10g: a tar header declaring a 10 GiB manifest;
- members-1m: 1,000,000 empty members (refused at the member cap);
- members-200k: 200,000 empty data members plus a real bundle (each member costs a 512-byte
  header, so the 128 MiB total cap stops a bundle before 262,144 members);
- member-32m: a 32 MiB /proc/meminfo snapshot (the largest member the caps let in), resealed;
- files-120m: four 30 MiB snapshots the report parses (meminfo, vmstat at start and end), resealed;
- ticks-128m: a real bundle whose ticks carry 125 MiB of plausible procs text, resealed;
- records-210k: 210,000 BPF reclaim records (the collector's own cap), resealed;
- json-4m: OOM-kill records whose kernel stacks hold 3,900,000 short strings in all, resealed;
- manifest-200k: a manifest holding just under its 200,000 JSON values in a field of its own.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

import zstandard

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "unit"))
import hostile_bundles as hb  # noqa: E402

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "bundles", "memcg-swap-6.18.tar.zst")
MIB = 1024 * 1024


class Writer:
    """A bundle written member by member through one zstd stream."""

    def __init__(self, path: str):
        self._fh = open(path, "wb")
        self._z = zstandard.ZstdCompressor(level=1).stream_writer(self._fh)

    def member(self, name: str, data: bytes) -> None:
        self._z.write(hb.tar_member(name, data))

    def close(self) -> None:
        self._z.write(hb.tar_end())
        self._z.close()


def _real():
    return hb.members_of(FIXTURE)


def _final(members, edit):
    """The real bundle's final manifest with ``edit`` applied."""
    m = json.loads([d for n, d in members if n == "manifest.json"][-1])
    edit(m)
    return json.dumps(m).encode()


def _entry(name: str, kind: str, data: bytes, **extra) -> dict:
    return {"name": name, "kind": kind, "status": "ok", "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), **extra}


def case_bomb_1g(path):
    with open(path, "wb") as fh:
        fh.write(hb.rle_frame(hb.tar_header("data/proc/meminfo@start", 1 << 30), 1 << 30))


def case_manifest_10g(path):
    with open(path, "wb") as fh:
        fh.write(hb.compress(hb.tar_header("manifest.json", 10 << 30)))


def case_members_1m(path):
    w = Writer(path)
    w.member("manifest.json", json.dumps(hb.manifest()).encode())
    for i in range(1_000_000):
        w.member(f"data/m{i}", b"")
    w.close()


def case_members_200k(path):
    real = _real()
    w = Writer(path)
    for n, d in real[:-1]:
        w.member(n, d)
    for i in range(200_000):
        w.member(f"data/m{i}", b"")
    w.member("manifest.json", real[-1][1])
    w.close()


def case_member_32m(path):
    real = _real()
    meminfo = [d for n, d in real if n == "data/proc/meminfo@start"][0]
    big = (meminfo * (32 * MIB // len(meminfo) + 1))[:32 * MIB - 1024]

    def edit(m):
        for a in m["artifacts"]:
            if a["name"] == "proc/meminfo@start":
                a.update(bytes=len(big), sha256=hashlib.sha256(big).hexdigest())

    w = Writer(path)
    for n, d in real[:-1]:
        w.member(n, big if n == "data/proc/meminfo@start" else d)
    w.member("manifest.json", _final(real, edit))
    w.close()


def case_files_120m(path):
    real = _real()
    big = {}
    for n, d in real:
        if n in ("data/proc/meminfo@start", "data/proc/meminfo@end", "data/proc/vmstat@start",
                 "data/proc/vmstat@end"):
            big[n[5:]] = (d * (30 * MIB // len(d) + 1))[:30 * MIB]

    def edit(m):
        for a in m["artifacts"]:
            if a["name"] in big:
                a.update(bytes=len(big[a["name"]]), sha256=hashlib.sha256(big[a["name"]]).hexdigest())

    w = Writer(path)
    for n, d in real[:-1]:
        w.member(n, big.get(n[5:], d))
    w.member("manifest.json", _final(real, edit))
    w.close()


def case_ticks_128m(path):
    real = _real()
    ticks = [json.loads(d) for n, d in real if n.startswith("ticks/")]
    procs = ticks[0]["texts"]["procs"]
    per_tick = 125 * MIB // len(ticks)
    big = (procs * (per_tick // len(procs) + 1))[:per_tick]
    sha, total = hashlib.sha256(), 0
    w = Writer(path)
    for n, d in real[:-1]:
        if n.startswith("ticks/"):
            t = json.loads(d)
            t["texts"]["procs"] = big
            d = json.dumps(t).encode()
            sha.update(big.encode())
            total += len(big.encode())
        w.member(n, d)

    def edit(m):
        for a in m["artifacts"]:
            if a["name"] == "series/procs":
                a.update(bytes=total, sha256=sha.hexdigest())

    w.member("manifest.json", _final(real, edit))
    w.close()


def case_records_210k(path):
    real = _real()
    rec = {"t": 1763778110.5, "ts_ns": 1, "cpu": 0, "tid": 4242, "comm": "stress-ng-vm", "pid": 4242,
           "kind": "direct", "order": 0, "gfp_flags": 3264, "nr_reclaimed": 32, "latency_ns": 1500000}
    sha, total, chunks = hashlib.sha256(), 0, []
    for seq in range(210):
        data = b"".join(json.dumps(dict(rec, ts_ns=seq * 1000 + i, t=1763778110.5 + i / 1e3)).encode() + b"\n"
                        for i in range(1000))
        sha.update(data)
        total += len(data)
        chunks.append(data)
    w = Writer(path)
    for n, d in real[:-1]:
        w.member(n, d)
    for seq, data in enumerate(chunks):
        w.member(f"streams/bpf/reclaim/{seq:06d}.jsonl", data)

    def edit(m):
        m["artifacts"].append({"name": "bpf/reclaim", "kind": "stream", "status": "ok", "bytes": total,
                               "sha256": sha.hexdigest(), "records": 210_000})

    w.member("manifest.json", _final(real, edit))
    w.close()


def case_json_4m(path):
    real = _real()
    rec = {"t": 1763778110.5, "ts_ns": 1, "cpu": 0, "tid": 1, "comm": "x", "pid": 1,
           "kstack": [f"f{i}" for i in range(38_000)]}
    line = json.dumps(rec).encode() + b"\n"
    data = line * 100
    w = Writer(path)
    for n, d in real[:-1]:
        w.member(n, d)
    for seq in range(4):  # four members of 25 records, under the member cap
        w.member(f"streams/bpf/oom_kill/{seq:06d}.jsonl", line * 25)

    def edit(m):
        m["artifacts"].append({"name": "bpf/oom_kill", "kind": "stream", "status": "ok", "bytes": len(data),
                               "sha256": hashlib.sha256(data).hexdigest(), "records": 100})

    w.member("manifest.json", _final(real, edit))
    w.close()


def case_manifest_200k(path):
    real = _real()
    w = Writer(path)
    for n, d in real[:-1]:
        w.member(n, d)
    head = _final(real, lambda m: None).rstrip()
    w.member("manifest.json", head[:-1] + b', "x": [' + b"0," * 190_000 + b"0]}")
    w.close()


CASES = {name[len("case_"):].replace("_", "-"): fn for name, fn in globals().items() if name.startswith("case_")}


def _measure(argv: list[str]) -> tuple[int, float, float, str]:
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, ru = os.wait4(p.pid, 0)
    elapsed = time.monotonic() - t0
    err = p.stderr.read().decode("utf-8", "replace").strip().splitlines()
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, ru.ru_maxrss / 1024, elapsed, (err[-1] if err else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", choices=sorted(CASES))
    ap.add_argument("--keep", action="store_true", help="keep the generated bundles")
    ap.add_argument("--build", nargs=2, metavar=("CASE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build:
        CASES[args.build[0]](args.build[1])
        return 0
    tmp = tempfile.mkdtemp(prefix=f"snapcollect-bench-hostile-{os.getpid()}-")
    exe = [sys.executable, "-m", "snapcollect"]
    print(f"{'case':<14} {'file':>9} {'command':<10} {'exit':>4} {'RSS MB':>7} {'s':>6}  message")
    try:
        for name in args.only or CASES:
            path = os.path.join(tmp, f"{name}.tar.zst")
            # Built in a child: a child's peak RSS starts from its parent's
            # at fork, so this process stays small.
            subprocess.run([sys.executable, os.path.abspath(__file__), "--build", name, path], check=True)
            size = os.path.getsize(path)
            for cmd in (["show"], ["report", "-f", "md"], ["report", "-f", "json"]):
                rc, rss, s, msg = _measure(exe + cmd + [path])
                print(f"{name:<14} {size / 1024:>7.0f}KB {' '.join(cmd[:1] + cmd[2:]):<10} {rc:>4} {rss:>7.0f} "
                      f"{s:>6.1f}  {msg[-90:]}", flush=True)
    finally:
        if args.keep:
            print(f"bundles kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
