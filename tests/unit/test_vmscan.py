"""Shrinkers, kswapd runs, page migration: perf events decoded, the aggregate documents, the parser on
hostile input, the model's facts, the report's sections, and a rejected shrinker program costing only its
artifacts."""

import json
import struct

import pytest
from collect_fakes import RecordingWriter
from findings_helpers import T0, bpf, build, kswapd_run, migration, shrinker

from snapcollect.analysis.model import build_model
from snapcollect.collect.bpf import aggregates, attach, events, program
from snapcollect.collect.bpf.artifacts import ArtifactWriter
from snapcollect.collect.bpf.events import DecodeError, decode
from snapcollect.parsers.bpf_events import load_bpf_data, migration_from_doc, shrinkers_from_doc
from snapcollect.parsers.records import ShrinkerCall
from snapcollect.report.model import Paragraph, Preformatted, Table
from snapcollect.report.sections.vmscan import vmscan_sections

CLOCK = {"wall": 1000.0, "monotonic": 4.0}
ALL_OK = {n: ("ok", None) for n in ("bpf/shrinkers", "bpf/shrinker_slow", "bpf/kswapd_runs", "bpf/migration")}
FORMATS = json.load(open(__file__.rsplit("/", 2)[0] + "/fixtures/bpf/tracepoint_formats.json"))


def _head(kind: int, comm: bytes = b"kswapd0") -> bytes:
    return events.HEAD.pack(kind, 90, 90, 1, 5_000_000_000, comm)


# -- perf-buffer streams ------------------------------------------------------

def test_kswapd_run_event_and_a_run_without_start():
    raw = _head(events.EV_KSWAPD_RUN) + struct.pack("=QiiII", 42_000_000, 0, 3, 2, 0)
    kind, rec = decode(raw, CLOCK)
    assert kind == events.EV_KSWAPD_RUN and events.STREAMS[kind] == "bpf/kswapd_runs"
    assert (rec["nid"], rec["order"], rec["awake_ns"], rec["wakes"], rec["t"]) == (0, 3, 42_000_000, 2, 1001.0)
    assert "no_start" not in rec
    raw = _head(events.EV_KSWAPD_RUN) + struct.pack("=QiiII", 0, 1, -1, 1, 1)
    _, rec = decode(raw, CLOCK)
    assert rec["no_start"] is True and "awake_ns" not in rec and rec["order"] is None and rec["nid"] == 1
    with pytest.raises(DecodeError):
        decode(raw[:events.KSWAPD_RUN.size - 1], CLOCK)


def test_shrink_slow_event_keeps_the_callback_address():
    raw = _head(events.EV_SHRINK_SLOW, b"find") + struct.pack("=QQQQiI", 0xffffffff81234560, 12_500_000, 300,
                                                              1024, 0, 0)
    kind, rec = decode(raw, CLOCK)
    assert events.STREAMS[kind] == "bpf/shrinker_slow"
    assert (rec["shrink"], rec["latency_ns"], rec["freed"], rec["scanned"], rec["nid"], rec["comm"]) == (
        "0xffffffff81234560", 12_500_000, 300, 1024, 0, "find")
    with pytest.raises(DecodeError):
        decode(raw[:events.SHRINK_SLOW.size - 1], CLOCK)


# -- aggregate documents ------------------------------------------------------

def test_shrinker_document_names_callbacks_and_keeps_unnamed_addresses():
    rows = [aggregates.ShrinkRow(0xa0, 0, 3, 3_000_000, 2_000_000, 10, 30),
            aggregates.ShrinkRow(0xb0, 0, 1, 9_000_000, 9_000_000, 5, 7)]
    doc = aggregates.shrinker_document(rows, [(0xa0, 5, 2), (0xa0, 11, 1)], {0xa0: "super_cache_scan"},
                                       {"shrink_keys_full": 4}, 2)
    first, second = doc["entries"]
    assert (first["address"], first["callback"], first["total_ns"]) == ("0xb0", None, 9_000_000)
    assert second["callback"] == "super_cache_scan" and second["calls"] == 3
    assert doc["histograms"] == [{"callback": "super_cache_scan", "address": "0xa0", "slots": [[5, 2], [11, 1]]}]
    assert "kptr_restrict=2" in doc["names_note"] and doc["map_full"] == 4
    shr, hist, note = shrinkers_from_doc(json.loads(json.dumps(doc)))
    assert [s.callback for s in shr] == ["0xb0", "super_cache_scan"] and hist["super_cache_scan"] == {5: 2, 11: 1}
    assert "address is kept" in note


