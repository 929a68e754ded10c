"""build_report: header, section order, sources, data tables, odd bundles."""

from __future__ import annotations

import fnmatch
import json
import os

import pytest

from fixture_files import BUNDLE, text
from snapcollect.bundle import BundleWriter, open_bundle
from snapcollect.report.build import build_report
from snapcollect.report.formatting import hms
from snapcollect.report.model import Chart, Paragraph, Table

CLASSIC_ORDER = ["free", "vmstat-s", "swapon", "psi", "sar-B", "sar-r", "sar-S", "sar-W", "sar-H", "pidstat-r",
                 "delays", "top-processes", "pmap", "slabtop", "numastat", "buddyinfo", "cgroups", "kmsg"]


@pytest.fixture(scope="module")
def real():
    b = open_bundle(BUNDLE)
    return b, build_report(b)


def paragraphs(section) -> str:
    return " ".join(b.text for b in section.blocks if isinstance(b, Paragraph))


def test_section_order(real):
    _, r = real
    ids = [s.id for s in r.sections]
    assert ids[-len(CLASSIC_ORDER):] == CLASSIC_ORDER


def test_meta(real):
    b, r = real
    m = r.meta
    assert m["host"] == b.manifest["host"] and m["kernel"] == b.manifest["kernel"]
    assert m["complete"] is True and m["incomplete_reason"] is None
    assert m["interval_s"] == 1.0 and m["samples"] == len(b.ticks) == 11
    assert m["window"] == (b.ticks[0]["t"], b.ticks[-1]["t"])
    assert m["cpu_s"] == b.manifest["cpu_s"] and m["bundle"] == os.path.basename(BUNDLE)
    assert any("12.7.9" in n for n in m["notes"])
    assert r.missing == []


def test_every_table_cites_artifacts_of_the_bundle(real):
    b, r = real
    names = set(b.names()) | {f"series/{s}" for s in b.series_sources()}
    tables = r.all_tables()
    assert len(tables) > 15
    for t in tables:
        assert t.source, t.id
        for src in t.source:
            assert any(fnmatch.fnmatch(n, src) for n in names), (t.id, src)


def test_data_tables(real):
    b, r = real
    for tid in ("sar-B", "sar-r", "sar-S", "sar-W", "sar-H", "sar-q-MEM", "pidstat-r", "slabtop", "free",
                "vmstat-s", "swapon", "numastat", "buddyinfo", "cgroups", "processes-rss", "processes-pss"):
        assert tid in r.data_tables, tid
    sar_b = r.data_tables["sar-B"]
    assert len(sar_b.rows) == len(b.ticks) - 1
    assert sar_b.footer[0]["t"] == "Average:"
    assert sar_b.columns[0].fmt == "time"
    assert [c.title for c in sar_b.columns[1:]] == ["pgpgin/s", "pgpgout/s", "fault/s", "majflt/s", "pgfree/s",
                                                    "pgscank/s", "pgscand/s", "pgsteal/s", "%vmeff"]


def test_charts(real):
    _, r = real
    charts = {b.id: b for s in r.sections for b in s.blocks if isinstance(b, Chart)}
    assert {"chart-memory", "chart-psi", "chart-faults", "chart-reclaim", "chart-swap"} <= set(charts)
    mem = charts["chart-memory"]
    assert mem.kind == "stacked" and len(mem.x) == 11
    assert all(len(v) == len(mem.x) for v in mem.series.values())


def test_pmap_sections_total_matches_pmap_output(real):
    b, r = real
    from snapcollect.analysis.dataset import load_dataset
    from snapcollect.analysis.incident import build_incident
    from snapcollect.report.highlights import involved_pids
    from snapcollect.report.sections.pmap import pmap_sections

    incident = build_incident(load_dataset(b))
    top = {d.pid: d for d in incident.model.ds.top}
    mapper_pid = next(pid for pid, d in top.items() if d.comm == "sc (fix) x) 2")
    # Full detail only for the processes the findings involve; one table row for each of the others.
    involved = involved_pids(incident.model, incident.findings)
    pmap = next(s for s in r.sections if s.id == "pmap")
    assert {s.id for s in pmap.subsections} == {f"pmap-{p}" for p in involved & set(top)}
    summary = next(t for t in pmap.blocks if isinstance(t, Table) and t.id == "pmap-summary")
    assert {row["pid"] for row in summary.rows} == set(top) - involved
    # The detail of one process: its total is pmap -x's.
    sec, = pmap_sections(incident.model, {mapper_pid})
    mapper, = sec.subsections
    t = next(b for b in mapper.blocks if isinstance(b, Table))
    assert t.footer[0]["rss_kb"] == 64620 and len(t.rows) == 20
    assert "same total" in paragraphs(mapper)


