"""Memory cgroups over time: the series parser, the model's facts, and the rules that read them.

MEMCG_AT_LIMIT, PAGECACHE_THRASHING per cgroup, and the cgroup the
reclaim and pressure findings name, on v1 and v2 groups built from the
raw files the collector stores (``series/cgroups/memory``).
"""

import json

import pytest

from findings_helpers import GIB_KB, MEMTOTAL, bpf, build, proc, psi_ramp, ramp, run, stall
from snapcollect.analysis.cgroup_series import cgroup_series, memcg_reclaim, task_cgroups, thrashing
from snapcollect.analysis.incident import build_incident
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.cgroups import parse_cgroups

MIB = 1 << 20
PAGE = 4096


def v1_files(usage, limit, rss, cache, shmem=0, refault=0, failcnt=0, memsw_failcnt=0, procs=()):
    return {"memory.usage_in_bytes": f"{usage}\n", "memory.limit_in_bytes": f"{limit}\n",
            "memory.memsw.usage_in_bytes": f"{usage}\n", "memory.memsw.limit_in_bytes": f"{limit}\n",
            "memory.failcnt": f"{failcnt}\n", "memory.memsw.failcnt": f"{memsw_failcnt}\n",
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            "memory.stat": (f"cache {cache}\nrss {rss}\nshmem {shmem}\nworkingset_refault_file {refault}\n"
                            f"total_cache {cache}\ntotal_rss {rss}\ntotal_shmem {shmem}\n"
                            f"total_workingset_refault_file {refault}\n"),
            "cgroup.procs": "".join(f"{p}\n" for p in procs)}


def v2_files(current, mx="max", high="max", anon=0, file=0, shmem=0, kernel=None, refault=0, pgscan=0,
             pgsteal=0, max_events=0, procs=()):
    stat = f"anon {anon}\nfile {file}\nshmem {shmem}\nworkingset_refault_file {refault}\n" \
           f"pgscan {pgscan}\npgsteal {pgsteal}\n"
    if kernel is not None:
        stat += f"kernel {kernel}\n"
    else:
        stat += "slab 4096\nkernel_stack 8192\npagetables 4096\n"
    return {"memory.current": f"{current}\n", "memory.max": f"{mx}\n", "memory.high": f"{high}\n",
            "memory.events": f"low 0\nhigh 0\nmax {max_events}\noom 0\noom_kill 0\n", "memory.stat": stat,
            "memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                               "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
            "cgroup.procs": "".join(f"{p}\n" for p in procs)}


def groups(version, **by_path):
    """Parsed groups from raw files, as the loader parses a tick of the series."""
    doc = {"version": version, "root": "/sys/fs/cgroup", "groups": {"/": {}}}
    doc["groups"].update({p.replace("__", "/").replace("_", "-"): f for p, f in by_path.items()})
    return parse_cgroups(json.dumps(doc))["groups"]


def procs_with(*extra):
    from findings_helpers import BASE_PROCS
    out = dict(BASE_PROCS)
    for p in extra:
        out[p.pid] = p
    return out


# -- parser -----------------------------------------------------------------

def test_parser_tasks_memsw_failcnt_and_a_partial_last_pid():
    g = groups(1, __app=dict(v1_files(64 * MIB, 64 * MIB, 60 * MIB, 0, memsw_failcnt=7),
                             **{"cgroup.procs": "10\n20\n3"}))["/app"]
    assert g.tasks == (10, 20)                       # "3" was cut at the size cap
    assert g.events["memsw_failcnt"] == 7 and g.events["failcnt"] == 0


@pytest.mark.parametrize("doc", [
    {"version": 2, "groups": {"/a": ["not", "a", "map"]}},
    {"version": 2, "groups": {"relative": {}}},
    {"version": 1, "groups": {"/a": {"memory.usage_in_bytes": "12x\n"}}},
])
def test_parser_hostile_documents_are_parse_errors(doc):
    with pytest.raises(ParseError):
        parse_cgroups(json.dumps(doc))