def test_migration_document_and_names_from_the_print_fmt():
    counts = {f: 0 for f in aggregates.MIGRATE_FIELDS}
    doc = aggregates.migration_document(
        [((0, 0), {**counts, "calls": 2, "succeeded": 10, "failed": 5}),
         ((7, 2), {**counts, "calls": 1, "succeeded": 1})],
        [((4711, "java", 0), {**counts, "calls": 2, "succeeded": 10, "failed": 5})], {"migrate_keys_full": 0})
    assert doc["by_reason"][0]["reason"] == 0 and doc["processes"][0]["comm"] == "java"
    files = {"bpf/migration": json.dumps(doc).encode(), "bpf/tracepoint_formats": json.dumps(FORMATS).encode()}
    data = load_bpf_data({}, ALL_OK, {"clock": CLOCK}, files)
    by = {(m.reason, m.mode): m for m in data.migration_by_reason}
    assert by[("compaction", "MIGRATE_ASYNC")].failed == 5 and by[("longterm_pin", "MIGRATE_SYNC")].calls == 1
    p, = data.migration_by_proc
    assert (p.pid, p.comm, p.reason, p.mode) == (4711, "java", "compaction", None)
    # no format: the fallback table; an unknown number keeps the number
    by_reason, _ = migration_from_doc({"by_reason": [{"reason": 0, "mode": 1}, {"reason": 99, "mode": 0}]},
                                      {0: "compaction"}, {1: "MIGRATE_SYNC_LIGHT"})
    assert {(m.reason, m.mode) for m in by_reason} == {("compaction", "MIGRATE_SYNC_LIGHT"), ("reason 99", "mode 0")}


class _Key:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class _Maps:
    def __init__(self, rows):
        self.rows = rows

    def items(self, name):
        return self.rows.get(name, [])


def test_migration_rows_of_the_collector_itself_are_left_out():
    val = type("Val", (), {f: 1 for f in aggregates.MIGRATE_FIELDS})()
    maps = _Maps({"migrate_by_reason": [(_Key(reason=0, mode=0), val)],
                  "migrate_by_proc": [(_Key(tgid=555, comm=b"snapcollect", reason=0), val),
                                      (_Key(tgid=4711, comm=b"java", reason=0), val)]})
    w = ArtifactWriter.__new__(ArtifactWriter)
    w.writer, w.maps, w.unavailable, w.own_tgids = RecordingWriter(), maps, {}, {555}
    w.write_migration({}, 0.0)
    doc = json.loads(w.writer.files["bpf/migration"])
    assert [p["pid"] for p in doc["processes"]] == [4711] and len(doc["by_reason"]) == 1


# -- the parser on hostile input ----------------------------------------------

@pytest.mark.parametrize("name,content", [
    ("bpf/shrinkers", b"not json"),
    ("bpf/shrinkers", b"[1, 2]"),
    ("bpf/shrinkers", b'{"entries": [{"calls": "many"}]}'),
    ("bpf/shrinkers", b'{"entries": [{"calls": -3}]}'),
    ("bpf/shrinkers", b'{"histograms": [{"callback": "x", "slots": [[999, 1]]}]}'),
    ("bpf/shrinkers", b'{"histograms": [{"callback": "x", "slots": "bad"}]}'),
    ("bpf/shrinkers", b'{"entries": {"a": 1}}'),
    ("bpf/migration", b'{"by_reason": [{"reason": "x", "mode": 0}]}'),
    ("bpf/migration", b'{"processes": [{"pid": null}]}'),
    ("bpf/migration", b"\xff\xfe"),
])
def test_a_hostile_file_costs_only_its_artifact(name, content):
    data = load_bpf_data({"bpf/kswapd_runs": [{"t": 1.0, "nid": 0, "awake_ns": 5}]}, ALL_OK, {"clock": CLOCK},
                         {name: content})
    st, reason = data.available[name]
    assert st == "error" and reason.startswith("could not parse") and "\n" not in reason
    assert data.available["bpf/kswapd_runs"] == ("ok", None) and len(data.kswapd_runs) == 1


