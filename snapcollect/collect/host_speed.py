"""How slow this host answers right now: a factor on the collector's fixed time bounds.

The snapshot, command and end-phase bounds (1.5 s for the start snapshot,
1 s for one /proc file, 5 s beyond --duration for the end phase) are sized
for a host that starts a program in a few milliseconds. A host in trouble
is often much slower: every CPU saturated, its page cache evicted so that
each exec reads from disk, or a guest under emulation. In a qemu TCG guest
on a busy machine, `free -w` took longer than the whole start snapshot
was allowed, and the snapshot lost the node files, the commands and the
cgroup baseline that the findings compare with.

One measurement at start-up: the time to start and reap ``/bin/true``
(fork, exec, wait: what each command of a snapshot pays before it does
anything) and to read /proc/meminfo and /proc/vmstat, three times, the
median kept. ``factor`` is that time over what a healthy host takes,
never below 1 (a fast host keeps the bounds it had) and at most
``MAX_FACTOR`` (a host that slow gets bounds that still end the run). The
measurement costs three execs, and it is recorded in the manifest with
the bounds it gave.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

from snapcollect.collect.median import median

# Healthy: this project's development host, loaded (load average 2.5 on 2
# CPUs), starts /bin/true from Python in 3.5-6 ms and reads both files in
# 0.3 ms. Ten milliseconds leaves room for a slower disk or CPU before
# any bound moves.
HEALTHY_S = 0.010
MAX_FACTOR = 8.0
ROUNDS = 3
# One round that takes longer counts as this slow: slower than any factor given.
ROUND_TIMEOUT_S = HEALTHY_S * MAX_FACTOR * 4


@dataclass(frozen=True)
class HostSpeed:
    probe_s: float | None     # median time of one round; None when it could not be measured
    factor: float

    def scale(self, seconds: float) -> float:
        return seconds * self.factor

    def manifest(self) -> dict:
        return {"probe_ms": None if self.probe_s is None else round(self.probe_s * 1000, 2),
                "healthy_ms": HEALTHY_S * 1000, "factor": round(self.factor, 2),
                "method": "median of 3 x (start and reap /bin/true, read /proc/meminfo and /proc/vmstat)"}


def factor_of(probe_s: float | None) -> float:
    if probe_s is None or probe_s <= HEALTHY_S:
        return 1.0
    return min(MAX_FACTOR, probe_s / HEALTHY_S)


def _one_round() -> float:
    t = time.monotonic()
    subprocess.run(["true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=ROUND_TIMEOUT_S, check=False)
    for path in ("/proc/meminfo", "/proc/vmstat"):
        with open(path, "rb") as fh:
            fh.read()
    return time.monotonic() - t


def measure() -> HostSpeed:
    rounds = []
    for _ in range(ROUNDS):
        try:
            rounds.append(_one_round())
        except subprocess.TimeoutExpired:
            rounds.append(ROUND_TIMEOUT_S)
        except OSError:
            return HostSpeed(None, 1.0)                    # no /bin/true (a minimal container): keep the bounds
    probe = median(rounds)
    return HostSpeed(probe, factor_of(probe))


def fixed(factor: float = 1.0) -> HostSpeed:
    """A speed not measured (tests): the given factor."""
    return HostSpeed(None, factor)

