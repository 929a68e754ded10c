"""When the BPF programs start, and whether they may: one decision for collect and doctor.

The compile time is not known in advance: 0.5 s on one host, 11 s on a
slower one (a qemu guest), and a fixed budget either wastes time or
loses BPF. So the window waits for the BPF process: it opens as soon as
the programs are attached, and the run's deadline moves by the time the
start really took (both recorded in the manifest). What bounds the wait
is ``--bpf-start-timeout`` (default ``DEFAULT_TIMEOUT_S``); past it the
BPF process is killed and the collection goes on without BPF.

Before the BPF process is started, the memory the collector may still
use (headroom.py: its cgroup's limit, MemAvailable) is compared with what
a compile needs: below that, no BPF, and the manifest says why.
``snapcollect doctor`` measures a real start on the host and passes it
through the same functions, so that it says what collect will do.
"""

from __future__ import annotations

from dataclasses import dataclass

from snapcollect.collect.headroom import Headroom

DEFAULT_TIMEOUT_S = 30.0
# Peak RSS of the BPF loader (bpf/loader.py, the one process that imports
# bcc) during the compile, measured on kernel 6.18 with bcc 0.26 / LLVM 14:
# 183 MB (the manifest's bpf.compile_peak_rss_kb; 137-142 MB before the
# shrinker, migration, leaf-word and swap-residency programs), with a
# margin. A loader in a smaller cgroup would be OOM-killed mid-compile. The
# loader exits before the window opens; the reader that stays is far smaller.
NEED_KB = 224 * 1024


def timeout_s(args) -> float:
    value = args.bpf_start_timeout
    return float(value) if value else DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class Go:
    """Whether to start the BPF process at all, and why not."""

    start: bool
    reason: str | None = None


def may_start(args, room: Headroom) -> Go:
    """The decision taken before the BPF process is started."""
    if args.no_bpf:
        return Go(False, "--no-bpf")
    if room.short_of(NEED_KB):
        return Go(False, f"not started: {room.free_kb // 1024} MiB left under {room.source}, and "
                         f"compiling the BPF programs needs about {NEED_KB // 1024} MiB; collected "
                         "without BPF so that the collection itself is not OOM-killed")
    return Go(True)


@dataclass(frozen=True)
class Outcome:
    attached: bool
    waited_s: float         # how much later the window opens (and the deadline moves)
    text: str


def outcome(ready_after_s: float | None, limit_s: float) -> Outcome:
    """What the run does when the BPF start took ``ready_after_s`` (None: not done by ``limit_s``)."""
    if ready_after_s is not None and ready_after_s <= limit_s:
        return Outcome(True, ready_after_s,
                       f"BPF started in {ready_after_s:.1f} s (limit {limit_s:g} s, "
                       f"--bpf-start-timeout): the window opens {ready_after_s:.1f} s later and "
                       "the run's deadline moves by as much")
    took = f"took {ready_after_s:.1f} s" if ready_after_s is not None else "did not finish"
    return Outcome(False, limit_s,
                   f"BPF compile and attach {took}, over the {limit_s:g} s of --bpf-start-timeout: "
                   f"the window opens {limit_s:g} s late and the collection runs without BPF")


def suggested_timeout_s(measured_s: float) -> int:
    """A --bpf-start-timeout with room for a slower start than the one measured."""
    return max(int(DEFAULT_TIMEOUT_S), int(measured_s * 2 + 5))
