"""Markdown renderer on a hand-built Report (no bundle needed)."""

from __future__ import annotations

import os
import re

import pytest
from render_sample import sample_report

from snapcollect.report.markdown import render_markdown
from snapcollect.report.model import Column, Report, Section, Table
from snapcollect.report.render import render_to


def _md(report=None, chart_dir="r-charts"):
    return render_markdown(report or sample_report(), chart_dir)


def _table_after(text: str, caption: str) -> list[str]:
    lines = text.splitlines()
    i = lines.index(f"**{caption}**") + 2
    out = []
    while i < len(lines) and lines[i].startswith("|"):
        out.append(lines[i])
        i += 1
    return out


def test_top_of_report_order():
    text, _ = _md()
    # The answer first: verdict, findings, what to do; then the metadata.
    pos = [text.index(s) for s in ("# Memory report: web1", "Host web1 · kernel 6.18.0-test",
                                   "## Verdict: CRIT", "**What to do** (`OOM_KILL`)", "rules skipped",
                                   "## About this bundle", "**Host:** web1", "Not collected (2)",
                                   "## Timeline", "## Findings in detail", "## free")]
    assert pos == sorted(pos)
    assert "**Complete:** NO: stopped by SIGINT after 60 s" in text
    assert "0.84 s CPU, peak RSS 40Mi" in text
    assert "| bpf/fault_stacks   | unavailable | no kernel headers      |" in text


def test_findings_sorted_by_severity_and_linked():
    text, _ = _md()
    rows = [line for line in text.splitlines() if re.match(r"\| (CRIT|HIGH|WARN|INFO) ", line)]
    assert [r.split("|")[1].strip() for r in rows] == ["CRIT", "HIGH", "WARN", "INFO"]
    assert "[OOM_KILL](#finding-oom_kill)" in rows[0]
    assert "[OOM kills](#oom)" in rows[0]
    # every link target is an anchor of the document
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', text))
    targets = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert targets <= anchors, targets - anchors


def test_stable_section_anchors_before_headings():
    text, _ = _md()
    for sid, title in (("paging", "## Paging and reclaim"), ("sar-r", "### sar -r ALL"), ("oom", "## OOM kills")):
        assert f'<a id="{sid}"></a>\n\n{title}\n' in text


def test_table_columns_aligned_formatted_with_footer():
    text, _ = _md()
    rows = _table_after(text, "sar -B: paging")
    assert len({len(r) for r in rows}) == 1, "columns do not line up"
    assert rows[0].startswith("| time     | pgpgin/s |")
    assert rows[1].startswith("| -------- | -------: |")     # right-aligned numbers
    assert rows[2].startswith("| 14:02:11 |    10.12 |")      # fmt .2f and time in UTC
    assert rows[-1].startswith("| Average: |    30.38 |")
    assert "|        - |" in rows[4]                            # None prints as "-"


def test_cells_escape_pipes_and_named_formats():
    text, _ = _md()
    rows = _table_after(text, "Top processes by RSS")
    assert "postgres \\| writer" in rows[3]
    assert "3,200,000" in rows[2] and "3.0Gi" in rows[2]


def test_timeline_sorted_with_offsets():
    text, _ = _md()
    i = text.index("## Timeline")
    block = text[i:text.index("## Findings in detail")]
    times = re.findall(r"^\| (\d\d:\d\d:\d\d) ", block, re.M)
    assert times == sorted(times) and len(times) == 3
    assert "+31.0 s" in block and "[OOM kills](#oom)" in block


def test_charts_referenced_beside_file():
    text, assets = _md()
    paths = [a.path for a in assets]
    assert paths == ["r-charts/psi.svg", "r-charts/mem-breakdown.svg", "r-charts/top-rss.svg",
                     "r-charts/fault-flame.svg"]
    assert "![PSI memory](r-charts/psi.svg)" in text
    assert "Gap: PSI unreadable for 2 s." in text


def test_stdout_says_where_charts_were_not_written():
    text, assets = render_markdown(sample_report(), None)
    assert assets == []
    notes = [line for line in text.splitlines() if "not written" in line]
    assert len(notes) == 4
    assert all("standard output" in n for n in notes)
    assert "![" not in text


