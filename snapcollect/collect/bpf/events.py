"""Decode the raw perf-buffer events of memevents.bpf.c into stream records.

Pure functions from bytes to dicts (JSON-ready): testable without root.
The layouts below mirror the C structs field by field (native byte order,
no implicit padding: every field is naturally aligned in the C too).
A record keeps the tracepoint's own field names; sizes from
oom:mark_victim are kB, as the kernel reports them there.

Sample record for ``bpf/reclaim``::

    {"t": 1732242101.53, "ts_ns": 5123456789, "cpu": 1, "pid": 4242,
     "tid": 4242, "comm": "alloc", "kind": "memcg", "order": 0,
     "gfp_flags": 3264, "nr_reclaimed": 32, "latency_ns": 183000}
"""

from __future__ import annotations

import struct

from snapcollect.bundle.names import (BPF_COMPACTION, BPF_KSWAPD_RUNS, BPF_KSWAPD_WAKE, BPF_OOM_KILL, BPF_RECLAIM,
                                      BPF_SHRINKER_SLOW)

EV_OOM, EV_RECLAIM, EV_KSWAPD, EV_COMPACTION, EV_TASK, EV_KSWAPD_RUN, EV_SHRINK_SLOW = 1, 2, 3, 4, 5, 6, 7

HEAD = struct.Struct("=IIIIQ16s")                 # struct ev_head, 40 bytes
OOM = struct.Struct("=" + HEAD.format[1:] + "iI16sQQQQQihH")
RECLAIM = struct.Struct("=" + HEAD.format[1:] + "QQQiI")
KSWAPD = struct.Struct("=" + HEAD.format[1:] + "QiiiI")
COMPACTION = struct.Struct("=" + HEAD.format[1:] + "QiI")
KSWAPD_RUN = struct.Struct("=" + HEAD.format[1:] + "QiiII")
SHRINK_SLOW = struct.Struct("=" + HEAD.format[1:] + "QQQQiI")

STREAMS = {EV_OOM: BPF_OOM_KILL, EV_RECLAIM: BPF_RECLAIM, EV_KSWAPD: BPF_KSWAPD_WAKE,
           EV_COMPACTION: BPF_COMPACTION, EV_KSWAPD_RUN: BPF_KSWAPD_RUNS,
           EV_SHRINK_SLOW: BPF_SHRINKER_SLOW}

# Bits of ev_oom.fields, in the order the C sets them.
OOM_FIELDS = ("comm", "total_vm", "anon_rss", "file_rss", "shmem_rss", "uid", "pgtables", "oom_score_adj")
RECLAIM_KINDS = ("direct", "memcg")


class DecodeError(ValueError):
    """An event shorter than its type's layout, or of an unknown type."""


def cstr(raw: bytes) -> str:
    """A NUL-terminated C char array as text.

    comm is whatever bytes a process gave prctl(PR_SET_NAME): the bytes
    that are not UTF-8 are kept as surrogate escapes, so the bundle holds
    the name exactly and the report shows them as ``\\xNN``.
    """
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def to_wall(ts_ns: int, clock: dict) -> float:
    """bpf_ktime_get_ns() (CLOCK_MONOTONIC) on the bundle's wall clock."""
    return round(clock["wall"] + (ts_ns / 1e9 - clock["monotonic"]), 6)


def event_type(raw: bytes) -> int:
    if len(raw) < HEAD.size:
        raise DecodeError(f"event of {len(raw)} bytes is shorter than its header")
    return struct.unpack_from("=I", raw)[0]


def _head(values: tuple, clock: dict) -> dict:
    _type, tid, tgid, cpu, ts_ns, comm = values[:6]
    return {"t": to_wall(ts_ns, clock), "ts_ns": ts_ns, "cpu": cpu, "pid": tgid, "tid": tid,
            "comm": cstr(comm)}


def _unpack(layout: struct.Struct, raw: bytes) -> tuple:
    # perf pads raw samples to 8 bytes: take the struct, ignore the tail.
    if len(raw) < layout.size:
        raise DecodeError(f"event of {len(raw)} bytes, its layout needs {layout.size}")
    return layout.unpack_from(raw)


