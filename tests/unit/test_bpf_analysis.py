"""Histograms and per-process summaries of BPF events."""

from __future__ import annotations

from bpf_fixtures import dataset, kmsg_lines
from snapcollect.analysis import bpf as A
from snapcollect.analysis.oom import kmsg_lines_for, oom_facts
from snapcollect.report.sections import bpf as S
from snapcollect.parsers.records import BpfData, ReclaimStall
from snapcollect.parsers.records import Point


def _stall(t, lat, pid=1, comm="a", kind="direct", pages=10):
    return ReclaimStall(t=t, latency_us=lat, pid=pid, comm=comm, kind=kind, order=0,
                        gfp_flags="GFP_KERNEL", nr_reclaimed=pages)


def test_log2_hist_has_bcc_buckets():
    # bcc print_log2_hist: "0 -> 1", "2 -> 3", "4 -> 7", "8 -> 15", ...
    hist = A.log2_hist([0, 1, 2, 3, 3, 4, 7, 8, 1000])
    assert [(b.label, b.count) for b in hist] == [
        ("0 -> 1", 2), ("2 -> 3", 3), ("4 -> 7", 2), ("8 -> 15", 1), ("16 -> 31", 0), ("32 -> 63", 0),
        ("64 -> 127", 0), ("128 -> 255", 0), ("256 -> 511", 0), ("512 -> 1023", 1)]
    assert A.log2_hist([]) == []


def test_stalls_by_process_worst_total_first():
    stalls = [_stall(1, 100, 1, "a"), _stall(2, 300, 1, "a", "memcg"), _stall(3, 1000, 2, "b", pages=0)]
    rows = A.stalls_by_process(stalls)
    assert [(r["pid"], r["count"], r["total_us"], r["max_us"]) for r in rows] == [(2, 1, 1000, 1000),
                                                                                 (1, 2, 400, 300)]
    assert rows[1]["kinds"] == "direct/memcg" and rows[1]["pages"] == 20 and rows[1]["avg_us"] == 200
    assert [s.latency_us for s in A.worst(stalls, 2)] == [1000, 300]


def test_per_second_and_kswapd_groups():
    x, counts = A.per_second([10.2, 10.9, 12.5], (10.0, 13.0))
    assert x == [10.0, 11.0, 12.0, 13.0] and counts == [2, 0, 1, 0]
    groups = A.kswapd_by_node_order([(1.0, 0, 0), (2.0, 0, 0), (3.0, 0, 3)])
    assert [(g["nid"], g["order"], g["count"], g["last_t"]) for g in groups] == [(0, 0, 2, 2.0), (0, 3, 1, 3.0)]


def test_faults_by_command_and_short_stacks():
    folded = [("a;x;y", 128), ("b;z", 64), ("a;w", 64)]
    assert A.faults_by_command(folded) == [("a", 192), ("b", 64)]


def test_histogram_bars_and_short_stacks_as_bcc_prints_them():
    assert S.stars(3, 3) == "*" * 40 and S.stars(1, 1000) == "*" and S.stars(0, 5) == ""
    assert S.short_stack(["m"] * 12 + ["f", "g"]) == "m x12;f;g"
    assert S.short_stack(["a", "b", "c", "d", "e"]) == "...;b;c;d;e"


def test_oom_facts_merge_bpf_kernel_log_and_counter():
    ds = dataset()
    ds.vmstat = [Point(0, 0.0, {"oom_kill": 5}), Point(1, 1.0, {"oom_kill": 7})]
    s = oom_facts(ds)
    assert len(s.kills) == 1 and s.kills[0].sources == ("bpf/oom_kill", "kmsg")
    assert s.counted == 2 and s.unattributed == 1 and s.earlier == ()
    lines = kmsg_lines_for(ds.kmsg, s.kills[0])
    assert [ln.text.split(":", 1)[0] for ln in lines] == ["oom-kill", "Memory cgroup out of memory"]


def test_oom_facts_without_bpf_and_with_earlier_kills():
    ds = dataset(kmsg=kmsg_lines(before_window=True), bpf=BpfData())
    s = oom_facts(ds)
    assert s.kills == () and len(s.earlier) == 1 and s.counted is None and s.unattributed == 0


def test_why_unavailable_picks_the_common_reason():
    ds = dataset(bpf=BpfData(available={n: ("unavailable", "not root; to fix: run as root") for n in A.ARTIFACTS}))
    assert A.why_unavailable(ds) == "not root; to fix: run as root" and not A.any_ok(ds)
    assert A.why_unavailable(dataset()) is None
