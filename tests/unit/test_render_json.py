"""JSON renderer: the same content as the report, for machines."""

from __future__ import annotations

import json
import math

from render_sample import T0, sample_report

from snapcollect.report.json_out import REPORT_JSON_VERSION, render_json, report_dict
from snapcollect.report.model import Chart


def _doc(report=None) -> dict:
    text = render_json(report or sample_report())
    # strict: no NaN/Infinity, which are not JSON
    return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def test_top_level_shape():
    d = _doc()
    assert d["report_json_version"] == REPORT_JSON_VERSION == 1
    assert set(d) >= {"meta", "missing", "worst_severity", "verdict", "findings", "skipped_rules", "timeline",
                      "tables", "sections", "generator"}
    assert d["meta"]["host"] == "web1"
    assert d["meta"]["window"] == {"start": "2025-11-22T14:02:10.000Z", "end": "2025-11-22T14:03:10.000Z"}
    assert d["worst_severity"] == "CRIT"
    assert d["missing"][0] == {"name": "bpf/fault_stacks", "status": "unavailable", "reason": "no kernel headers"}


def test_findings_first_class_with_evidence():
    d = _doc()
    assert [f["severity"] for f in d["findings"]] == ["CRIT", "HIGH", "WARN", "INFO"]
    oom = d["findings"][0]
    assert oom["key"] == "OOM_KILL" and oom["threshold_source"] == "every alerting ruleset"
    assert oom["evidence"] == {"artifacts": ["bpf/oom_kill", "kmsg"],
                               "time_range": {"start": "2025-11-22T14:02:41.000Z", "end": "2025-11-22T14:02:41.000Z"},
                               "values": {"victim": "java (pid 4711)", "anon_rss_kb": 3150000}, "section": "oom"}
    assert d["skipped_rules"][0] == {"key": "NUMA_MISSES", "reason": "needs sys/node/*/numastat (single node)"}
    assert [e["t"] for e in d["timeline"]] == sorted(e["t"] for e in d["timeline"])
    assert d["timeline"][0]["kind"] == "pressure"


def test_sar_table_rows_and_average():
    d = _doc()
    tables = {t["id"]: t for t in d["tables"]}
    sar = tables["sar-B"]
    assert sar["columns"][0] == {"key": "t", "title": "time", "unit": "", "type": "time"}
    assert {"key": "%vmeff", "title": "%vmeff", "unit": "%"} in sar["columns"]
    assert len(sar["rows"]) == 5
    assert sar["rows"][0]["t"] == "2025-11-22T14:02:11.000Z"
    assert sar["rows"][0]["pgpgin/s"] == 10.125          # raw number, not the printed "10.12"
    assert sar["rows"][2]["majflt/s"] is None
    assert sar["average"]["%vmeff"] == 273.375 and "t" not in sar["average"]
    assert sar["footer"][0]["t"] == "Average:"
    assert sar["source"] == ["series/proc/vmstat", "series/proc/uptime"]
    assert list(tables) == ["sar-B", "sar-r", "top-rss"]   # reading order, each once


def test_sections_refer_to_tables_and_carry_charts():
    d = _doc()
    ids = {t["id"] for t in d["tables"]}
    paging = next(s for s in d["sections"] if s["id"] == "paging")
    kinds = [b["type"] for b in paging["blocks"]]
    assert kinds == ["paragraph", "table", "chart"]
    assert paging["blocks"][1]["id"] in ids
    chart = paging["blocks"][2]
    assert chart["x"][0] == "2025-11-22T14:02:10.000Z"
    assert chart["series"]["some avg10"][4] is None          # gaps stay gaps
    assert paging["subsections"][0]["id"] == "sar-r"
    procs = next(s for s in d["sections"] if s["id"] == "processes")
    flame = procs["blocks"][2]
    assert flame["type"] == "flamegraph" and flame["folded"][0] == ["main;run;touch_pages", 1520]


def test_nan_and_infinity_become_null():
    r = sample_report()
    r.sections[1].blocks.append(Chart("nan", "n", [T0, T0 + 1], {"a": [math.nan, math.inf]}))
    d = _doc(r)
    chart = next(b for b in d["sections"][1]["blocks"] if b.get("id") == "nan")
    assert chart["series"]["a"] == [None, None]


def test_data_tables_are_the_machine_version():
    r = sample_report()
    r.data_tables["sar-B"].rows = r.data_tables["sar-B"].rows[:2]
    tables = {t["id"]: t for t in report_dict(r)["tables"]}
    assert len(tables["sar-B"]["rows"]) == 2


def test_meta_times_are_iso():
    r = sample_report()
    r.meta["stopped_at"] = T0 + 30
    d = _doc(r)
    assert d["meta"]["stopped_at"] == "2025-11-22T14:02:40.000Z"
    assert d["meta"]["started_at"] == "2025-11-22T14:02:10Z"      # strings stay as given