# -- bundles built here from real /proc text --------------------------------

def write_bundle(path, files: dict[str, str], ticks: list[dict[str, str]], *, close=True, missing=()):
    w = BundleWriter(str(path), {"tool_version": "0.0.test", "host": "oldbox", "kernel": "3.10.0-1160.el7.x86_64",
                                 "started_at": "2026-01-01T00:00:00Z", "duration_requested_s": len(ticks) - 1,
                                 "interval_s": 1.0, "clock": {"wall": 1.767e9, "monotonic": 100.0}})
    for name, data in files.items():
        w.add_file(name, data)
    for name, status, reason in missing:
        w.add_missing(name, status, reason)
    for k, texts in enumerate(ticks):
        w.add_tick(k, 1.767e9 + k, 100.0 + k, texts)
    if close:
        return w.close(complete=True, stopped_by="deadline", ended_at="2026-01-01T00:00:05Z")
    w._fh.flush()
    return w.partial_path


OLD_MEMINFO = ("MemTotal:        8010440 kB\nMemFree:         {free} kB\nBuffers:          209864 kB\n"
               "Cached:          4622380 kB\nSwapCached:            0 kB\nActive:          3613748 kB\n"
               "Inactive:        1779212 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n"
               "Dirty:                 4 kB\nAnonPages:        561000 kB\nSlab:             300000 kB\n"
               "Committed_AS:    2000000 kB\nHugePages_Total:       0\nHugePages_Free:        0\n"
               "Hugepagesize:       2048 kB\n")
OLD_VMSTAT = ("pgpgin {n}\npgpgout 0\npgfault {n}\npgmajfault 0\npgfree 0\npgscan_kswapd_normal {n}\n"
              "pgscan_direct_normal 0\npgsteal_kswapd_normal {half}\npgsteal_direct_normal 0\npswpin 0\npswpout 0\n")


def test_old_kernel_bundle(tmp_path):
    """3.10-like: no MemAvailable, no PSI, per-zone reclaim counters, no procs."""
    ticks = [{"proc/meminfo": OLD_MEMINFO.format(free=2000000 - k), "proc/vmstat": OLD_VMSTAT.format(n=100 * k,
              half=50 * k), "proc/uptime": f"{1000 + k}.00 2000.00\n"} for k in range(4)]
    files = {"proc/meminfo@start": ticks[0]["proc/meminfo"], "proc/meminfo@end": ticks[-1]["proc/meminfo"],
             "proc/vmstat@start": ticks[0]["proc/vmstat"], "proc/vmstat@end": ticks[-1]["proc/vmstat"]}
    path = write_bundle(tmp_path / "old.tar.zst", files, ticks,
                        missing=[("proc/pressure/memory@start", "missing", "kernel before 4.20 has no PSI"),
                                 ("series/proc/pressure/memory", "missing", "kernel before 4.20 has no PSI")])
    r = build_report(open_bundle(path))
    by = {s.id: s for s in r.sections}
    (row, *_), = [r.data_tables["sar-B"].rows]
    assert row["pgscank/s"] == 100.0 and row["pgsteal/s"] == 50.0 and row["%vmeff"] == 50.0
    assert r.data_tables["sar-r"].rows[0]["kbavail"] == 2000000 - 1     # MemFree stands in
    assert "MemAvailable" in paragraphs(by["free"])
    assert "kernel before 4.20 has no PSI" in paragraphs(by["psi"])
    assert "sar-q-MEM" not in r.data_tables
    assert {m["name"] for m in r.missing} >= {"proc/pressure/memory@start", "series/proc/pressure/memory"}


