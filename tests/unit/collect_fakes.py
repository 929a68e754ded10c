"""Stand-ins for the collector's declared seams (snapcollect/collect/protocols.py).

Each implements its protocol exactly (tests/unit/test_protocols.py checks
names and signatures), so a test using one exercises the calls the
production code really makes.
"""

from __future__ import annotations

import time


class RecordingWriter:
    """An BpfWriter that records the calls (the BPF process's, replayed by BpfHook)."""

    def __init__(self):
        self.manifest: dict = {"clock": {"wall": time.time(), "monotonic": time.monotonic()}}
        self.files: dict[str, bytes] = {}
        self.missing: dict[str, tuple[str, str]] = {}
        self.streams: set[str] = set()
        self.records: dict[str, list] = {}

    def add_file(self, name, data, *, status="ok", reason=None, **extra):
        self.files[name] = data.encode() if isinstance(data, str) else data

    def add_missing(self, name, status, reason, **extra):
        self.missing[name] = (status, reason)

    def declare_stream(self, name, *, status="ok", reason=None, **extra):
        self.streams.add(name)

    def add_records(self, name, records):
        self.records.setdefault(name, []).extend(records)

    def merge_manifest(self, key, **fields):
        self.manifest[key] = {**(self.manifest.get(key) or {}), **fields}


class NoStop:
    """A StopState of a run that no signal reaches."""

    stopped = False
    hurry = False


class Clock:
    """A Clock that moves only when the test sets ``t``."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t
