"""Each number a finding cites is the number its section shows.

For every bundle in samples/ and tests/fixtures/bundles/, and for a few
built datasets that make the growth, OOM and swap rules fire, the report
is built and each finding's evidence values are compared with the rows
of the table it points at:

- OOM victims: the kills OOM_KILL and MEMCG_OOM cite are the rows of the
  OOM section (pid, comm, anon-rss), no more and no fewer; the earlier
  kills OOM_BEFORE_WINDOW counts are the rows of the earlier-kills table;
  the timeline's OOM kills are the same victims;
- growth: TOP_GROWER's growers are rows of the growth table with the
  same first, peak and last RSS and growth; the timeline's growth events
  name processes of that table;
- pressure: PSI_PRESSURE, PSI_STALLS, SWAP_THRASHING and the quiet
  verdict cite the %smem/%fmem of the sar -q MEM table's Average: row;
- swap: SWAP_THRASHING's interval counts and peak rates are those of the
  sar -W rows; SWAP_FILLING's peak %swpused is that of the sar -S rows;
- cgroups: MEMCG_AT_LIMIT's hits are the rise the cgroups table shows;
- reclaim: DIRECT_RECLAIM_STALLS's count, p99 and worst stall are those
  of the reclaim section, per process too.
"""

from __future__ import annotations

import glob
import os
import re

import pytest

from findings_helpers import bpf, build, kmsg, oom_kill, proc, psi_ramp, ramp, stall
from snapcollect.bundle import open_bundle
from snapcollect.report.build import build_report, build_report_from_dataset

HERE = os.path.dirname(__file__)
REPO = os.path.join(HERE, "..", "..")
BUNDLES = sorted(glob.glob(os.path.join(REPO, "samples", "*.tar.zst"))
                 + glob.glob(os.path.join(REPO, "tests", "fixtures", "bundles", "*.tar.zst")))
MIB = 1024

KILL_LINES = [
    kmsg(12.5, "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/app,"
               "task_memcg=/app,task=java,pid=4711,uid=0", seq=1),
    kmsg(12.5, "Memory cgroup out of memory: Killed process 4711 (java) total-vm:1kB, anon-rss:900kB, "
               "file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0", seq=2),
    kmsg(-600, "Out of memory: Killed process 88 (old) total-vm:1kB, anon-rss:5kB, file-rss:0kB, "
               "shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0", before_window=True, seq=0),
]


def _procs(k: int) -> dict:
    # A steady grower, one that grew and shrank back (peak != last), the idle rest.
    out = {p.pid: p for p in build(n=1).procs[0].value.values()}
    out[900] = proc(900, "leaker", 200 * MIB + k * 30 * MIB)
    out[901] = proc(901, "spiky", 150 * MIB + (400 * MIB if 10 <= k <= 12 else 0))
    return out


def _stepped(ds, at_k: int = 15, step_s: float = 5.0):
    """The wall clock stepped forward by ``step_s`` at tick ``at_k`` (NTP), uptime steady.

    sar divides by the uptime delta, so a share computed over the wall
    clock would differ from its Average: row here.
    """
    from snapcollect.parsers.records import Point

    for name in ("vmstat", "meminfo", "psi", "procs", "numa"):
        setattr(ds, name, [Point(p.k, p.t + (step_s if p.k >= at_k else 0.0), p.value) for p in getattr(ds, name)])
    ds.uptime = [Point(p.k, p.t + (step_s if p.k >= at_k else 0.0), p.value) for p in ds.uptime]
    ds.end.t += step_s
    return ds