def test_duplicate_chart_ids_get_distinct_files():
    r = sample_report()
    r.sections[2].blocks.append(r.sections[1].blocks[2])      # psi chart a second time
    _, assets = _md(r)
    assert [a.path for a in assets].count("r-charts/psi.svg") == 1
    assert "r-charts/psi-2.svg" in [a.path for a in assets]


def test_quiet_report_without_findings():
    r = Report(meta={"host": "idle", "complete": True}, missing=[],
               sections=[Section("free", "free", [Table("t", [Column("a", "a")], [])])])
    text, _ = _md(r)
    assert "## Verdict: no findings" in text
    assert "No finding was raised" in text
    assert "No events in the window." in text
    assert "Findings in detail" not in text
    assert "No rows." in text
    assert "**Complete:** yes" in text


@pytest.mark.report_extra
def test_written_to_file_with_svgs(tmp_path):
    out = tmp_path / "incident.md"
    render_to(sample_report(), "md", str(out))
    text = out.read_text()
    charts = tmp_path / "incident-charts"
    names = sorted(os.listdir(charts))
    assert names == ["fault-flame.svg", "mem-breakdown.svg", "psi.svg", "top-rss.svg"]
    for n in names:
        assert f"](incident-charts/{n})" in text
        svg = (charts / n).read_text()
        assert svg.startswith("<?xml") and "<svg" in svg
    assert "14:02:10" in (charts / "psi.svg").read_text()   # time axis in UTC


@pytest.mark.report_extra
def test_gfm_parser_sees_the_tables_and_cells_as_text():
    from markdown_it import MarkdownIt

    r = sample_report()
    r.sections[2].blocks[0].rows[1]["comm"] = "<defunct> | x"
    text, _ = _md(r)
    html = MarkdownIt("commonmark").enable("table").render(text)
    tables = re.findall(r"<table>(.*?)</table>", html, re.S)
    sar = next(t for t in tables if "pgpgin/s" in t)
    assert sar.count("<tr>") == 1 + 5 + 1                  # header, rows, Average:
    assert all(row.count("<td") == 10 for row in re.findall(r"<tr>(.*?)</tr>", sar, re.S)[1:])
    procs = next(t for t in tables if "Command" in t)
    assert "&lt;defunct&gt; | x" in procs                   # text, not a tag, pipe kept in its cell


def test_evidence_values_read_like_prose():
    from snapcollect.report.formatting import value_text

    assert value_text(20354.25) == "20,354"
    assert value_text(22.259) == "22.26" and value_text(22.0) == "22" and value_text(0.001234) == "0.00123"
    assert value_text(float("nan")) == "-"
    assert value_text(3150000) == "3,150,000"
    assert value_text(4711, "victim_pid") == "4711"
    assert value_text(1763820130.0, "first_t") == "14:02:10"
    assert value_text([{"pid": 7310, "comm": "python", "majflt": 21909}]) == "pid=7310, comm=python, majflt=21,909"


def test_header_says_when_the_process_pass_was_spaced_out():
    r = sample_report()
    assert "**Processes:**" not in render_markdown(r)[0]
    r.meta["collector"] = {"procs_pass": {"every_ticks": 4, "max_every_ticks": 5, "changes": [
        {"k": 1, "every_ticks": 5, "pids": 10113, "pass_cpu_s": 0.12}, {"k": 6, "every_ticks": 4, "pids": 10088}]}}
    text = render_markdown(r)[0]
    assert "**Processes:** read every 5 samples at most, not every sample (10,113 processes;" in text
    # hostile manifest values: no line, no crash
    for bad in ("x", {"max_every_ticks": "9"}, {"max_every_ticks": True}, {"max_every_ticks": 1},
                {"max_every_ticks": 3, "changes": [{"pids": "many"}, 7]}):
        r.meta["collector"] = {"procs_pass": bad}
        text = render_markdown(r)[0]
        assert ("many processes" in text) == (bad == {"max_every_ticks": 3, "changes": [{"pids": "many"}, 7]})
