"""The calibration workload: ``python -m snapcollect.collect.bpf.deepdive_calibrate``.

The deep-dive process starts this with a pipe on stdin and stdout and
times it twice, once without and once with the malloc-family uprobes
attached to it: the difference, divided by the calls the probes saw, is
what one probed call costs on this host at this moment (the issue's
figure: a malloc/free pair went from 30 ns to 5.7 us). Each command is
one line, ``malloc N`` or ``free``; the answer is the nanoseconds the
loop took. malloc(64) and free go through ctypes to the C library this
interpreter uses.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import time

BLOCK = 64
MAX_CALLS = 1_000_000


def main() -> int:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    malloc, free = libc.malloc, libc.free
    malloc.restype, malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    free.restype, free.argtypes = None, [ctypes.c_void_p]
    held: list[int] = []
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["malloc"] and len(words) == 2 and words[1].isdigit():
            n = min(int(words[1]), MAX_CALLS)
            t = time.perf_counter_ns()
            held = [malloc(BLOCK) for _ in range(n)]
            took = time.perf_counter_ns() - t
        elif words == ["free"]:
            t = time.perf_counter_ns()
            for p in held:
                free(p)
            took = time.perf_counter_ns() - t
            held = []
        else:
            return 2
        print(took, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