@pytest.mark.parametrize("stream,rec", [
    ("bpf/kswapd_runs", {"t": 1.0, "nid": 0}),                     # neither awake_ns nor no_start
    ("bpf/kswapd_runs", {"t": 1.0, "awake_ns": 5}),                # no node
    ("bpf/kswapd_runs", {"t": 1.0, "nid": "zero", "awake_ns": 5}),
    ("bpf/shrinker_slow", {"t": 1.0, "shrink": "0x1"}),            # no latency
    ("bpf/shrinker_slow", {"t": 1.0, "latency_ns": [1]}),
])
def test_a_hostile_record_costs_only_its_stream(stream, rec):
    data = load_bpf_data({stream: [rec]}, ALL_OK, {"clock": CLOCK},
                         {"bpf/shrinkers": json.dumps({"entries": [{"callback": "a", "calls": 1}]}).encode()})
    assert data.available[stream][0] == "error"
    assert data.available["bpf/shrinkers"] == ("ok", None) and data.shrinkers[0].callback == "a"


def test_slow_calls_are_named_from_the_shrinkers_file():
    doc = {"entries": [{"callback": "super_cache_scan", "address": "0xa0", "nid": 0, "calls": 1}]}
    data = load_bpf_data({"bpf/shrinker_slow": [{"t": 2.0, "shrink": "0xa0", "latency_ns": 11_000_000},
                                                {"t": 1.0, "shrink": "0xb0", "latency_ns": 12_000_000}]},
                         ALL_OK, {"clock": CLOCK}, {"bpf/shrinkers": json.dumps(doc).encode()})
    assert [(c.t, c.callback) for c in data.shrinker_slow] == [(1.0, "0xb0"), (2.0, "super_cache_scan")]


# -- model facts and sections -------------------------------------------------

def _model(**kw):
    return build_model(build(bpf=bpf(**kw)))


def _text(sec) -> str:
    out = []
    for b in sec.blocks:
        if isinstance(b, Paragraph):
            out.append(b.text)
        elif isinstance(b, Preformatted):
            out.append(b.text)
        elif isinstance(b, Table):
            out.append(json.dumps(b.rows, default=str))
    return "\n".join(out)


def test_facts_merge_nodes_and_kswapd_share_of_the_window():
    m = _model(shrinkers=[shrinker(nid=0, calls=2, total_ms=4, max_ms=3), shrinker(nid=1, calls=1, total_ms=1,
                                                                                   max_ms=1)],
               kswapd_runs=[kswapd_run(0.2, None), kswapd_run(1, 3, wakes=2), kswapd_run(10, 6)])
    v = m.vmscan
    s, = v.shrinkers
    assert (s.nodes, s.calls, s.total_ns, s.max_ns) == ((0, 1), 3, 5_000_000, 3_000_000)
    n, = v.kswapd
    assert (n.runs, n.awake_ns, n.longest_ns, n.runs_without_start, n.wakes) == (2, 9 * 10**9, 6 * 10**9, 1, 3)
    assert n.longest_t == T0 + 10 and n.share == pytest.approx(9 / v.window_s)


def test_sections_show_shrinkers_histogram_kswapd_and_migration():
    m = _model(shrinkers=[shrinker("super_cache_scan", calls=3, total_ms=40, max_ms=30)],
               shrinker_hist={"super_cache_scan": {4: 2, 15: 1}},
               shrinker_slow=[ShrinkerCall(T0 + 3, "super_cache_scan", 0, 30_000_000, 7, 9, 88, "kswapd0")],
               kswapd_runs=[kswapd_run(1, 3)],
               migration_by_reason=[migration("compaction", 10, 4)],
               migration_by_proc=[migration("compaction", 10, 4, pid=77, comm="kcompactd0")])
    secs = {s.id: s for s in vmscan_sections(m)}
    assert list(secs) == ["shrinkers", "kswapd-activity", "migration"]
    shr = secs["shrinkers"]
    row = next(b for b in shr.blocks if isinstance(b, Table) and b.id == "shrinkers").rows[0]
    assert (row["callback"], row["calls"], row["max_ms"]) == ("super_cache_scan", 3, 30.0)
    hist = next(b for b in shr.blocks if isinstance(b, Preformatted))
    assert "usecs" in hist.text and "8 -> 15" in hist.text and "16384 -> 32767" in hist.text and "*" in hist.text
    slow = next(b for b in shr.blocks if isinstance(b, Table) and b.id == "shrinker-slow").rows[0]
    assert (slow["comm"], slow["lat_ms"]) == ("kswapd0", 30.0)
    node = next(b for b in secs["kswapd-activity"].blocks if isinstance(b, Table)).rows[0]
    assert (node["nid"], node["runs"], node["awake_s"]) == (0, 1, 3.0)
    mig = [b for b in secs["migration"].blocks if isinstance(b, Table)]
    assert mig[0].rows[0]["failed_pct"] == pytest.approx(100 * 4 / 14) and mig[1].rows[0]["comm"] == "kcompactd0"


