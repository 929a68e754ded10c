"""The --pid/--comm deep dive of each followed process, as facts.

Inputs: the parsed ``deepdive/<pid>/...`` artifacts (parsers/deepdive.py)
and the manifest's ``deepdive`` entry (what was asked, the calibration of
one probed call's cost, the probes' errors). What memleak, funccount,
stackcount -U and a bpftrace ``hist(arg0)`` would print for the process,
plus which stacks kept more memory at every second of the window.

A stack *leaks* here when the bytes its blocks still hold grew across the
window's samples (each sample at least the one before, less 1% for the
frees in flight) and blocks from it older than the threshold were
outstanding at the end: memleak's view (old, unfreed) and a trend
together, since a cache filling up once is old and unfreed too.
"""

from __future__ import annotations

from dataclasses import dataclass

from snapcollect.analysis.dataset import Dataset
from snapcollect.parsers.deepdive import DeepDiveTarget, StackBytes

LEAK_MIN_BYTES = 64 * 1024       # heuristic: growth below this is noise for a report
LEAK_MIN_SAMPLES = 3             # a trend needs three points
MONOTONE_SLACK = 0.01


@dataclass(frozen=True)
class LeakingStack:
    frames: tuple[str, ...]
    outstanding_bytes: int        # older than the threshold, at the end (or at the exit)
    blocks: int
    grew_bytes: int               # held by the stack, first sample -> last
    first_t: float
    last_t: float


@dataclass(frozen=True)
class DeepDiveFacts:
    target: DeepDiveTarget
    calls_total: int
    overhead_s: float | None                 # calls x measured cost of one
    per_call_ns: dict                        # {"two_traps": ns, "one_trap": ns} or {}
    leaking: tuple[LeakingStack, ...]        # largest outstanding first

    @property
    def pid(self) -> int:
        return self.target.pid

    @property
    def exited(self) -> bool:
        return self.target.exited_at is not None


def run_info(ds: Dataset) -> dict:
    """The manifest's ``deepdive`` entry, {} when absent or not an object."""
    entry = (ds.manifest or {}).get("deepdive")
    return entry if isinstance(entry, dict) else {}


def _per_call(info: dict) -> dict:
    cal = info.get("calibration")
    per = cal.get("per_call_ns") if isinstance(cal, dict) and cal.get("measured") is True else None
    if not isinstance(per, dict):
        return {}
    return {k: float(v) for k, v in per.items() if k in ("two_traps", "one_trap") and type(v) in (int, float)}


def _growth(t: DeepDiveTarget, stack: StackBytes) -> tuple[int, float, float] | None:
    """(bytes grown, first t, last t) of a stack held more at each sample; None otherwise."""
    if stack.stack_id is None:
        return None
    points = [(h.t, h.by_stack[stack.stack_id]) for h in t.held if stack.stack_id in h.by_stack]
    if len(points) < LEAK_MIN_SAMPLES:
        return None
    for (_, a), (_, b) in zip(points, points[1:]):
        if b < a * (1 - MONOTONE_SLACK):
            return None
    grew = points[-1][1] - points[0][1]
    return (grew, points[0][0], points[-1][0]) if grew > 0 else None


def leaking_stacks(t: DeepDiveTarget) -> list[LeakingStack]:
    out = []
    for s in t.outstanding:
        g = _growth(t, s)
        if g is None or g[0] < LEAK_MIN_BYTES:
            continue
        out.append(LeakingStack(s.frames, s.bytes, s.count, g[0], g[1], g[2]))
    return sorted(out, key=lambda leak: -leak.outstanding_bytes)


def deepdive_facts(ds: Dataset) -> tuple[DeepDiveFacts, ...]:
    per_call = _per_call(run_info(ds))
    out = []
    for t in ds.deepdive:
        out.append(DeepDiveFacts(target=t, calls_total=sum(t.calls.values()), overhead_s=t.overhead_s,
                                 per_call_ns=per_call, leaking=tuple(leaking_stacks(t))))
    return tuple(out)