def test_incomplete_bundle_says_where_it_stopped(tmp_path):
    ticks = [{"proc/meminfo": text("meminfo"), "proc/vmstat": text("vmstat"), "proc/uptime": f"{10 + k}.00 1.00\n"}
             for k in range(3)]
    path = write_bundle(tmp_path / "cut.tar.zst", {"proc/meminfo@start": text("meminfo")}, ticks, close=False)
    assert path.endswith(".partial")
    r = build_report(open_bundle(path))
    m = r.meta
    assert m["complete"] is False and "final manifest" in m["incomplete_reason"]
    assert m["stopped_at"] == 1.767e9 + 2
    assert m["notes"][0].startswith("Incomplete bundle") and hms(m["stopped_at"]) in m["notes"][0]
    assert "(3 of 3 samples)" in m["notes"][0]
    assert len(r.data_tables["sar-B"].rows) == 2


def test_empty_bundle_renders_absences(tmp_path):
    path = write_bundle(tmp_path / "empty.tar.zst", {}, [])
    r = build_report(open_bundle(path))
    assert [s.id for s in r.sections][-len(CLASSIC_ORDER):] == CLASSIC_ORDER
    for s in r.sections:
        if s.id in ("free", "sar-B", "slabtop", "cgroups"):
            assert paragraphs(s).startswith("No "), s.id


def test_unparsable_artifact_is_listed_not_fatal(tmp_path):
    ticks = [{"proc/meminfo": text("meminfo"), "proc/vmstat": text("vmstat")} for _ in range(2)]
    path = write_bundle(tmp_path / "bad.tar.zst", {"proc/slabinfo@end": "slabinfo - version: 9.9\n",
                                                   "host/info": "{not json"}, ticks)
    r = build_report(open_bundle(path))
    errors = {m["name"]: m for m in r.missing if m["status"] == "error"}
    assert "9.9" in errors["proc/slabinfo@end"]["reason"] and "host/info" in errors
    slab = next(s for s in r.sections if s.id == "slabtop")
    assert "could not parse" in paragraphs(slab)


def test_long_window_is_shown_like_sar_i(tmp_path):
    n = 500
    vm = [f"pgpgin {k * k}\npgpgout 0\npgfault {k}\npgmajfault 0\npgfree 0\n" for k in range(n)]
    ticks = [{"proc/vmstat": vm[k], "proc/meminfo": text("meminfo"), "proc/uptime": f"{k}.00 0.00\n"}
             for k in range(n)]
    r = build_report(open_bundle(write_bundle(tmp_path / "long.tar.zst", {}, ticks)))
    full = r.data_tables["sar-B"]
    shown = next(b for s in r.sections if s.id == "sar-B" for b in s.blocks if isinstance(b, Table))
    assert len(full.rows) == n - 1 and len(shown.rows) <= 121
    assert shown.footer == full.footer and "sar -i" in shown.note
    # a thinned row is the rate over its whole stretch: pgpgin = k^2, so (b^2 - a^2) / (b - a) = a + b
    t0 = full.rows[0]["t"] - 1
    prev = 0
    for row in shown.rows[:5]:
        k = round(row["t"] - t0)
        assert k - prev > 1 and row["pgpgin/s"] == pytest.approx(prev + k)
        prev = k


def test_vmstat_s_of_procps_33_and_skipped_ticks(tmp_path):
    old_vmstat_s = ("      8147216 K total memory\n       574224 K used memory\n      3918760 pages paged in\n"
                    "     64968211 pages paged out\n       988896 non-nice user cpu ticks\n")
    ticks = [{"proc/meminfo": text("meminfo"), "proc/vmstat": text("vmstat")} for _ in range(2)]
    files = {"proc/meminfo@start": text("meminfo"), "proc/vmstat@start": text("vmstat"),
             "cmd/vmstat-s@start": old_vmstat_s}
    path = write_bundle(tmp_path / "v.tar.zst", files, ticks)
    b = open_bundle(path)
    b.manifest["skipped_ticks"] = 2
    r = build_report(b)
    labels = [row["label"] for row in r.data_tables["vmstat-s"].rows]
    assert "K paged in" in labels and not any("pages paged" in l for l in labels)
    assert "non-nice user cpu ticks" in labels
    assert any("2 sampling slot(s) were skipped" in n for n in r.meta["notes"])
