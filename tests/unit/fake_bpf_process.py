#!/usr/bin/env python3
"""A stand-in BPF process that speaks the protocol of snapcollect/collect/bpf/wire.py.

Used where a real compile cannot be made to behave as the test needs: a
start as slow as a compile on a slow host, a process that dies after its
start, messages that are not writer calls. It writes through the same
wire.PipeWriter as the real process.

    fake_bpf_process.py --out-fd N [--start-s S] [--die-after-start]
                        [--hostile] [--disabled]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from snapcollect.collect.bpf import wire

PENDING = ["bpf/fault_stacks.json", "bpf/majfault_by_proc"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-fd", type=int, required=True)
    ap.add_argument("--start-s", type=float, default=0.0, help="how long the 'compile' takes")
    ap.add_argument("--die-after-start", action="store_true", help="SIGKILL itself once started")
    ap.add_argument("--hostile", action="store_true", help="send calls that are not writer methods")
    ap.add_argument("--disabled", action="store_true", help="start as a session that cannot run BPF")
    ns = ap.parse_args()
    out = os.fdopen(ns.out_fd, "wb")
    stdin = sys.stdin.buffer
    config = wire.decode(stdin.readline())
    w = wire.PipeWriter(out, config["clock"])
    time.sleep(ns.start_s)
    if ns.disabled:
        w.add_missing("bpf/oom_kill", "unavailable", "fake: no BPF here", remedy="none")
        w.merge_manifest("bpf", enabled=False, unavailable={"bpf/oom_kill": {"reason": "fake"}})
        w.send({"op": "started", "enabled": False, "pending": []})
        w.send({"op": "finished"})
        return 0
    w.merge_manifest("bpf", enabled=True, compile_s=ns.start_s,
                     attach={"oom:mark_victim": "ok", "perf:page-faults": "ok (sample_period 128)",
                             "perf:major-faults": "ok"},
                     options={k: v for k, v in (config.get("options") or {}).items() if v is not None})
    w.declare_stream("bpf/oom_kill")
    if ns.hostile:
        w.send({"op": "call", "method": "close", "args": [], "kw": {}})
        w.send({"op": "call", "method": "add_file", "args": "x", "kw": {}})
        out.write(b"not json\n")
        out.flush()
    w.send({"op": "started", "enabled": True, "pending": PENDING})
    w.add_records("bpf/oom_kill", [{"t": 1.0, "pid": 42, "comm": "victim"}])
    if ns.die_after_start:
        os.kill(os.getpid(), signal.SIGKILL)
    for line in stdin:
        msg = wire.decode(line)
        if msg and msg["op"] == "finish":
            w.add_file("bpf/fault_stacks.json", '{"samples": 0}')
            w.add_file("bpf/majfault_by_proc", b'{"processes": []}')
            w.send({"op": "finished"})
            return 0
    return 0      # end of file: the collector gave up on us


if __name__ == "__main__":
    sys.exit(main())