def _incident_dataset():
    swap_total = 4 * 1024 * MIB
    return _stepped(build(
        procs=_procs,
        vmstat={"pswpin": ramp(900), "pswpout": ramp(1200), "oom_kill": lambda k: 3 if k > 20 else 0},
        meminfo={"SwapTotal": swap_total, "SwapFree": lambda k: swap_total * (100 - min(95, 60 + 3 * k)) // 100},
        psi_at=psi_ramp(some_pct=30.0, full_pct=12.0),
        kmsg_lines=KILL_LINES,
        bpf=bpf(oom_kills=[oom_kill(20.0, 5150, "batch", memcg=False, anon_rss_kb=70 * MIB,
                                    constraint="CONSTRAINT_NONE")],
                # 60 stalls: a count at which percentile definitions (nearest rank,
                # rounded index) give different p99s
                reclaim=[stall(3.0 + i / 4, 900 + i % 2, "leaker" if i % 2 == 0 else "spiky", 0.5 + i * 2.5)
                         for i in range(60)])))


SOURCES = [pytest.param(("bundle", p), id=os.path.basename(p)) for p in BUNDLES] + [
    pytest.param(("dataset", _incident_dataset), id="built-incident"),
    pytest.param(("dataset", build), id="built-quiet"),
]


def report_of(source):
    kind, what = source
    if kind == "bundle":
        return build_report(open_bundle(what))
    return build_report_from_dataset(what())


def findings(report) -> dict:
    return {f.key: f for f in report.findings}


def rows(report, table_id: str) -> list[dict]:
    t = report.data_tables.get(table_id)
    return list(t.rows) if t is not None else []


def section_of(report, table_id: str) -> str | None:
    """Id of the section whose blocks hold table ``table_id``."""
    from snapcollect.report.model import Table

    def walk(sections):
        for sec in sections:
            if any(isinstance(b, Table) and b.id == table_id for b in sec.blocks):
                return sec.id
            found = walk(sec.subsections)
            if found:
                return found
        return None
    return walk(report.sections)


# The finding -> the table holding the numbers it cites (when it has kills: MEMCG_OOM
# of a counter alone points at the cgroups).
CITED_TABLE = {"OOM_KILL": "oom-kills", "TOP_GROWER": "processes-growth", "PSI_PRESSURE": "sar-q-MEM",
               "PSI_STALLS": "sar-q-MEM", "SWAP_THRASHING": "sar-W", "SWAP_FILLING": "sar-S",
               "MEMCG_AT_LIMIT": "cgroups"}


def close(a, b, tol=0.0006) -> bool:
    # evidence values are rounded to 3 decimals (engine._jsonable)
    return a is not None and b is not None and abs(a - b) <= tol


@pytest.fixture(scope="module", params=SOURCES)
def report(request):
    return report_of(request.param)


def test_there_is_something_to_compare():
    assert len(BUNDLES) >= 3


def test_oom_victims_cited_are_the_victims_shown(report):
    f = findings(report)
    cited = set()
    for key in ("OOM_KILL", "MEMCG_OOM"):
        if key in f:
            cited |= {(k["pid"], k["comm"], k["anon_rss_kb"]) for k in f[key].evidence.values["kills"]}
    shown = {(r["pid"], r["comm"], r["anon"]) for r in rows(report, "oom-kills")}
    assert cited == shown
    if "MEMCG_OOM" in f:
        memcg_rows = [r for r in rows(report, "oom-kills") if r["kind"].startswith("memcg")]
        assert f["MEMCG_OOM"].evidence.values["count"] >= len(memcg_rows)
    in_timeline = {int(m.group(1)) for e in report.timeline if e.kind == "oom"
                   for m in [re.match(r"OOM kill: .*?\(pid (\d+)", e.text)] if m}
    assert in_timeline == {pid for pid, _, _ in shown}
    earlier = rows(report, "oom-kills-earlier")
    if "OOM_BEFORE_WINDOW" in f:
        # one row per command and kind of OOM; its KILLS column counts them
        assert f["OOM_BEFORE_WINDOW"].evidence.values["count"] == sum(r["count"] for r in earlier)
    else:
        assert earlier == []


def test_growth_cited_is_the_growth_shown(report):
    table = {r["pid"]: r for r in rows(report, "processes-growth")}
    grower = findings(report).get("TOP_GROWER")
    if grower is not None:
        v = grower.evidence.values
        assert v["pid"] in table
        for g in v["growers"]:
            row = table[g["pid"]]
            assert (g["first_kb"], g["peak_kb"], g["last_kb"], g["growth_kb"]) == (
                row["first_kb"], row["peak_kb"], row["last_kb"], row["growth_kb"])
            assert close(g["ratio"], row["ratio"])
    leak = findings(report).get("MEMORY_LEAK")
    if leak is not None:
        v = leak.evidence.values
        row = table[v["pid"]]
        assert close(v["rate_kb_s"], row["rate_kb_s"]) and v["growth_kb"] == row["growth_kb"]
        assert close(v["seconds_left"], row["seconds_left"])
    grown = {int(m.group(1)) for e in report.timeline if e.kind == "growth"
             for m in [re.search(r"\(pid (\d+)\)", e.text)] if m}
    assert grown <= set(table)


def test_pressure_cited_is_the_sar_average(report):
    q = report.data_tables.get("sar-q-MEM")
    avg = q.footer[0] if q is not None and q.footer else None
    f = findings(report)
    for key, field, col in (("PSI_PRESSURE", "fmem", "%fmem"), ("PSI_PRESSURE", "smem", "%smem"),
                            ("PSI_STALLS", "smem", "%smem"), ("SWAP_THRASHING", "fmem", "%fmem")):
        if key in f and avg is not None:
            assert close(f[key].evidence.values[field], avg[col]), (key, field)
    quiet = re.search(r"memory stalls ([\d.]+)% of the time", report.verdict)
    if quiet and avg is not None:
        assert quiet.group(1) == f"{avg['%smem']:.2f}"


def test_swap_cited_is_the_swap_shown(report):
    f = findings(report)
    if "SWAP_THRASHING" in f:
        v = f["SWAP_THRASHING"].evidence.values
        w = rows(report, "sar-W")
        both = [r for r in w if r["pswpin/s"] > 0 and r["pswpout/s"] > 0]
        assert (v["n"], v["both"]) == (len(w), len(both))
        assert close(v["peak_in"], max(r["pswpin/s"] for r in both))
        assert close(v["peak_out"], max(r["pswpout/s"] for r in both))
    if "SWAP_FILLING" in f:
        v = f["SWAP_FILLING"].evidence
        t0, t1 = v.time_range
        s = [r["%swpused"] for r in rows(report, "sar-S") if isinstance(r["t"], float) and t0 <= r["t"] <= t1]
        assert close(v.values["swpused_pct_max"], max(s))


def _paragraphs(report, section_id: str) -> str:
    from snapcollect.report.model import Paragraph

    def walk(sections):
        for sec in sections:
            if sec.id == section_id:
                return " ".join(b.text for b in sec.blocks if isinstance(b, Paragraph))
            found = walk(sec.subsections)
            if found:
                return found
        return ""
    return walk(report.sections)


def test_reclaim_stalls_cited_are_the_stalls_shown(report):
    f = findings(report).get("DIRECT_RECLAIM_STALLS")
    if f is None or "stalls" not in f.evidence.values:
        return
    v = f.evidence.values
    text = _paragraphs(report, "reclaim")
    assert f"{v['stalls']} reclaim stall(s)" in text
    assert f"p99 {v['p99_us'] / 1000:.2f} ms, max {v['max_us'] / 1000:.2f} ms" in text
    per = {(r["pid"], r["comm"]): r for r in rows(report, "reclaim-by-process")}
    for p in v["by_process"]:
        row = per.get((p["pid"], p["comm"]))
        if row is not None:            # the table lists the first 20
            assert (row["count"], round(row["max_ms"], 3)) == (p["stalls"], round(p["max_us"] / 1000, 3))


def test_cgroup_limit_hits_cited_are_the_rise_shown(report):
    f = findings(report).get("MEMCG_AT_LIMIT")
    if f is None:
        return
    v = f.evidence.values
    row = {r["path"]: r for r in rows(report, "cgroups")}[v["group"]]
    shown = {k: int(x) for k, x in re.findall(r"(\w+) \d+ \(\+(\d+)\)", row["events"])}
    for event, rise in v["events_rise"].items():
        assert shown.get(event) == rise, (event, rise, row["events"])
    as_printed = [None if x is None else round(x) for x in (row["at_limit_s"], v["at_limit_s"])]
    assert as_printed[0] == as_printed[1]      # as both print it (None: no series, only snapshots)
    assert row["limit_kb"] == v["limit_bytes"] / 1024


def test_each_finding_points_at_the_section_showing_its_numbers(report):
    f = findings(report)
    for key, table in CITED_TABLE.items():
        if key in f:
            assert f[key].evidence.section == section_of(report, table), key
    if "MEMCG_OOM" in f and f["MEMCG_OOM"].evidence.values["kills"]:
        assert f["MEMCG_OOM"].evidence.section == section_of(report, "oom-kills")


def test_the_built_incident_fires_what_it_is_built_for():
    r = report_of(("dataset", _incident_dataset))
    fired = set(findings(r))
    assert {"OOM_KILL", "MEMCG_OOM", "OOM_BEFORE_WINDOW", "TOP_GROWER", "PSI_PRESSURE", "SWAP_THRASHING",
            "SWAP_FILLING", "DIRECT_RECLAIM_STALLS"} <= fired, fired
    spiky = {row["pid"]: row for row in rows(r, "processes-growth")}[901]
    assert spiky["peak_kb"] != spiky["last_kb"]