def test_sections_say_why_not_collected_and_are_left_out_of_older_bundles():
    b = bpf()
    b.available["bpf/shrinkers"] = ("unavailable", "could not attach to tracepoint vmscan:mm_shrink_slab_end")
    del b.available["bpf/kswapd_runs"]
    del b.available["bpf/migration"]
    secs = {s.id: s for s in vmscan_sections(build_model(build(bpf=b)))}
    assert list(secs) == ["shrinkers"]
    assert "could not attach to tracepoint vmscan:mm_shrink_slab_end" in _text(secs["shrinkers"])
    empty = {s.id: _text(s) for s in vmscan_sections(_model())}
    assert "No slab shrinker ran" in empty["shrinkers"] and "kswapd did not run" in empty["kswapd-activity"]
    assert "No page was migrated" in empty["migration"]


# -- a rejected shrinker program costs only its artifacts ---------------------

class _FakeBcc:
    class PerfType:
        SOFTWARE = 1

    class PerfSWConfig:
        PAGE_FAULTS = 2
        PAGE_FAULTS_MAJ = 6


class _FakeBpf:
    """bcc.BPF whose mm_shrink_slab_end program the verifier rejects (bcc loads it on attach)."""

    def __init__(self):
        self.tracepoint_fds, self.raw_tracepoint_fds, self.open_perf_events = {}, {}, {}

    def attach_raw_tracepoint(self, tp, fn_name):
        raise Exception("raw tracepoints not in this test")

    def attach_tracepoint(self, tp, fn_name):
        if fn_name == b"tracepoint__vmscan__mm_shrink_slab_end":
            raise Exception("Failed to load BPF program b'tracepoint__vmscan__mm_shrink_slab_end': "
                            "Permission denied")
        self.tracepoint_fds[tp] = 1

    def attach_perf_event(self, ev_type, ev_config, fn_name, sample_period):
        self.open_perf_events[(ev_type, ev_config)] = 1

    def attach_kprobe(self, event, fn_name):
        pass

    def attach_kretprobe(self, event, fn_name):
        pass

    def detach_tracepoint(self, tp):
        pass

    def detach_perf_event(self, ev_type, ev_config):
        pass

    def cleanup(self):
        pass


def test_a_rejected_shrink_slab_end_program_makes_only_the_shrinker_artifacts_unavailable():
    assert program.function_name("vmscan:mm_shrink_slab_end") == "tracepoint__vmscan__mm_shrink_slab_end"
    plan = program.Plan(text="", probes=list(program.TRACEPOINTS))
    a = attach.Attachments(_FakeBcc, _FakeBpf(), plan, kprobe_problem=lambda: None)
    unavailable = {}
    result = a.attach(unavailable)
    assert result["vmscan:mm_shrink_slab_end"].startswith("failed: ") and "Permission denied" in \
        result["vmscan:mm_shrink_slab_end"]
    assert set(unavailable) == {"bpf/shrinkers", "bpf/shrinker_slow"}
    assert "vmscan:mm_shrink_slab_end" in unavailable["bpf/shrinkers"].reason
    assert all(result[tp].startswith("ok") for tp in program.TRACEPOINTS if tp != "vmscan:mm_shrink_slab_end")
    assert a.majfault_attached and a.fault_sampler["kind"] == "perf"
    a.detach()
