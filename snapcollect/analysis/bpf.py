"""Summaries of the BPF events: what drsnoop, oomkill, stackcount print.

Inputs are the parsed ``BpfData`` of a dataset (OOM kills are merged
with the kernel log's in ``analysis.oom``). Histograms use
bcc's log2 buckets (``print_log2_hist``: 0 -> 1, 2 -> 3, 4 -> 7, ...) of
microseconds, so they read like the output of the bcc tools.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from snapcollect.analysis.dataset import Dataset
from snapcollect.parsers.bpf_events import ARTIFACTS
from snapcollect.parsers.records import ReclaimStall

@dataclass(frozen=True)
class Bucket:
    low: int
    high: int
    count: int

    @property
    def label(self) -> str:
        return f"{self.low} -> {self.high}"


def log2_hist(values: list[float]) -> list[Bucket]:
    """bcc-style log2 histogram of non-negative values (already in the unit shown).

    bcc puts v in slot bpf_log2l(v) (floor(log2 v) + 1) and prints slots
    1..max as [2^(i-1), 2^i - 1], the first as 0 -> 1; a 0 goes there too.
    """
    if not values:
        return []
    slots: dict[int, int] = {}
    for v in values:
        i = max(int(v), 0).bit_length() or 1
        slots[i] = slots.get(i, 0) + 1
    top = max(slots)
    out = []
    for i in range(1, top + 1):
        low, high = (1 << i) >> 1, (1 << i) - 1
        if low == high:
            low -= 1
        out.append(Bucket(low, high, slots.get(i, 0)))
    return out


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least ``q`` of the values at or below it.

    The reclaim section's p50/p99 and DIRECT_RECLAIM_STALLS's p99 are this one.
    """
    if not values:
        return None
    s = sorted(values)
    return s[max(math.ceil(q * len(s)) - 1, 0)]


def stalls_by_process(stalls: list[ReclaimStall]) -> list[dict]:
    """Per (pid, comm): count, total, p99 and worst latency (us) and when, pages reclaimed; worst total first."""
    acc: dict[tuple[int, str], dict] = {}
    lat: dict[tuple[int, str], list[float]] = {}
    for s in stalls:
        key = (s.pid, s.comm)
        a = acc.setdefault(key, {"pid": s.pid, "comm": s.comm, "count": 0, "total_us": 0.0,
                                 "max_us": 0.0, "max_t": s.t, "pages": 0, "kinds": set(), "first_t": s.t})
        lat.setdefault(key, []).append(s.latency_us)
        a["count"] += 1
        a["total_us"] += s.latency_us
        if s.latency_us > a["max_us"]:
            a["max_us"], a["max_t"] = s.latency_us, s.t
        a["pages"] += s.nr_reclaimed or 0
        if s.kind:
            a["kinds"].add(s.kind)
        a["first_t"] = min(a["first_t"], s.t)
    out = []
    for key, a in acc.items():
        a["kinds"] = "/".join(sorted(a["kinds"]))
        a["avg_us"] = a["total_us"] / a["count"]
        a["p99_us"] = percentile(lat[key], 0.99)
        out.append(a)
    out.sort(key=lambda a: (-a["total_us"], a["pid"]))
    return out


def worst(stalls, n: int = 20) -> list:
    return sorted(stalls, key=lambda s: (-s.latency_us, s.t))[:n]


def kswapd_by_node_order(wakes: list[tuple[float, int, int]]) -> list[dict]:
    acc: dict[tuple[int, int], dict] = {}
    for t, nid, order in wakes:
        a = acc.setdefault((nid, order), {"nid": nid, "order": order, "count": 0, "first_t": t, "last_t": t})
        a["count"] += 1
        a["first_t"] = min(a["first_t"], t)
        a["last_t"] = max(a["last_t"], t)
    return sorted(acc.values(), key=lambda a: (a["nid"], a["order"]))


def per_second(times: list[float], window: tuple[float, float] | None) -> tuple[list[float], list[float]]:
    """Counts per whole second from the window start (x: second start, epoch s)."""
    if not times:
        return [], []
    t0 = window[0] if window else min(times)
    t1 = window[1] if window else max(times)
    t0, t1 = min(t0, min(times)), max(t1, max(times))
    n = int(t1 - t0) + 1
    counts = [0.0] * n
    for t in times:
        counts[min(int(t - t0), n - 1)] += 1
    return [t0 + i for i in range(n)], counts


def by_status(stalls) -> list[dict]:
    acc: dict[str, dict] = {}
    for s in stalls:
        key = s.status or "?"
        a = acc.setdefault(key, {"status": key, "count": 0, "total_us": 0.0, "max_us": 0.0})
        a["count"] += 1
        a["total_us"] += s.latency_us
        a["max_us"] = max(a["max_us"], s.latency_us)
    return sorted(acc.values(), key=lambda a: -a["count"])


def faults_by_command(folded: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Estimated faults per command (the root frame), most first."""
    acc: dict[str, int] = {}
    for stack, count in folded:
        root = stack.split(";", 1)[0]
        acc[root] = acc.get(root, 0) + count
    return sorted(acc.items(), key=lambda kv: (-kv[1], kv[0]))


def top_stacks(folded: list[tuple[str, int]], n: int = 10) -> list[tuple[str, int]]:
    return sorted(folded, key=lambda kv: (-kv[1], kv[0]))[:n]


# -- availability --------------------------------------------------------------


def bpf_status(ds: Dataset) -> dict[str, tuple[str, str | None]]:
    """Every BPF artifact -> (status, reason with remedy)."""
    avail = dict(ds.bpf.available)
    for name in ARTIFACTS:
        avail.setdefault(name, ds.missing.get(name, ("missing", "not in this bundle")))
    return avail


def any_ok(ds: Dataset) -> bool:
    return any(st == "ok" for st, _ in bpf_status(ds).values())


def why_unavailable(ds: Dataset) -> str | None:
    """One reason shared by all BPF artifacts, when none was collected."""
    st = bpf_status(ds)
    if any(s == "ok" for s, _ in st.values()):
        return None
    reasons = [r for _, r in st.values() if r]
    if not reasons:
        bpf = ds.manifest.get("bpf") or {}
        return bpf.get("reason") or "not in this bundle"
    return max(set(reasons), key=reasons.count)
