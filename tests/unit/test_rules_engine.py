"""The findings engine: inputs, skips, failures, ordering, and the fixture bundle."""

import copy
import glob
import os
import re

import pytest
from findings_helpers import bpf, build, delay_reads, dive_target, kmsg, psi_ramp, ramp

from snapcollect.analysis.dataset import Dataset, Snapshot
from snapcollect.analysis.findings import engine
from snapcollect.analysis.findings.engine import OPT_IN_INPUTS, Hit, SkipRule, all_rules, evaluate
from snapcollect.analysis.findings.rule import rule as register_rule
from snapcollect.analysis.incident import build_incident
from snapcollect.parsers.records import Point

HERE = os.path.dirname(__file__)


def _empty() -> Dataset:
    return Dataset(manifest={}, host={}, interval_s=1.0, page_size=4096, start=Snapshot(), end=Snapshot())


def test_no_rule_raises_on_an_empty_dataset():
    findings, skipped = evaluate(_empty())
    assert findings == []
    assert not [s for s in skipped if s.reason.startswith("rule failed")]
    # every rule was either run quietly or skipped with a reason naming its input
    assert all(s.reason.startswith("needs ") for s in skipped)
    assert {s.key for s in skipped} >= {"SWAP_THRASHING", "PSI_FULL_SEVERE", "SLAB_GROWTH", "OOM_KILL"}


def test_no_rule_raises_on_degenerate_inputs():
    # one sample only, zero MemTotal, empty maps: odd but possible
    ds = build(n=1, meminfo={"MemTotal": 0, "SwapTotal": 0}, vmstat={"pgscan_kswapd": None})
    ds.start.slabinfo, ds.end.buddyinfo, ds.end.zoneinfo = [], [], {"zones": {}, "nodes": {}}
    ds.procs = [Point(0, ds.procs[0].t, {})]
    for d in (ds, build(n=2, psi_at=psi_ramp(no_full=True))):
        findings, skipped = evaluate(d)
        assert not [s for s in skipped if s.reason.startswith("rule failed")], skipped


def test_a_failing_rule_is_skipped_with_the_error_and_others_still_run():
    def broken(ds):
        return {}["nope"]
    bad = engine.Rule("TEST_BROKEN", "x", ("INFO",), "d", "t", "e", "th", "heuristic", (), "psi", broken)
    good = engine.get_rule("DROP_CACHES")
    ds = build(vmstat={"drop_pagecache": ramp(1)})
    findings, skipped = evaluate(ds, [bad, good])
    assert [f.key for f in findings] == ["DROP_CACHES"]
    assert skipped[0].key == "TEST_BROKEN"
    assert skipped[0].reason.startswith("rule failed: KeyError: 'nope' (test_rules_engine.py:")


def test_skiprule_and_undeclared_severity():
    def skip(ds):
        raise SkipRule("needs something this kernel lacks")

    def wrong(ds):
        return Hit("CRIT", {}, [], None)
    rules = [engine.Rule("T_SKIP", "x", ("INFO",), "d", "t", "e", "th", "h", (), "psi", skip),
             engine.Rule("T_WRONG", "x", ("INFO",), "d", "t", "e", "th", "h", (), "psi", wrong)]
    _, skipped = evaluate(build(), rules)
    assert skipped[0].reason == "needs something this kernel lacks"
    assert "returned severity CRIT" in skipped[1].reason


def test_registration_rejects_bad_keys():
    with pytest.raises(ValueError):
        register_rule(key="lower_case", area="x", severities=("INFO",), detects="", title="", explanation="",
                    threshold="", source="", needs=[], section="psi")
    with pytest.raises(ValueError):
        register_rule(key="X", area="x", severities=("FATAL",), detects="", title="", explanation="",
                    threshold="", source="", needs=[], section="psi")


def test_findings_sorted_by_severity_and_report_filled():
    ds = build(vmstat={"pswpin": ramp(3000), "pswpout": ramp(3000), "pgscan_kswapd": ramp(10),
                       "drop_slab": ramp(1, ticks=range(2, 3))},
               psi_at=psi_ramp(some_pct=60, full_pct=50),
               kmsg_lines=[kmsg(4, "x: page allocation failure: order:0, mode:0x0()")])
    report = build_incident(ds)
    sev = [f.severity for f in report.findings]
    assert sev == sorted(sev, key=["CRIT", "HIGH", "WARN", "INFO"].index)
    assert report.worst_severity == "HIGH"
    assert {"SWAP_THRASHING", "PSI_PRESSURE", "KMSG_ALLOC_FAILURE", "PAGE_SCANNING", "DROP_CACHES"} <= {
        f.key for f in report.findings}
    assert report.timeline and report.verdict.startswith("HIGH: ")