def test_parser_ignores_file_values_that_are_not_text():
    g = parse_cgroups(json.dumps({"version": 2, "groups": {"/a": {"memory.current": 5, "memory.max": "10\n"}}}))
    assert g["groups"]["/a"].usage_bytes is None and g["groups"]["/a"].limit_bytes == 10


# -- the model's facts ------------------------------------------------------

def test_series_time_at_limit_fill_refaults_and_tasks_v1():
    lim = 512 * MIB

    def at(k):   # 50% for 10 ticks, then at 99.9% by anon for 20
        usage = lim // 2 if k < 10 else lim - MIB // 2
        return groups(1, __app=v1_files(usage, lim, usage - 10 * MIB, 8 * MIB, refault=100 * k, procs=(4711,)),
                      __app__worker=v1_files(MIB, lim, MIB, 0, procs=(4712,)))
    ds = build(memcgs=at)
    g = cgroup_series(ds)["/app"]
    assert g.covered_s == 30 and g.at_limit_s == 20 and g.at_near_s == 20
    assert g.limit_bytes == lim and g.peak_pct == pytest.approx(99.9, abs=0.01)
    assert g.fill.anon == lim - MIB // 2 - 10 * MIB and g.fill.file == 8 * MIB and g.fill.kernel == 2 * MIB
    assert g.refaults_file == 3000 and g.scanned is None          # v1 has no pgscan
    assert g.tasks == (4711, 4712) and g.own_tasks == (4711,)
    assert task_cgroups(cgroup_series(ds)) == {4711: "/app", 4712: "/app/worker"}


def test_series_counter_reset_is_not_a_negative_rise_and_snapshots_stand_in():
    vals = [0, 100, 200, 5, 50]     # the group was made again at tick 3
    ds = build(n=5, memcgs=lambda k: groups(2, __a=v2_files(MIB, refault=vals[k])))
    assert cgroup_series(ds)["/a"].refaults_file == 200 + 45
    ds.memcgs = []                  # an older bundle: only the snapshots
    g = cgroup_series(ds)["/a"]
    assert len(g.samples) == 2 and g.source == ("cgroups/memory@start", "cgroups/memory@end")


def test_a_group_that_joined_the_series_late_keeps_the_kill_its_snapshot_saw():
    # The group filled and was OOM-killed before the series first read it
    # (chosen later, or a slow host's ticks had no time for the cgroups):
    # the series first reads it with the kill counted already. Seen in a
    # 6.1 guest whose first cgroups read came 34 s after the start snapshot.
    def tick(k):
        files = v2_files(60 * MIB, mx=64 * MIB, max_events=10 * (k >= 3), procs=(4711,))
        files["memory.events"] = files["memory.events"].replace("oom_kill 0", f"oom_kill {int(k >= 3)}")
        return groups(2, __victim=files) if k >= 3 else groups(2)
    ds = build(n=6, memcgs=tick)
    ds.start.memcgs = groups(2, __victim=v2_files(0))          # read for every group at the start
    g = cgroup_series(ds)["/victim"]
    assert g.events == {"max": 10, "oom_kill": 1}
    # A group followed from the first sample rises over the series alone.
    ds = build(n=6, memcgs=lambda k: groups(2, __a=v2_files(MIB, max_events=2 * k)))
    ds.start.memcgs = groups(2, __a=v2_files(MIB, max_events=1000))
    assert cgroup_series(ds)["/a"].events == {"max": 10}


def test_v2_effective_limit_is_memory_high_when_lower_and_kernel_falls_back():
    ds = build(memcgs=lambda k: groups(2, __web=v2_files(95 * MIB, mx=200 * MIB, high=100 * MIB, anon=90 * MIB)))
    g = cgroup_series(ds)["/web"]
    assert g.limit_bytes == 100 * MIB and g.peak_pct == 95.0
    assert g.fill.kernel == 16384          # slab + kernel_stack + pagetables before 5.18's "kernel"


def test_memcg_reclaim_from_vmstat_anon_file_split():
    """Reclaim at cgroup limits is in pgsteal_file but not in pgsteal_kswapd/direct."""
    ds = build(vmstat={"pgscan_file": ramp(1000), "pgsteal_file": ramp(900), "pgscan_anon": 0,
                       "pgsteal_anon": 0, "pgscan_kswapd": ramp(100), "pgsteal_kswapd": ramp(100)})
    r = memcg_reclaim(ds)
    assert r.scanned_per_s == 900 and r.stolen_per_s == 800 and r.stolen == 24000
    assert r.peak_stolen_per_s == 800


