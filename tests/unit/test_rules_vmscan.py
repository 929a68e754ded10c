"""SLOW_SHRINKER, KSWAPD_BUSY, MIGRATION_FAILING: firing, quiet, and skipped without their artifact."""

from findings_helpers import bpf, build, kswapd_run, migration, ramp, run, shrinker, stall


def _ds(vmstat=None, **kw):
    return build(bpf=bpf(**kw), vmstat=vmstat)


# -- SLOW_SHRINKER ------------------------------------------------------------

def test_slow_shrinker_fires_on_one_long_call_naming_the_callback():
    f, _ = run("SLOW_SHRINKER", _ds(shrinkers=[shrinker("super_cache_scan", calls=4, total_ms=30, max_ms=25),
                                               shrinker("ext4_es_scan", calls=2, total_ms=0.1, max_ms=0.05)]))
    assert f.severity == "WARN" and f.evidence.values["callback"] == "super_cache_scan"
    assert "super_cache_scan" in f.title and "bpf/shrinkers" in f.evidence.artifacts
    assert f.evidence.values["also_slow"] == []


def test_slow_shrinker_is_high_at_100_ms_and_fires_on_share_of_the_window():
    f, _ = run("SLOW_SHRINKER", _ds(shrinkers=[shrinker(max_ms=150, total_ms=200)]))
    assert f.severity == "HIGH"
    # 30 s window: 2 s in many short calls is 6.7% of it
    f, _ = run("SLOW_SHRINKER", _ds(shrinkers=[shrinker("xfs_buftarg_shrink_scan", calls=20000, total_ms=2000,
                                                        max_ms=2)]))
    assert f.severity == "WARN" and f.evidence.values["callback"] == "xfs_buftarg_shrink_scan"


def test_slow_shrinker_quiet_on_fast_calls_and_skipped_without_its_artifact():
    f, skip = run("SLOW_SHRINKER", _ds(shrinkers=[shrinker(calls=100, total_ms=50, max_ms=9.9)]))
    assert f is None and skip is None
    ds = build(bpf=bpf())
    del ds.bpf.available["bpf/shrinkers"]
    f, skip = run("SLOW_SHRINKER", ds)
    assert f is None and skip.startswith("needs bpf/shrinkers")


# -- KSWAPD_BUSY --------------------------------------------------------------

def test_kswapd_busy_with_direct_reclaim_is_warn():
    f, _ = run("KSWAPD_BUSY", _ds(kswapd_runs=[kswapd_run(1, 12), kswapd_run(14, 8)],
                                  reclaim=[stall(5, 4711, "java", 30)]))
    assert f.severity == "WARN" and f.evidence.values["nid"] == 0 and f.evidence.values["runs"] == 2
    assert f.evidence.values["direct_reclaim_stalls"] == 1
    assert f.evidence.artifacts == ["bpf/kswapd_runs", "bpf/reclaim"]


def test_kswapd_busy_without_direct_reclaim_is_info_and_counts_runs_without_start_apart():
    f, _ = run("KSWAPD_BUSY", _ds(kswapd_runs=[kswapd_run(0.5, None), kswapd_run(1, 20)]))
    assert f.severity == "INFO" and f.evidence.values["runs_without_start"] == 1
    assert f.evidence.values["awake_ns"] == 20 * 10**9      # the run without a start adds no time
    f, _ = run("KSWAPD_BUSY", _ds(kswapd_runs=[kswapd_run(1, 20)], vmstat={"allocstall_normal": ramp(3)}))
    assert f.severity == "WARN" and f.evidence.values["allocstall_delta"] > 0


def test_kswapd_busy_quiet_below_half_the_window_or_only_runs_without_start():
    f, skip = run("KSWAPD_BUSY", _ds(kswapd_runs=[kswapd_run(1, 5), kswapd_run(10, 5)],
                                     reclaim=[stall(5, 4711, "java", 30)]))
    assert f is None and skip is None
    f, skip = run("KSWAPD_BUSY", _ds(kswapd_runs=[kswapd_run(29, None)]))
    assert f is None and skip is None


# -- MIGRATION_FAILING --------------------------------------------------------

def test_migration_failing_names_reason_and_process():
    f, _ = run("MIGRATION_FAILING", _ds(
        migration_by_reason=[migration("compaction", 4000, 3000), migration("numa_misplaced", 500, 0)],
        migration_by_proc=[migration("compaction", 100, 2500, pid=88, comm="kcompactd0"),
                           migration("compaction", 3900, 500, pid=4711, comm="java")]))
    assert f.severity == "WARN" and f.evidence.values["reason"] == "compaction"
    assert f.evidence.values["failed"] == 3000 and f.evidence.values["tried"] == 7000
    assert f.evidence.values["by_process"][0]["comm"] == "kcompactd0" and "kcompactd0 (pid 88)" in f.title
    assert f.evidence.artifacts == ["bpf/migration"]


def test_migration_failing_sums_the_modes_of_one_reason():
    f, _ = run("MIGRATION_FAILING", _ds(migration_by_reason=[
        migration("compaction", 1000, 600, mode="MIGRATE_ASYNC"),
        migration("compaction", 1000, 600, mode="MIGRATE_SYNC_LIGHT")]))
    assert f.evidence.values["failed"] == 1200 and f.evidence.values["by_process"] == []


def test_migration_failing_quiet_below_either_threshold():
    # many pages failed but only 5% of them
    f, skip = run("MIGRATION_FAILING", _ds(migration_by_reason=[migration("compaction", 95_000, 5000)]))
    assert f is None and skip is None
    # half failed but only 999 pages
    f, skip = run("MIGRATION_FAILING", _ds(migration_by_reason=[migration("compaction", 999, 999)]))
    assert f is None and skip is None
    f, skip = run("MIGRATION_FAILING", build())
    assert f is None and skip.startswith("needs bpf/migration")
