"""Event intake: raw records from the BPF event channel -> stream records.

Each record the BPF programs emit (``bpf_perf_event_output`` on the
``events`` map) is decoded by events.py; OOM kills get their kernel stack
symbolized; new processes (EV_TASK) are queued for the symbolizer to warm
their symbol tables while they live. The channel's lost-record counts
are added up. Records are held until ``flush`` writes them to the bundle
in chunks; each stream is capped (a host in trouble can produce reclaim
events by the hundred thousand) and what is beyond the cap is counted.
"""

from __future__ import annotations

import ctypes as ct
from typing import Callable

from snapcollect.bundle.names import (BPF_COMPACTION, BPF_KSWAPD_RUNS, BPF_KSWAPD_WAKE, BPF_OOM_KILL, BPF_RECLAIM,
                                      BPF_SHRINKER_SLOW)
from snapcollect.collect.bpf import events, program
from snapcollect.collect.protocols import BpfWriter

# Bounds: keep the bundle small and say how many were left out.
STREAM_CAP = {BPF_OOM_KILL: 10_000, BPF_RECLAIM: 100_000, BPF_KSWAPD_WAKE: 50_000,
              BPF_COMPACTION: 50_000, BPF_KSWAPD_RUNS: 50_000,
              BPF_SHRINKER_SLOW: 20_000}
CHUNK = 5000


class EventIntake:
    """``kernel_stack(stack_id)`` gives the frames of an OOM kill's kernel stack."""

    def __init__(self, writer: BpfWriter, clock: dict, kernel_stack: Callable[[int], list[str]]):
        self.writer = writer
        self.clock = clock
        self.kernel_stack = kernel_stack
        self.pending: dict[str, list[dict]] = {s: [] for s in program.STREAMS}
        self.written = {s: 0 for s in program.STREAMS}
        self.dropped = {s: 0 for s in program.STREAMS}
        self.lost = 0
        self.decode_errors = 0
        self.new_tasks: list[int] = []

    def on_lost(self, count) -> None:
        """bcc's lost callback: records the kernel could not put in the buffer."""
        self.lost += int(count)

    def on_event(self, _cpu, data, size) -> None:
        """bcc's perf buffer callback: a pointer and a size."""
        self.take(ct.string_at(data, size))

    def take(self, raw: bytes) -> None:
        """One record as the BPF program wrote it."""
        try:
            kind, rec = events.decode(raw, self.clock)
        except events.DecodeError:
            self.decode_errors += 1
            return
        if kind == events.EV_TASK:
            self.new_tasks.append(rec["pid"])
            return
        if kind == events.EV_OOM:
            kid = rec.pop("kstack_id")
            if kid >= 0:
                try:
                    rec["kstack"] = self.kernel_stack(kid)
                except Exception:  # noqa: BLE001 - a stack is a bonus
                    rec["kstack"] = []
        stream = events.STREAMS[kind]
        if self.written[stream] + len(self.pending[stream]) >= STREAM_CAP[stream]:
            self.dropped[stream] += 1
            return
        self.pending[stream].append(rec)

    def take_new_tasks(self) -> list[int]:
        tasks, self.new_tasks = self.new_tasks, []
        return tasks

    def flush(self) -> None:
        """Write what is pending, in chunks."""
        for stream, recs in self.pending.items():
            if not recs:
                continue
            self.pending[stream] = []
            for i in range(0, len(recs), CHUNK):
                chunk = recs[i:i + CHUNK]
                self.writer.add_records(stream, chunk)
                self.written[stream] += len(chunk)

    def declare_streams(self, unavailable) -> None:
        """At the end: each stream's entry, with how many were dropped."""
        for stream in program.STREAMS:
            if stream in unavailable:
                continue
            extra = {}
            if self.dropped[stream]:
                extra["dropped"] = self.dropped[stream]
                extra["note"] = f"records beyond {STREAM_CAP[stream]} were counted, not stored"
            self.writer.declare_stream(stream, **extra)