# -- MEMCG_AT_LIMIT ------------------------------------------------------------

def _held_v1(stalls=(), with_procs=True):
    lim = 512 * MIB
    ds = build(memcgs=lambda k: groups(1, __batch=v1_files(lim - MIB, lim, 490 * MIB, 15 * MIB, procs=(4711,))),
               procs=(lambda k: procs_with(proc(4711, "cruncher", 500 * 1024))) if with_procs else None,
               bpf=bpf(reclaim=list(stalls)))
    return ds


def test_memcg_held_at_its_limit_by_anon_v1_is_warn_and_names_group_fill_and_tasks():
    f, _ = run("MEMCG_AT_LIMIT", _held_v1())
    assert f.severity == "WARN"
    assert f.title == ("Memory cgroup /batch held at its limit (512.0 MiB) for 30 s of 30 s, filled by anon; "
                       "tasks: cruncher (pid 4711)")
    assert "anon 490.0 MiB, file cache 15.0 MiB" in f.explanation
    assert "Its tasks: cruncher (pid 4711)" in f.explanation
    assert "Raise the group's limit" in f.explanation
    v = f.evidence.values
    assert v["limit_bytes"] == 512 * MIB and v["at_limit_s"] == 30 and v["covered_s"] == 30
    assert f.evidence.artifacts == ["series/cgroups/memory"] and f.evidence.section == "cgroups"


def test_memcg_full_of_page_cache_is_info_unless_its_tasks_stall():
    lim = 200 * MIB
    cache_full = lambda k: groups(1, __reader=v1_files(lim, lim, 5 * MIB, lim - 6 * MIB, procs=(77,)))  # noqa: E731
    f, _ = run("MEMCG_AT_LIMIT", build(memcgs=cache_full))
    assert f.severity == "INFO" and "Mostly page cache" in f.explanation
    felt = build(memcgs=cache_full, bpf=bpf(reclaim=[stall(3.0, 77, "reader", 25, kind="memcg")]))
    f, _ = run("MEMCG_AT_LIMIT", felt)
    assert f.severity == "WARN" and "the longest 25 ms" in f.explanation


def test_memcg_close_to_its_limit_without_reclaim_is_info_v2():
    lim = 512 * MIB
    ds = build(memcgs=lambda k: groups(2, __svc=v2_files(int(0.94 * lim), mx=lim, anon=int(0.93 * lim),
                                                         kernel=2 * MIB, procs=(300,))),
               procs=lambda k: procs_with(proc(300, "svc", 470 * 1024)))
    f, _ = run("MEMCG_AT_LIMIT", ds)
    assert f.severity == "INFO"
    assert f.title == "Memory cgroup /svc is close to its limit: 94% (481.3 MiB of 512.0 MiB); tasks: svc (pid 300)"
    assert "30.7 MiB is left" in f.explanation


def test_memcg_below_90_percent_or_unlimited_is_quiet():
    ds = build(memcgs=lambda k: groups(2, __a=v2_files(80 * MIB, mx=100 * MIB), __b=v2_files(900 * MIB)))
    assert run("MEMCG_AT_LIMIT", ds)[0] is None


def test_memcg_at_limit_v2_max_events_from_the_series():
    ds = build(memcgs=lambda k: groups(2, __a=v2_files(50 * MIB, mx=100 * MIB, anon=50 * MIB, max_events=3 * k)))
    f, _ = run("MEMCG_AT_LIMIT", ds)
    assert f.evidence.values["events_rise"] == {"max": 90}
    assert f.title.startswith("Memory cgroup /a hit its limit (100.0 MiB): max +90")


# -- reclaim and pressure findings name the cgroup ------------------------------

