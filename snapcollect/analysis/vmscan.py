"""Inside reclaim, from BPF: slab shrinkers, kswapd runs, page migration.

Reads the parsed ``BpfData`` of the tracepoints
vmscan:mm_shrink_slab_start/end (``bpf/shrinkers``, ``bpf/shrinker_slow``),
vmscan:mm_vmscan_kswapd_wake/sleep (``bpf/kswapd_runs``) and
migrate:mm_migrate_pages (``bpf/migration``), and computes once what the
report's sections, the timeline and the rules (SLOW_SHRINKER,
KSWAPD_BUSY, MIGRATION_FAILING) all show: per shrinker its latency and
share of the traced window, per node kswapd's time awake and share,
per migration reason and process the pages that failed.

The traced window is the BPF window (attach to detach, the manifest's
``bpf.attached_mono``/``detached_mono``), else the sampled window.
A kswapd run still going when tracing stopped is not seen; one that was
going when it began has no start and is counted apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from snapcollect.analysis.bpf import Bucket, bpf_status
from snapcollect.analysis.dataset import Dataset
from snapcollect.bundle.names import BPF_KSWAPD_RUNS, BPF_MIGRATION, BPF_SHRINKER_SLOW, BPF_SHRINKERS
from snapcollect.parsers.records import KswapdRun, MigrationCount, ShrinkerCall

SLOW_CALL_NS = 10_000_000       # the BPF program's SHRINK_SLOW_NS: calls this slow have a time


@dataclass(frozen=True)
class Shrinker:
    """One shrinker callback over all nodes, and per node."""

    callback: str
    address: str
    nodes: tuple[int, ...]
    calls: int
    total_ns: int
    max_ns: int
    freed: int
    scanned: int
    share: float | None         # total_ns / the traced window
    hist: tuple[Bucket, ...]    # log2 of microseconds, bcc's buckets


@dataclass(frozen=True)
class KswapdNode:
    nid: int
    runs: int                   # wake -> sleep, both seen
    awake_ns: int
    longest_ns: int
    longest_t: float | None     # when the longest run began
    wakes: int                  # kswapd_wake events in those runs
    runs_without_start: int     # already running when tracing began
    share: float | None         # awake_ns / the traced window


@dataclass(frozen=True)
class MigrationRow:
    reason: str
    mode: str | None
    pid: int | None
    comm: str | None
    calls: int
    succeeded: int
    failed: int
    thp_succeeded: int
    thp_failed: int
    thp_split: int
    large_folio_split: int

    @property
    def failed_share(self) -> float | None:
        tried = self.succeeded + self.failed
        return self.failed / tried if tried else None


@dataclass(frozen=True)
class VmscanFacts:
    status: dict[str, tuple[str, str | None]]    # the four artifacts -> (status, reason)
    window_s: float | None                       # the traced window
    shrinkers: tuple[Shrinker, ...]              # most total time first
    shrinker_note: str | None
    slow_calls: tuple[ShrinkerCall, ...]         # calls >= 10 ms, in time order
    kswapd: tuple[KswapdNode, ...]               # by node
    kswapd_runs: tuple[KswapdRun, ...]           # runs with a start, in time order
    migration_by_reason: tuple[MigrationRow, ...]
    migration_by_proc: tuple[MigrationRow, ...]

    def ok(self, artifact: str) -> bool:
        return self.status.get(artifact, ("missing", None))[0] == "ok"


def traced_window_s(ds: Dataset) -> float | None:
    """Seconds the probes were attached, else the sampled window's length."""
    bpf = ds.manifest.get("bpf") if isinstance(ds.manifest, dict) else None
    if isinstance(bpf, dict):
        a, d = bpf.get("attached_mono"), bpf.get("detached_mono")
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, d)) and d > a:
            return float(d - a)
    w = ds.window
    if w and w[1] > w[0]:
        return w[1] - w[0]
    return None


