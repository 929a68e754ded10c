"""Decoding raw perf-buffer events of memevents.bpf.c (captured on 6.18)."""

from __future__ import annotations

import json
import struct

import pytest

from bpf_fixtures import load
from snapcollect.collect.bpf import events
from snapcollect.collect.bpf.events import DecodeError, decode, to_wall

RAW = load("raw-events.json")


def _raw(kind: int) -> list[tuple[bytes, dict]]:
    return [(bytes.fromhex(r["hex"]), r["clock"]) for r in RAW if r["type"] == kind]


def test_captured_events_of_each_kind_are_there():
    kinds = {r["type"] for r in RAW}
    assert {events.EV_OOM, events.EV_RECLAIM, events.EV_COMPACTION, events.EV_TASK} <= kinds


def test_oom_event_decodes_to_the_stored_record():
    (raw, clock), = _raw(events.EV_OOM)
    kind, rec = decode(raw, clock)
    stored = load("oom_kill.json")[0]
    assert kind == events.EV_OOM
    for key in ("pid", "comm", "trigger_pid", "trigger_comm", "total_vm", "anon_rss", "file_rss",
                "shmem_rss", "uid", "pgtables", "oom_score_adj", "ts_ns", "t"):
        assert rec[key] == stored[key], key
    assert rec["kstack_id"] >= 0


def test_reclaim_events_carry_kind_order_gfp_latency():
    for raw, clock in _raw(events.EV_RECLAIM):
        kind, rec = decode(raw, clock)
        assert kind == events.EV_RECLAIM
        assert rec["kind"] == "memcg" and rec["comm"] == "sc-bpf-oom"
        assert rec["order"] == 0 and rec["gfp_flags"] > 0 and rec["latency_ns"] > 0
        assert rec["t"] == to_wall(rec["ts_ns"], clock)


def test_compaction_and_task_events():
    for raw, clock in _raw(events.EV_COMPACTION):
        _, rec = decode(raw, clock)
        assert rec["status"] == 5 and rec["sync"] is True and rec["latency_ns"] > 0
    for raw, clock in _raw(events.EV_TASK):
        _, rec = decode(raw, clock)
        assert rec["pid"] > 0 and rec["comm"]


def test_perf_padding_is_ignored_and_short_events_rejected():
    raw, clock = _raw(events.EV_RECLAIM)[0]
    assert len(raw) == events.RECLAIM.size + 4     # perf pads raw samples to 8 bytes
    assert decode(raw[:events.RECLAIM.size], clock)[1] == decode(raw, clock)[1]
    with pytest.raises(DecodeError):
        decode(raw[:events.RECLAIM.size - 1], clock)
    with pytest.raises(DecodeError):
        decode(raw[:10], clock)
    with pytest.raises(DecodeError):
        decode(struct.pack("=I", 99) + raw[4:], clock)


def _head(kind: int, comm: bytes = b"victim") -> bytes:
    return events.HEAD.pack(kind, 4243, 4242, 1, 5_000_000_000, comm)


def test_oom_event_of_a_kernel_before_6_8_has_only_the_pid():
    # fields bitmask 0: mark_victim had only "pid" before 6.8
    raw = _head(events.EV_OOM, b"trigger") + struct.pack("=iI16sQQQQQihH", 777, 0, b"", 0, 0, 0, 0, 0, -14, 0, 0)
    _, rec = decode(raw, {"wall": 1000.0, "monotonic": 4.0})
    assert rec["pid"] == 777 and rec["trigger_comm"] == "trigger" and rec["t"] == 1001.0
    for absent in ("comm", "total_vm", "anon_rss", "uid", "oom_score_adj"):
        assert absent not in rec


def test_kswapd_event():
    raw = _head(events.EV_KSWAPD) + struct.pack("=QiiiI", 0xcc0, 0, 2, 3, 0)
    _, rec = decode(raw, {"wall": 0.0, "monotonic": 0.0})
    assert (rec["nid"], rec["zid"], rec["order"], rec["gfp_flags"]) == (0, 2, 3, 0xcc0)
    assert rec["pid"] == 4242 and rec["tid"] == 4243


def test_comm_that_is_not_utf8_is_kept_exactly():
    text = events.cstr(b"\xffab\0junk")
    assert text.encode("utf-8", "surrogateescape") == b"\xffab"
    # ... and survives the JSON line the stream stores it in.
    assert json.loads(json.dumps({"comm": text}))["comm"] == text