def test_quiet_dataset_reports_nothing_at_warn_or_above():
    report = build_incident(build(bpf=bpf()))
    assert report.findings == [] and report.worst_severity is None and report.skipped_rules == []
    assert report.verdict.startswith("No memory problem found in this window:")


def test_every_rule_is_declared_completely():
    keys = [r.key for r in all_rules()]
    assert len(keys) == len(set(keys))
    sections = {"free", "vmstat-s", "swapon", "psi", "sar-B", "sar-r", "sar-S", "sar-W", "sar-H",
                "pidstat-r", "top-processes", "pmap", "slabtop", "numastat", "buddyinfo", "cgroups", "kmsg",
                "oom", "reclaim", "compaction", "page-faults", "heap-growth", "shmem", "deepdive", "bpf-cost",
                "fault-files", "delays", "shrinkers", "kswapd-activity", "migration"}
    for r in all_rules():
        assert r.section in sections, r.key
        assert r.detects and r.title and r.explanation and r.threshold and r.source and r.needs, r.key


def test_every_rule_is_skipped_with_its_inputs_named_when_nothing_was_collected():
    _, skipped = evaluate(_empty())
    reasons = {s.key: s.reason for s in skipped}
    for r in all_rules():
        if r.needs[0][0] in OPT_IN_INPUTS:
            # not asked for (--pid): nothing is missing, the rule looks at no process
            assert r.key not in reasons, reasons[r.key]
            continue
        assert r.key in reasons, f"{r.key} ran without its inputs"
        assert reasons[r.key].startswith(f"needs {r.needs[0][0]} (not in this bundle)"), reasons[r.key]


def test_every_rule_has_its_own_tests():
    text = "".join(open(p).read() for p in glob.glob(os.path.join(HERE, "test_rules_*.py"))
                   if not p.endswith("test_rules_engine.py"))
    for r in all_rules():
        assert len(re.findall(rf'run\("{r.key}", ', text)) >= 3, f"{r.key}: fewer than 3 cases"


def test_fixture_bundle_memcg_swap():
    """The real bundle of tests/fixtures (a process cycling 200 MiB in a 64 MiB memcg with swap)."""
    from snapcollect.analysis.dataset import load_dataset
    from snapcollect.bundle import open_bundle

    ds = load_dataset(open_bundle(os.path.join(HERE, "..", "fixtures", "bundles", "memcg-swap-6.18.tar.zst")))
    findings, skipped = evaluate(ds)
    by = {f.key: f for f in findings}
    assert by["SWAP_THRASHING"].severity == "HIGH"
    assert by["MEMCG_AT_LIMIT"].evidence.values["group"] == "/snapfix"
    assert by["PSI_PRESSURE"].severity == "WARN"
    assert not [s for s in skipped if s.reason.startswith("rule failed")]


