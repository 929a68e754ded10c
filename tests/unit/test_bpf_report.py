"""The BPF sections of the report, built from the captured events."""

from __future__ import annotations

from bpf_fixtures import dataset, kmsg_lines, load
from snapcollect.parsers.records import BpfData
from snapcollect.report.markdown import render_markdown
from snapcollect.report.model import Chart, FlameGraph, Paragraph, Preformatted, Report, Table
from snapcollect.report.sections.bpf import bpf_sections
from snapcollect.analysis.model import build_model


def _blocks(section):
    out = list(section.blocks)
    for sub in section.subsections:
        out += _blocks(sub)
    return out


def _by_id(sections):
    return {s.id: s for s in sections}


def test_sections_and_oom_table():
    secs = _by_id(bpf_sections(build_model(dataset())))
    assert list(secs) == ["oom", "reclaim", "kswapd", "compaction", "page-faults", "heap-growth", "bpf-cost"]
    kill = load("oom_kill.json")[0]
    table = next(b for b in secs["oom"].blocks if isinstance(b, Table))
    row, = table.rows
    assert (row["pid"], row["comm"], row["kind"], row["anon"]) == (kill["pid"], "sc-bpf-oom",
                                                                  "memcg /snapcollect-fixture-oom", 65280)
    assert row["trigger"] == f"sc-bpf-oom ({kill['pid']})" and row["source"] == "bpf+kmsg"
    log = next(b for b in secs["oom"].blocks if isinstance(b, Preformatted))
    assert f"Killed process {kill['pid']} (sc-bpf-oom)" in log.text and log.text.startswith("oom-kill:")


def test_reclaim_drsnoop_table_histogram_and_per_process():
    secs = _by_id(bpf_sections(build_model(dataset())))
    blocks = _blocks(secs["reclaim"])
    worst = next(b for b in blocks if isinstance(b, Table) and b.id == "reclaim-worst")
    assert [c.title for c in worst.columns] == ["TIME", "COMM", "PID", "LAT(ms)", "PAGES", "KIND", "ORDER", "GFP"]
    lats = [r["lat_ms"] for r in worst.rows]
    assert lats == sorted(lats, reverse=True)
    recs = load("reclaim.json")
    assert lats[0] == max(r["latency_ns"] for r in recs) / 1e6
    hist = next(b for b in blocks if isinstance(b, Table) and b.id == "reclaim-memcg-hist")
    assert sum(r["count"] for r in hist.rows) == len(recs)
    chart = next(b for b in blocks if isinstance(b, Chart))
    assert chart.kind == "bar" and sum(chart.series["count"]) == len(recs)
    per = next(b for b in blocks if isinstance(b, Table) and b.id == "reclaim-by-process")
    assert per.rows[0]["count"] == len(recs) and per.rows[0]["comm"] == "sc-bpf-oom"


def test_flame_graph_and_heap_growth():
    secs = _by_id(bpf_sections(build_model(dataset())))
    fg = next(b for b in _blocks(secs["page-faults"]) if isinstance(b, FlameGraph))
    assert ("sc-faulter;__libc_start_call_main;main;sc_fault_outer;sc_fault_touch", 65536) in fg.folded
    assert "1 fault in 64" in fg.note
    heap = next(b for b in secs["heap-growth"].blocks if isinstance(b, Table))
    grower = [r for r in heap.rows if r["comm"] == "sc-grower"]
    assert any(r["syscall"] == "mmap" and r["kind"] == "anon" and r["mib"] >= 64 for r in grower)


def test_without_bpf_one_paragraph_says_why_and_oom_comes_from_the_log():
    reason = "not running as root (uid 1000): loading BPF programs needs root; to fix: run as root"
    bpf = BpfData(available={n: ("unavailable", reason) for n in
                             ("bpf/oom_kill", "bpf/reclaim", "bpf/kswapd_wake", "bpf/compaction",
                              "bpf/fault_stacks.folded", "bpf/fault_stacks.json", "bpf/majfault_by_proc",
                              "bpf/heap_growth")})
    secs = bpf_sections(build_model(dataset(kmsg=kmsg_lines(), bpf=bpf)))
    assert [s.id for s in secs] == ["oom", "bpf"]
    para = secs[1].blocks[0]
    assert isinstance(para, Paragraph) and para.text.startswith("BPF not available: " + reason)
    row, = next(b for b in secs[0].blocks if isinstance(b, Table)).rows
    assert row["source"] == "kmsg" and row["comm"] == "sc-bpf-oom"


def test_sections_render_to_markdown(tmp_path):
    report = Report(meta={"host": "t", "kernel": "6.18"}, missing=[], sections=bpf_sections(build_model(dataset())))
    md, _charts = render_markdown(report, str(tmp_path))
    assert "| LAT(ms)" in md and "sc-bpf-oom" in md and "Page faults by stack" in md


def test_kswapd_section_counts_wakeups_by_node_and_order():
    from snapcollect.parsers.bpf_events import load_bpf_data
    from bpf_fixtures import inputs

    bpf = load_bpf_data(*inputs())
    t0 = bpf.reclaim[0].t
    bpf.kswapd_wakes = [(t0, 0, 0), (t0 + 0.5, 0, 0), (t0 + 1.2, 0, 3)]
    sec = _by_id(bpf_sections(build_model(dataset(bpf=bpf))))["kswapd"]
    table = next(b for b in sec.blocks if isinstance(b, Table))
    assert [(r["nid"], r["order"], r["count"]) for r in table.rows] == [(0, 0, 2), (0, 3, 1)]
    chart = next(b for b in sec.blocks if isinstance(b, Chart))
    assert sum(chart.series["wake-ups/s"]) == 3


def test_bpf_cost_names_whose_memory_the_compile_used():
    def cost_rows(ds):
        section = _by_id(bpf_sections(build_model(ds)))["bpf-cost"]
        return dict(next(iter(section.blocks)).items)

    old = cost_rows(dataset())       # a bundle from before the BPF process: the collector compiled
    assert "collector RSS peak during compile" in old and "BPF process" not in old
    ds = dataset()
    ds.manifest["bpf"] = {**ds.manifest["bpf"], "start_s": 11.2,
                          "process": {"pid": 7, "peak_rss_kb": 150000, "cpu_s": 1.5, "exit": "killed by SIGKILL"}}
    new = cost_rows(ds)
    assert new["BPF process RSS peak during compile"].endswith(" kB")
    assert new["BPF process"] == "peak RSS 150,000 kB, 1.5 s CPU, killed by SIGKILL"
    assert new["BPF start"].startswith("11.20 s")


def test_header_gives_the_bpf_process_peak_beside_the_collector_s():
    from snapcollect.report.formatting import header_items

    meta = {"cpu_s": 0.67, "peak_rss_kb": 26128, "tool_version": "0.1.0",
            "collector": {"bpf_process": {"pid": 7, "peak_rss_kb": 153644, "cpu_s": 0.48, "exit": "x"}}}
    line = dict(header_items(Report(meta=meta, missing=[], sections=[])))["Collector"]
    assert "cost 0.67 s CPU, peak RSS 25Mi, BPF process peak RSS 150Mi" in line
    meta["collector"] = {}
    assert "BPF process" not in dict(header_items(Report(meta=meta, missing=[], sections=[])))["Collector"]