def slot_buckets(slots: dict[int, int]) -> list[Bucket]:
    """bcc's print_log2_hist of BPF_HISTOGRAM slots (slot s = bpf_log2l(v):
    0 for v = 0, floor(log2 v) + 1 above), printed as analysis.bpf.log2_hist
    prints values: slots 0 and 1 are the first bucket, ``0 -> 1``."""
    if not slots:
        return []
    merged: dict[int, int] = {}
    for s, c in slots.items():
        merged[max(s, 1)] = merged.get(max(s, 1), 0) + c
    out = []
    for i in range(1, max(merged) + 1):
        low, high = (1 << i) >> 1, (1 << i) - 1
        if low == high:
            low -= 1
        out.append(Bucket(low, high, merged.get(i, 0)))
    return out


def _shrinkers(ds: Dataset, window_s: float | None) -> tuple[Shrinker, ...]:
    acc: dict[str, dict] = {}
    for s in ds.bpf.shrinkers:
        a = acc.setdefault(s.callback, {"address": s.address, "nodes": set(), "calls": 0, "total_ns": 0,
                                        "max_ns": 0, "freed": 0, "scanned": 0})
        a["nodes"].add(s.nid)
        for k in ("calls", "total_ns", "freed", "scanned"):
            a[k] += getattr(s, k)
        a["max_ns"] = max(a["max_ns"], s.max_ns)
    out = [Shrinker(callback=name, address=a["address"], nodes=tuple(sorted(a["nodes"])), calls=a["calls"],
                    total_ns=a["total_ns"], max_ns=a["max_ns"], freed=a["freed"], scanned=a["scanned"],
                    share=a["total_ns"] / 1e9 / window_s if window_s else None,
                    hist=tuple(slot_buckets(ds.bpf.shrinker_hist.get(name, {}))))
           for name, a in acc.items()]
    out.sort(key=lambda s: (-s.total_ns, s.callback))
    return tuple(out)


def _kswapd(runs: list[KswapdRun], window_s: float | None) -> tuple[KswapdNode, ...]:
    acc: dict[int, dict] = {}
    for r in runs:
        a = acc.setdefault(r.nid, {"runs": 0, "awake_ns": 0, "longest_ns": 0, "longest_t": None, "wakes": 0,
                                   "no_start": 0})
        if r.no_start:
            a["no_start"] += 1
            continue
        a["runs"] += 1
        a["awake_ns"] += r.awake_ns
        a["wakes"] += r.wakes
        if r.awake_ns > a["longest_ns"] or a["longest_t"] is None:
            a["longest_ns"], a["longest_t"] = r.awake_ns, r.t
    return tuple(KswapdNode(nid=nid, runs=a["runs"], awake_ns=a["awake_ns"], longest_ns=a["longest_ns"],
                            longest_t=a["longest_t"], wakes=a["wakes"], runs_without_start=a["no_start"],
                            share=min(a["awake_ns"] / 1e9 / window_s, 1.0) if window_s else None)
                 for nid, a in sorted(acc.items()))


def _rows(counts: list[MigrationCount]) -> tuple[MigrationRow, ...]:
    return tuple(MigrationRow(c.reason, c.mode, c.pid, c.comm, c.calls, c.succeeded, c.failed, c.thp_succeeded,
                              c.thp_failed, c.thp_split, c.large_folio_split) for c in counts)


def vmscan_facts(ds: Dataset) -> VmscanFacts:
    st = bpf_status(ds)
    window_s = traced_window_s(ds)
    names = (BPF_SHRINKERS, BPF_SHRINKER_SLOW, BPF_KSWAPD_RUNS, BPF_MIGRATION)
    return VmscanFacts(
        status={n: st.get(n, ("missing", None)) for n in names}, window_s=window_s,
        shrinkers=_shrinkers(ds, window_s), shrinker_note=ds.bpf.shrinker_note,
        slow_calls=tuple(sorted(ds.bpf.shrinker_slow, key=lambda c: c.t)),
        kswapd=_kswapd(ds.bpf.kswapd_runs, window_s),
        kswapd_runs=tuple(r for r in ds.bpf.kswapd_runs if not r.no_start),
        migration_by_reason=_rows(ds.bpf.migration_by_reason),
        migration_by_proc=_rows(ds.bpf.migration_by_proc))