def test_a_host_on_fire_fires_nearly_every_rule_without_failures():
    from findings_helpers import (BASE_PROCS, BASE_SLABINFO, BASE_SYSVM, GIB_KB, MEMTOTAL, bpf, compaction,
                                  fault_files, fault_process, kswapd_run, memcg, migration, oom_kill, proc,
                                  shrinker, slab, stall)
    from snapcollect.parsers.records import MemCgroup  # noqa: F401  (memcg() builds these)

    swap = 2 * GIB_KB
    low = int(MEMTOTAL * 0.04)
    mi = {"MemAvailable": low, "MemFree": low, "SwapTotal": swap, "SwapFree": swap // 25,
          "SUnreclaim": int(MEMTOTAL * 0.2), "Committed_AS": int(MEMTOTAL * 1.2), "CommitLimit": MEMTOTAL,
          "HugePages_Total": 8, "HugePages_Free": 0, "Unevictable": lambda k: 16480 + k * 20000,
          "Dirty": lambda k: 400_000, "Active(file)": 100_000, "Inactive(file)": 100_000,
          "Slab": lambda k: 200_000 + k * 9000, "Shmem": lambda k: 8872 + k * 10_000}
    vm = {name: ramp(per) for name, per in {
        "pswpin": 3000, "pswpout": 3000, "pgmajfault": 3000, "pgscan_kswapd": 5000, "pgscan_direct": 5000,
        "pgsteal_kswapd": 500, "pgsteal_direct": 100, "pgsteal_file": 600, "allocstall_normal": 10,
        "pgscan_direct_throttle": 1, "workingset_refault_file": 800, "workingset_activate_file": 100,
        "compact_stall": 5, "compact_fail": 4, "thp_fault_alloc": 10, "thp_fault_fallback": 10,
        "oom_kill": 0, "drop_slab": 0}.items()}
    vm["oom_kill"] = ramp(1, ticks=range(20, 22))
    zi = copy.deepcopy(build().end.zoneinfo)
    zi["zones"][(0, "Normal")]["free"] = 0
    procs = lambda k: {**BASE_PROCS, 4711: proc(4711, "java", 13 * GIB_KB + k * 100_000, majflt=2000 * k,  # noqa: E731
                                               swap_kb=500_000)}
    frag = [{"node": 0, "zone": "Normal", "free": [900000, 40000, 9000, 2000, 0, 0, 0, 0, 0, 0, 0]}]
    lines = [kmsg(3, "java: page allocation failure: order:3, mode:0x0()"),
             kmsg(4, "INFO: task kswapd0:90 blocked for more than 120 seconds."),
             kmsg(20.5, "Out of memory: Killed process 4711 (java) total-vm:1kB, anon-rss:900kB, file-rss:0kB, "
                        "shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0"),
             kmsg(-50, "Out of memory: Killed process 9 (x) total-vm:1kB, anon-rss:1kB, file-rss:0kB, "
                       "shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0", before_window=True)]
    ds = build(n=61, meminfo=mi, vmstat=vm, psi_at=psi_ramp(some_pct=80, full_pct=70, full_avg10=75.0),
               procs=procs, kmsg_lines=lines,
               deepdive=[dive_target(held=[0, 1 << 20, 2 << 20], outstanding=2 << 20)],
               numa=lambda k: {0: {"numa_hit": 10**6 + 100 * k, "numa_miss": 400 * k}},
               bpf=bpf(oom_kills=[oom_kill(30, 5, "db", memcg=True, oom_memcg="/db"),
                                  oom_kill(20.5, 4711, "java", memcg=False)],
                       reclaim=[stall(10, 4711, "java", 250)], compaction=[compaction(11, 4711, "java", 30)],
                       fault_files=fault_files(fault_process(4711, "java", swapins=20_000),
                                               fault_process(4712, "app", code=900)),
                       shrinkers=[shrinker(max_ms=150, total_ms=400)], kswapd_runs=[kswapd_run(1, 45)],
                       migration_by_reason=[migration(succeeded=1000, failed=5000)],
                       migration_by_proc=[migration(succeeded=1000, failed=5000, pid=4711, comm="java")]),
               start={"slabinfo": [c for c in BASE_SLABINFO if c.name != "dentry"] + [slab("dentry", 1000)],
                      "memcgs": {"/db": memcg("/db", 1, 2, failcnt=0, oom_kill=0)}, "zoneinfo": zi},
               end={"slabinfo": [c for c in BASE_SLABINFO if c.name != "dentry"] + [slab("dentry", 200_000)],
                    "memcgs": {"/db": memcg("/db", 2, 2, failcnt=70, oom_kill=1)}, "zoneinfo": zi,
                    "buddyinfo": frag, "sysvm": dict(BASE_SYSVM)})
    ds.manifest = {**ds.manifest, "bpf": {"kernel": "6.18.44", "headers_release": "6.1.0-57-amd64",
                                          "header_layouts": {}}}
    # java waits 40% of the window for swap-in and 30% in direct reclaim
    ds.delays = delay_reads(ds, {4711: ("java", 0.4 * 60, 0.3 * 60)})
    report = build_incident(ds)
    assert not report.skipped_rules, report.skipped_rules
    fired = {f.key for f in report.findings}
    not_fired = {r.key for r in all_rules()} - fired
    assert not_fired == {"DROP_CACHES"}, not_fired      # nobody dropped caches
    for f in report.findings:
        assert "{" not in f.title and "{" not in f.explanation, f.key
    assert report.worst_severity == "CRIT"
    assert report.verdict.startswith("Memory pressure was already high at 02:20:00; direct reclaim stalled java "
                                     "(pid 4711) up to 250 ms; at 02:20:20 the kernel OOM-killed java (pid 4711) "
                                     "with the whole system out of memory, then 1 more process(es).")


def test_a_failing_timeline_or_verdict_does_not_cost_the_findings(monkeypatch):
    import snapcollect.analysis.incident as incident

    def boom(*a):
        raise ValueError("boom")
    monkeypatch.setattr(incident, "build_timeline", boom)
    monkeypatch.setattr(incident, "build_verdict", boom)
    report = build_incident(build(vmstat={"drop_pagecache": ramp(1)}, bpf=bpf()))
    assert [f.key for f in report.findings] == ["DROP_CACHES"]
    assert {(s.key, s.reason) for s in report.skipped_rules} == {
        ("TIMELINE", "timeline failed: ValueError: boom"), ("VERDICT", "verdict failed: ValueError: boom")}
