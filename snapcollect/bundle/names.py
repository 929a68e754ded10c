"""Artifact names and the archive paths behind them.

An artifact name is what the rest of the code uses. Three kinds exist:

- file:   one blob, e.g. ``proc/meminfo@start``, ``cmd/free@end``,
          ``procs/1234/smaps``. Stored at ``data/<name>``.
- series: one text per sampling tick, e.g. ``series/proc/vmstat``. All
          series of one tick share one member ``ticks/<k>.json`` so a tick
          is either wholly in the archive or not at all.
- stream: records appended in chunks while collecting (kernel log, BPF
          events), e.g. ``bpf/oom_kill``. Stored as JSON lines in
          ``streams/<name>/<seq>.jsonl``; the reader concatenates them.

Phase suffixes: a snapshot taken at the start and at the end of the
window is two file artifacts, ``<source>@start`` and ``<source>@end``.
"""

from __future__ import annotations

FORMAT = "snapcollect-bundle"
FORMAT_VERSION = 1
# Every version this reader understands; older ones stay here forever.
READABLE_VERSIONS = (1,)

MANIFEST = "manifest.json"
SUFFIX = ".tar.zst"
PARTIAL_SUFFIX = ".partial"

KINDS = ("file", "series", "stream")
STATUSES = ("ok", "missing", "denied", "timeout", "truncated", "error", "unavailable",
            "corrupt")  # corrupt: set by the reader when data fails its declared checksum

START = "start"
END = "end"


def at(source: str, phase: str) -> str:
    """Name of a snapshot artifact: ``at("proc/meminfo", "start")``."""
    return f"{source}@{phase}"


def series(source: str) -> str:
    """Name of a per-tick series artifact: ``series("proc/vmstat")``."""
    return f"series/{source}"


def file_path(name: str) -> str:
    return f"data/{name}"


def tick_path(k: int) -> str:
    return f"ticks/{k:06d}.json"


def stream_path(name: str, seq: int) -> str:
    return f"streams/{name}/{seq:06d}.jsonl"


def _index(text: str) -> int | None:
    # ASCII digits only: int() also takes " 7", "+7", "1_000" and "٣".
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else None


def classify(member: str) -> tuple[str, str | None, int | None]:
    """Map an archive member path back to (kind, name, index).

    kind is one of "manifest", "file", "tick", "stream" or "unknown";
    "unknown" also for a path under ``data/``, ``ticks/`` or ``streams/``
    that does not fit the format (a tick number that is not a number, an
    empty name).
    """
    if member == MANIFEST:
        return "manifest", None, None
    if member.startswith("data/") and len(member) > len("data/"):
        return "file", member[len("data/"):], None
    if member.startswith("ticks/") and member.endswith(".json"):
        k = _index(member[len("ticks/"):-len(".json")])
        if k is not None:
            return "tick", None, k
    if member.startswith("streams/") and member.endswith(".jsonl"):
        head, _, seq = member[len("streams/"):-len(".jsonl")].rpartition("/")
        n = _index(seq)
        if head and n is not None:
            return "stream", head, n
    return "unknown", None, None