def decode_oom(raw: bytes, clock: dict) -> dict:
    """ev_oom -> record. ``kstack_id`` is resolved by the caller."""
    v = _unpack(OOM, raw)
    head = _head(v, clock)
    (victim_pid, uid, victim_comm, total_vm, anon_rss, file_rss, shmem_rss, pgtables,
     kstack_id, oom_score_adj, fields) = v[6:]
    rec = {"t": head["t"], "ts_ns": head["ts_ns"], "cpu": head["cpu"],
           "trigger_pid": head["pid"], "trigger_tid": head["tid"], "trigger_comm": head["comm"],
           "pid": victim_pid}
    values = {"comm": cstr(victim_comm), "total_vm": total_vm, "anon_rss": anon_rss,
              "file_rss": file_rss, "shmem_rss": shmem_rss, "uid": uid, "pgtables": pgtables,
              "oom_score_adj": oom_score_adj}
    for bit, name in enumerate(OOM_FIELDS):
        if fields & (1 << bit):
            rec[name] = values[name]
    rec["kstack_id"] = kstack_id
    return rec


def decode_reclaim(raw: bytes, clock: dict) -> dict:
    v = _unpack(RECLAIM, raw)
    rec = _head(v, clock)
    latency_ns, nr_reclaimed, gfp_flags, order, kind = v[6:]
    rec.update(kind=RECLAIM_KINDS[kind] if kind < len(RECLAIM_KINDS) else str(kind),
               order=order if order >= 0 else None, gfp_flags=gfp_flags,
               nr_reclaimed=nr_reclaimed, latency_ns=latency_ns)
    return rec


def decode_kswapd(raw: bytes, clock: dict) -> dict:
    v = _unpack(KSWAPD, raw)
    rec = _head(v, clock)
    gfp_flags, nid, zid, order, _pad = v[6:]
    rec.update(nid=nid, zid=zid if zid >= 0 else None, order=order, gfp_flags=gfp_flags)
    return rec


def decode_compaction(raw: bytes, clock: dict) -> dict:
    v = _unpack(COMPACTION, raw)
    rec = _head(v, clock)
    latency_ns, status, sync = v[6:]
    rec.update(latency_ns=latency_ns, status=status if status >= 0 else None, sync=bool(sync))
    return rec


def decode_kswapd_run(raw: bytes, clock: dict) -> dict:
    """ev_kswapd_run -> {t, nid, order, awake_ns, wakes}; a run already
    going at attach has ``no_start`` true, its ``t`` is the sleep and it
    has no awake_ns (its start was not seen)."""
    v = _unpack(KSWAPD_RUN, raw)
    rec = _head(v, clock)
    awake_ns, nid, order, wakes, no_start = v[6:]
    rec.update(nid=nid, order=order if order >= 0 else None, wakes=wakes)
    if no_start:
        rec["no_start"] = True
    else:
        rec["awake_ns"] = awake_ns
    return rec


def decode_shrink_slow(raw: bytes, clock: dict) -> dict:
    """ev_shrink_slow -> {t, nid, shrink (callback address), latency_ns, freed, scanned};
    the parser names the callback from bpf/shrinkers."""
    v = _unpack(SHRINK_SLOW, raw)
    rec = _head(v, clock)
    shrink, latency_ns, freed, scanned, nid, _pad = v[6:]
    rec.update(shrink=f"{shrink:#x}", nid=nid, latency_ns=latency_ns, freed=freed, scanned=scanned)
    return rec


def decode_task(raw: bytes, clock: dict) -> dict:
    return _head(_unpack(HEAD, raw), clock)


DECODERS = {EV_OOM: decode_oom, EV_RECLAIM: decode_reclaim, EV_KSWAPD: decode_kswapd,
            EV_COMPACTION: decode_compaction, EV_TASK: decode_task, EV_KSWAPD_RUN: decode_kswapd_run,
            EV_SHRINK_SLOW: decode_shrink_slow}


def decode(raw: bytes, clock: dict) -> tuple[int, dict]:
    """(event type, record) for one perf-buffer event."""
    kind = event_type(raw)
    fn = DECODERS.get(kind)
    if fn is None:
        raise DecodeError(f"unknown event type {kind}")
    return kind, fn(raw, clock)