def test_reclaim_stalls_in_a_group_at_its_limit_name_it_and_advise_its_limit():
    stalls = [stall(2.0, 4711, "cruncher", 400, kind="memcg"), stall(3.0, 4711, "cruncher", 5, kind="memcg")]
    f, _ = run("DIRECT_RECLAIM_STALLS", _held_v1(stalls))
    assert f.severity == "HIGH"
    assert f.title == ("Allocating tasks stalled in reclaim in memory cgroup /batch: 1 task(s), worst cruncher "
                       "(pid 4711) 400 ms")
    assert "raise that group's memory limit" in f.explanation
    assert "vm.min_free_kbytes do not help here" in f.explanation
    assert f.evidence.values["cgroup"] == "/batch"


def test_reclaim_stalls_outside_followed_groups_keep_the_host_advice():
    f, _ = run("DIRECT_RECLAIM_STALLS", build(bpf=bpf(reclaim=[stall(2.0, 9, "x", 50)])))
    assert f.evidence.values["cgroup"] is None and "raise vm.min_free_kbytes" in f.explanation


def test_reclaim_in_a_group_when_the_host_is_short_too_says_both():
    ds = _held_v1([stall(2.0, 4711, "cruncher", 50, kind="memcg")])
    low = build(meminfo={"MemAvailable": MEMTOTAL // 20}, memcgs=lambda k: ds.memcgs[k].value,
                procs=lambda k: ds.procs[k].value, bpf=ds.bpf)
    f, _ = run("DIRECT_RECLAIM_STALLS", low)
    assert f.evidence.values["cgroup"] == "/batch" and "the host was short of memory too" in f.explanation


def test_host_psi_from_stalls_in_one_group_names_it():
    ds = _held_v1([stall(2.0, 4711, "cruncher", 400, kind="memcg")])
    ds.psi = build(psi_at=psi_ramp(some_pct=20, full_pct=8)).psi
    f, _ = run("PSI_PRESSURE", ds)
    assert f.title.startswith("Memory pressure (reclaim in memory cgroup /batch): all tasks stalled")
    assert "raise that group's memory limit" in f.explanation


# -- page cache thrashing ---------------------------------------------------------

def _thrash_v1(n=31):
    lim = 200 * MIB
    # 100 MiB/s of refaults into a cache of ~194 MiB; no activations at all.
    per_tick = 100 * MIB // PAGE
    ds = build(n=n, memcgs=lambda k: groups(1, __scan=v1_files(lim, lim, 4 * MIB, lim - 6 * MIB,
                                                                refault=per_tick * k, procs=(555,))),
               procs=lambda k: procs_with(proc(555, "scanner", 20 * 1024)),
               vmstat={"workingset_refault_file": ramp(per_tick), "pgsteal_file": ramp(per_tick),
                       "workingset_activate_file": 0},
               bpf=bpf(reclaim=[stall(1.0 + i / 10, 555, "scanner", 3, kind="memcg") for i in range(100)]))
    return ds


def test_thrashing_in_a_v1_group_without_activations_names_the_group_and_reader():
    ds = _thrash_v1()
    f, _ = run("PAGECACHE_THRASHING", ds)
    assert f.severity == "WARN" and f.evidence.section == "cgroups"
    assert f.title == ("Page cache thrashing in memory cgroup /scan: 2.9 GiB of evicted file pages read back in "
                       "30 s, 15x its page cache (194.0 MiB), read by scanner (pid 555)")
    assert "which read it: scanner (pid 555)" in f.explanation
    assert "(host-wide refault/steal 100%)" in f.explanation      # v1 memory.stat has no pgsteal
    assert "stalled in reclaim 100 time(s), 300 ms in all" in f.explanation
    assert f.evidence.values["cgroup"] == "/scan" and f.evidence.values["turnover"] == pytest.approx(15.46, 0.01)


def test_the_thrashing_groups_stalls_and_limit_are_not_separate_warnings():
    report = build_incident(_thrash_v1())
    loud = {f.key: f.severity for f in report.findings if f.severity in ("CRIT", "HIGH", "WARN")}
    assert loud == {"PAGECACHE_THRASHING": "WARN"}, loud
    at = next(f for f in report.findings if f.key == "MEMCG_AT_LIMIT")
    assert at.severity == "INFO" and "see PAGECACHE_THRASHING" in at.explanation
    assert "/scan" in report.verdict and "scanner (pid 555)" in report.verdict


def test_a_group_filled_by_anon_whose_cache_thrashes_is_a_limit_warning():
    """490 MiB of anon in 512 MiB: the rest is too little for its files and
    code, which thrash. The cause is what fills the group, so the limit
    stays a warning and names the thrashing as what its tasks feel."""
    lim = 512 * MIB
    per_tick = 100 * MIB // PAGE
    ds = build(memcgs=lambda k: groups(1, __hold=v1_files(lim, lim, 490 * MIB, 20 * MIB,
                                                           refault=per_tick * k, procs=(777,))),
               procs=lambda k: procs_with(proc(777, "holder", 490 * 1024)),
               vmstat={"workingset_refault_file": ramp(per_tick), "pgsteal_file": ramp(per_tick),
                       "workingset_activate_file": 0})
    assert run("PAGECACHE_THRASHING", ds)[0] is not None
    f, _ = run("MEMCG_AT_LIMIT", ds)
    assert f.severity == "WARN", f.explanation
    assert "leave its page cache too little room" in f.explanation and "PAGECACHE_THRASHING" in f.explanation
    assert "holder (pid 777)" in f.explanation


def test_thrashing_v2_group_needs_refault_steal_of_half():
    per_tick = 50 * MIB // PAGE

    def at(steal_per_tick):
        return lambda k: groups(2, __job=v2_files(100 * MIB, mx=100 * MIB, file=90 * MIB, anon=8 * MIB, kernel=MIB,
                                                  refault=per_tick * k, pgsteal=steal_per_tick * k))
    f, _ = run("PAGECACHE_THRASHING", build(memcgs=at(per_tick)))
    assert f.evidence.values["refault_steal_pct"] == 100.0 and "refault/steal 100%" in f.explanation
    # Most evicted pages never come back: a stream, not thrashing.
    assert run("PAGECACHE_THRASHING", build(memcgs=at(per_tick * 4)))[0] is None


def test_thrashing_host_wide_without_activations():
    """A file bigger than the cache read in a loop: refaults, never activated."""
    per_tick = 300 * MIB // PAGE
    cache_kb = 2 * GIB_KB
    ds = build(vmstat={"workingset_refault_file": ramp(per_tick), "pgsteal_file": ramp(per_tick),
                       "workingset_activate_file": 0},
               meminfo={"Active(file)": cache_kb // 2, "Inactive(file)": cache_kb // 2})
    ths = thrashing(ds, cgroup_series(ds))
    assert [t.where for t in ths] == ["host"]
    f, _ = run("PAGECACHE_THRASHING", ds)
    assert f.title.startswith("Page cache thrashing: 8.8 GiB of evicted file pages read back in 30 s, 4x the page cache")
    assert f.evidence.values["cgroup"] is None and f.evidence.section == "sar-B"


def test_refaults_below_the_cache_size_are_not_thrashing():
    per_tick = 1 * MIB // PAGE        # 30 MiB over the window against a 2 GiB cache
    ds = build(vmstat={"workingset_refault_file": ramp(per_tick), "pgsteal_file": ramp(per_tick),
                       "workingset_activate_file": 0},
               meminfo={"Active(file)": GIB_KB, "Inactive(file)": GIB_KB})
    assert run("PAGECACHE_THRASHING", ds)[0] is None


# -- hostile series ---------------------------------------------------------------

HOSTILE_TICKS = [
    "not json", "[]", '{"version": 3, "groups": {}}', '{"version": 2, "groups": []}',
    '{"version": 2, "groups": {"/a": {"memory.current": "1e999\\n"}}}',
    '{"version": 1, "groups": {"/a": {"memory.stat": "cache x\\n"}}}',
    '{"version": 2, "groups": {"/a": {"memory.current": "1' + "0" * 5000 + '\\n", "memory.max": "-5\\n"}}}',
    '{"version": 2, "groups": {"/a": {"memory.stat": "anon 99999999999999999999999999999\\n", '
    '"cgroup.procs": "-1\\n\\u00ff\\n0x10\\n99999999999999999999\\n"}}}',
    '{"version": 2, "groups": {"/a": {"memory.pressure": "garbage"}}}',
    '{"version": 1, "groups": {"/a": {"memory.usage_in_bytes": 5, "memory.limit_in_bytes": null}}}',
    '{"version": 2, "groups": {"/a": {"memory.current": "\\udcff\\n"}}}',
    '{"version": 2, "groups": {"/a": {"memory.current": "100\\n", "memory.max": "100\\n", '
    '"memory.stat": "anon 100\\n"}}}',
]


def test_hostile_cgroup_series_gives_a_report_and_says_what_did_not_parse(tmp_path):
    import bundle_mutations as bm
    from snapcollect.bundle import open_bundle
    from snapcollect.bundle.writer import BundleWriter
    from snapcollect.report.build import build_report

    path = str(tmp_path / "h.tar.zst")
    w = BundleWriter(path, {"host": "h", "kernel": "6.18", "started_at": "2026-01-01T00:00:00.000Z"})
    for k, text in enumerate(HOSTILE_TICKS * 2):
        w.add_tick(k, 1000.0 + k, 50.0 + k, {"cgroups/memory": text})
    w.close(ended_at="x")
    assert bm.exercise(path).kind == "opened"
    report = build_report(open_bundle(path))
    missing = {m["name"]: m for m in report.missing}
    assert missing["series/cgroups/memory"]["status"] == "error"



def test_thrashing_in_a_child_names_the_child_not_its_parent_and_never_the_collector():
    per_tick = 50 * MIB // PAGE
    lim = 100 * MIB
    ds = build(memcgs=lambda k: groups(1, __jobs=v1_files(lim, lim, 0, lim - MIB, refault=per_tick * k),
                                       __jobs__one=v1_files(lim, lim, 0, lim - MIB, refault=per_tick * k,
                                                            procs=(31, 4242))))
    ds.collector_pids = frozenset({4242})
    th = thrashing(ds, cgroup_series(ds))
    assert [t.where for t in th] == ["/jobs/one"]      # the baseline host has no refaults
    assert cgroup_series(ds)["/jobs/one"].tasks == (31,)


def test_a_group_holding_only_the_collector_is_no_finding():
    lim = 64 * MIB
    ds = build(memcgs=lambda k: groups(1, __run=v1_files(lim, lim, lim - MIB, 0, procs=(4242, 4243))))
    ds.collector_pids = frozenset({4242, 4243})
    assert cgroup_series(ds)["/run"].collector_only
    assert run("MEMCG_AT_LIMIT", ds)[0] is None
    ds.collector_pids = frozenset({4242})
    assert run("MEMCG_AT_LIMIT", ds)[0].evidence.values["tasks"] == [4243]


def test_limit_hits_of_a_group_that_emptied_before_the_end_are_not_called_cache():
    """Two snapshots; the group hit its limit 400,000 times, then its task died: its end fill says nothing."""
    lim = 64 * MIB
    emptied = lambda hits: groups(1, __t=v1_files(256 * 1024, lim, 0, 12 * 1024, failcnt=hits))["/t"]  # noqa: E731
    ds = build(start={"memcgs": {"/t": emptied(0)}}, end={"memcgs": {"/t": emptied(400_000)}})
    f, _ = run("MEMCG_AT_LIMIT", ds)
    assert f.severity == "WARN"
    assert f.title == "Memory cgroup /t hit its limit (64.0 MiB): failcnt +400000, filled by unknown"
    assert "what filled it when it hit the limit was not sampled" in f.explanation


def test_reclaim_title_naming_a_group_names_its_worst_task_and_the_others_apart():
    ds = _held_v1([stall(2.0, 4711, "cruncher", 60, kind="memcg"), stall(2.1, 4711, "cruncher", 60, kind="memcg"),
                   stall(3.0, 999, "elsewhere", 90)])
    f, _ = run("DIRECT_RECLAIM_STALLS", ds)
    assert f.title == ("Allocating tasks stalled in reclaim in memory cgroup /batch: 1 task(s), worst cruncher "
                       "(pid 4711) 60 ms; 1 task(s) elsewhere, worst elsewhere (pid 999) 90 ms")
