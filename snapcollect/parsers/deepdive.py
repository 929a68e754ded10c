"""The --pid/--comm deep dive's artifacts: ``deepdive/<pid>/...``.

Written by the deep-dive process (uprobes on the malloc family, every
page fault of the process, its brk/mmap growth); one family per process::

    deepdive/4242/target.json         {"pid": 4242, "comm": "app", "allocator": "glibc",
                                       "probed": ["malloc", ...], "calls": {"malloc": 22200, ...},
                                       "malloc_sizes": [{"slot": 5, "low": 16, "high": 31, "count": 20000}],
                                       "exited_at": null, ...}
    deepdive/4242/alloc_bytes.folded  main;churn 26480000
    deepdive/4242/alloc_count.folded  main;churn 22200
    deepdive/4242/outstanding.json    {"older_than_s": 1.0, "stacks": [{"frames": [...], "bytes": 819200,
                                       "blocks": 200, ...}], "held_samples": [{"t": ..., "stacks": {...}}]}
    deepdive/4242/fault_stacks.folded main;churn 12
    deepdive/4242/heap_growth.json    {"stacks": [{"syscall": "brk", "bytes": 135168, "calls": 1, "frames": [...]}]}

``parse_target`` is pure and takes hostile input: a value of the wrong
type is dropped with a note in ``problems``, never a traceback; sizes
are bounded by the bundle reader's caps.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from snapcollect.parsers.base import ParseError

PREFIX = "deepdive/"
TARGET = "target.json"
ALLOC_BYTES = "alloc_bytes.folded"
ALLOC_COUNT = "alloc_count.folded"
OUTSTANDING = "outstanding.json"
FAULTS = "fault_stacks.folded"
HEAP_GROWTH = "heap_growth.json"
PARTS = (TARGET, ALLOC_BYTES, ALLOC_COUNT, OUTSTANDING, FAULTS, HEAP_GROWTH)
FUNCTIONS = ("malloc", "calloc", "realloc", "free", "mmap", "munmap", "brk")
MAX_ROWS = 10_000       # stacks, buckets or samples kept from one list
MAX_FRAMES = 512
MAX_TEXT = 512


@dataclass(frozen=True)
class Bucket:
    low: int
    high: int
    count: int


@dataclass(frozen=True)
class StackBytes:
    frames: tuple[str, ...]        # root first
    bytes: int
    count: int                     # blocks (outstanding) or calls (growth)
    kind: str = ""                 # growth: "brk" or "mmap"
    stack_id: int | None = None
    oldest_t: float | None = None


@dataclass(frozen=True)
class HeldSample:
    t: float
    by_stack: dict[int, int]       # stack id -> bytes held


@dataclass
class DeepDiveTarget:
    pid: int
    comm: str = ""
    exe: str = ""
    allocator: str | None = None
    probed_file: str | None = None
    why: str = ""
    probed: tuple[str, ...] = ()
    not_probed: dict[str, str] = field(default_factory=dict)
    attached_at: float | None = None
    exited_at: float | None = None
    window_end: float | None = None
    calls: dict[str, int] = field(default_factory=dict)
    malloc_sizes: tuple[Bucket, ...] = ()
    overhead_s: float | None = None
    alloc_bytes: list[tuple[str, int]] = field(default_factory=list)    # folded
    alloc_count: list[tuple[str, int]] = field(default_factory=list)
    fault_stacks: list[tuple[str, int]] = field(default_factory=list)
    outstanding: tuple[StackBytes, ...] = ()
    outstanding_older_than_s: float | None = None
    outstanding_total_bytes: int = 0
    held: tuple[HeldSample, ...] = ()
    growth: tuple[StackBytes, ...] = ()
    problems: list[str] = field(default_factory=list)        # what was dropped, one line each


def split_name(name: str) -> tuple[int, str] | None:
    """``deepdive/4242/target.json`` -> (4242, "target.json"); None for other names."""
    if not name.startswith(PREFIX):
        return None
    pid, _, part = name[len(PREFIX):].partition("/")
    if part not in PARTS or not (pid.isascii() and pid.isdigit() and 0 < len(pid) <= 10):
        return None
    return int(pid), part


def _int(v) -> int | None:
    return v if type(v) is int and v >= 0 else None


def _num(v) -> float | None:
    return float(v) if type(v) in (int, float) and math.isfinite(v) else None


def _str(v) -> str:
    return v[:MAX_TEXT] if isinstance(v, str) else ""


def _text(raw) -> str:
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw).decode("utf-8", "replace")
    return raw if isinstance(raw, str) else ""


def _doc(raw, name: str, problems: list[str]) -> dict:
    text = _text(raw)
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError as exc:
        problems.append(f"{name}: not JSON ({str(exc)[:60]})")
        return {}
    if not isinstance(doc, dict):
        problems.append(f"{name}: not a JSON object")
        return {}
    return doc


def parse_folded(text: str, name: str, problems: list[str]) -> list[tuple[str, int]]:
    """``frames count`` lines; a line that is not one is dropped and counted."""
    out: list[tuple[str, int]] = []
    bad = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        stack, sep, count = line.rpartition(" ")
        if not sep or not stack or not (count.isascii() and count.isdigit()):
            bad += 1
            continue
        if len(out) < MAX_ROWS:
            out.append((stack, int(count)))
    if bad:
        problems.append(f"{name}: {bad} line(s) not 'frames count' dropped")
    return out


def _frames(v) -> tuple[str, ...]:
    if not isinstance(v, list):
        return ("[unknown]",)
    return tuple(_str(f) or "[unknown]" for f in v[:MAX_FRAMES]) or ("[unknown]",)


def _stacks(rows, name: str, problems: list[str], count_key: str) -> tuple[StackBytes, ...]:
    if not isinstance(rows, list):
        if rows is not None:
            problems.append(f"{name}: stacks is not a list")
        return ()
    out = []
    for r in rows[:MAX_ROWS]:
        if not isinstance(r, dict) or _int(r.get("bytes")) is None:
            problems.append(f"{name}: a stack without a byte count dropped")
            continue
        out.append(StackBytes(_frames(r.get("frames")), r["bytes"], _int(r.get(count_key)) or 0,
                              kind=_str(r.get("syscall")), stack_id=r.get("stack_id") if type(r.get("stack_id")) is int else None,
                              oldest_t=_num(r.get("oldest_t"))))
    return tuple(sorted(out, key=lambda s: (-s.bytes, -s.count)))


def parse_target(pid: int, parts: dict[str, bytes | str | None]) -> DeepDiveTarget:
    """One process's deep dive from its artifacts (``parts``: part name -> raw data)."""
    problems: list[str] = []
    t = _doc(parts.get(TARGET), TARGET, problems)
    tgt = DeepDiveTarget(pid=pid, problems=problems)
    if not t:
        if parts.get(TARGET) is None:
            raise ParseError(f"deepdive/{pid}/{TARGET} is missing")
    tgt.comm, tgt.exe, tgt.why = _str(t.get("comm")), _str(t.get("exe")), _str(t.get("why"))
    tgt.allocator = _str(t.get("allocator")) or None
    tgt.probed_file = _str(t.get("probed_file")) or None
    probed = t.get("probed")
    tgt.probed = tuple(f for f in probed if f in FUNCTIONS) if isinstance(probed, list) else ()
    np = t.get("not_probed")
    tgt.not_probed = {k: _str(v) for k, v in np.items() if k in FUNCTIONS} if isinstance(np, dict) else {}
    tgt.attached_at, tgt.exited_at = _num(t.get("attached_at")), _num(t.get("exited_at"))
    tgt.window_end = _num(t.get("window_end"))
    calls = t.get("calls")
    if isinstance(calls, dict):
        tgt.calls = {fn: calls[fn] for fn in FUNCTIONS if _int(calls.get(fn)) is not None}
    elif calls is not None:
        problems.append(f"{TARGET}: calls is not an object")
    sizes = t.get("malloc_sizes")
    buckets = []
    for b in sizes[:64] if isinstance(sizes, list) else []:
        if isinstance(b, dict) and all(_int(b.get(k)) is not None for k in ("low", "high", "count")):
            buckets.append(Bucket(b["low"], b["high"], b["count"]))
        else:
            problems.append(f"{TARGET}: a malformed size bucket dropped")
    tgt.malloc_sizes = tuple(sorted(buckets, key=lambda b: b.low))
    tgt.overhead_s = _num(t.get("overhead_s"))
    tgt.alloc_bytes = parse_folded(_text(parts.get(ALLOC_BYTES)), ALLOC_BYTES, problems)
    tgt.alloc_count = parse_folded(_text(parts.get(ALLOC_COUNT)), ALLOC_COUNT, problems)
    tgt.fault_stacks = parse_folded(_text(parts.get(FAULTS)), FAULTS, problems)
    o = _doc(parts.get(OUTSTANDING), OUTSTANDING, problems)
    tgt.outstanding = _stacks(o.get("stacks"), OUTSTANDING, problems, "blocks")
    tgt.outstanding_older_than_s = _num(o.get("older_than_s"))
    tgt.outstanding_total_bytes = _int(o.get("total_bytes")) or sum(s.bytes for s in tgt.outstanding)
    held = []
    samples = o.get("held_samples")
    for s in samples[:MAX_ROWS] if isinstance(samples, list) else []:
        if not isinstance(s, dict) or _num(s.get("t")) is None or not isinstance(s.get("stacks"), dict):
            problems.append(f"{OUTSTANDING}: a malformed held sample dropped")
            continue
        by = {}
        for k, v in list(s["stacks"].items())[:MAX_ROWS]:
            if isinstance(k, str) and k.lstrip("-").isdigit() and len(k) < 12 and isinstance(v, list) \
                    and v and type(v[0]) is int:
                by[int(k)] = v[0]
        held.append(HeldSample(_num(s["t"]), by))
    tgt.held = tuple(sorted(held, key=lambda h: h.t))
    g = _doc(parts.get(HEAP_GROWTH), HEAP_GROWTH, problems)
    tgt.growth = _stacks(g.get("stacks"), HEAP_GROWTH, problems, "calls")
    return tgt
