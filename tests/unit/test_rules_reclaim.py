"""PAGE_SCANNING, DIRECT_RECLAIM_STALLS, DIRECT_RECLAIM_THROTTLED, RECLAIM_INEFFICIENT,
PAGECACHE_THRASHING, DROP_CACHES, MAJOR_FAULTS."""

from findings_helpers import BASE_PROCS, bpf, build, proc, ramp, run, stall


def test_page_scanning():
    f, _ = run("PAGE_SCANNING", build(vmstat={"pgscan_kswapd": ramp(100), "pgscan_direct": ramp(10)}))
    assert f.severity == "INFO" and f.evidence.values["pgscan_kswapd_delta"] == 3000
    assert f.evidence.values["pgscan_direct_delta"] == 300
    assert run("PAGE_SCANNING", build())[0] is None
    assert run("PAGE_SCANNING", build(drop=("vmstat",)))[1] == "needs series/proc/vmstat (not in this bundle)"


def test_page_scanning_pre_4_8_zone_counters():
    ds = build(vmstat={"pgscan_kswapd": None, "pgscan_direct": None, "pgscan_kswapd_normal": ramp(7),
                       "pgscan_kswapd_dma32": ramp(3), "pgscan_direct_normal": 0})
    assert run("PAGE_SCANNING", ds)[0].evidence.values["pgscan_kswapd_delta"] == 300


def test_direct_reclaim_from_vmstat_is_warn():
    f, _ = run("DIRECT_RECLAIM_STALLS", build(vmstat={"pgscan_direct": ramp(64), "allocstall_normal": ramp(1)}))
    assert f.severity == "WARN" and f.evidence.values["allocstall_delta"] == 30
    assert "1920 pages scanned directly, 30 allocation stalls" in f.title


def test_direct_reclaim_bpf_latency_by_process_high():
    stalls = [stall(2.0, 4711, "java", 12), stall(2.5, 4711, "java", 340, kind="memcg"),
              stall(3.0, 88, "nginx", 4)]
    ds = build(vmstat={"pgscan_direct": ramp(64)}, bpf=bpf(reclaim=stalls))
    f, _ = run("DIRECT_RECLAIM_STALLS", ds)
    assert f.severity == "HIGH"
    assert f.title == "Allocating tasks stalled in reclaim: 2 task(s), worst java (pid 4711) 340 ms"
    by = f.evidence.values["by_process"]
    assert by[0]["pid"] == 4711 and by[0]["stalls"] == 2 and by[0]["max_us"] == 340_000
    assert f.evidence.section == "reclaim" and "bpf/reclaim" in f.evidence.artifacts


def test_direct_reclaim_bpf_calibration():
    """WARN means a user would feel it: a 10 ms stall, or 100 ms stalled in all; below, INFO."""
    sev = lambda stalls: run("DIRECT_RECLAIM_STALLS", build(bpf=bpf(reclaim=stalls)))[0].severity  # noqa: E731
    assert sev([stall(1.0, 5, "a", 0.4)]) == "INFO"
    assert sev([stall(1.0, 5, "a", 2), stall(1.1, 5, "a", 3)]) == "INFO"
    assert sev([stall(1.0, 5, "a", 2), stall(1.1, 5, "a", 10)]) == "WARN"
    assert sev([stall(1.0 + i / 100, 5, "a", 2) for i in range(50)]) == "WARN"      # 100 ms in all
    assert sev([stall(1.0 + i / 100, 5, "a", 2) for i in range(49)]) == "INFO"


def test_direct_reclaim_at_a_cgroup_v2_limit_from_memory_stat():
    from snapcollect.parsers.records import MemCgroup
    g = lambda n: MemCgroup("/app", 2, 1 << 30, 1 << 30, stat={"pgscan_direct": n})  # noqa: E731
    f, _ = run("DIRECT_RECLAIM_STALLS", build(start={"memcgs": {"/app": g(100)}}, end={"memcgs": {"/app": g(5100)}}))
    assert f.severity == "WARN" and f.evidence.section == "cgroups"
    assert f.title == "Allocating tasks stalled in reclaim: 5000 pages scanned at the limit of memory cgroup /app"
    assert f.evidence.values["cgroup_pgscan_direct_rise"] == {"/app": 5000}


def test_direct_reclaim_negative_kswapd_only_and_missing():
    assert run("DIRECT_RECLAIM_STALLS", build(vmstat={"pgscan_kswapd": ramp(100)}))[0] is None
    f, why = run("DIRECT_RECLAIM_STALLS", build(drop=("vmstat",)))
    assert why == "needs series/proc/vmstat (not in this bundle) or bpf/reclaim (not in this bundle)"


def test_direct_reclaim_throttled():
    assert run("DIRECT_RECLAIM_THROTTLED", build(vmstat={"pgscan_direct_throttle": ramp(1, ticks=range(4, 6))}))[0].severity == "HIGH"
    assert run("DIRECT_RECLAIM_THROTTLED", build())[0] is None
    f, why = run("DIRECT_RECLAIM_THROTTLED", build(vmstat={"pgscan_direct_throttle": None}))
    assert f is None and "pgscan_direct_throttle" in why
    assert run("DIRECT_RECLAIM_THROTTLED", build(drop=("vmstat",)))[1].startswith("needs series/proc/vmstat")


def test_reclaim_inefficient():
    ds = build(vmstat={"pgscan_kswapd": ramp(900), "pgscan_direct": ramp(100), "pgsteal_kswapd": ramp(150),
                       "pgsteal_direct": ramp(50), "pgsteal_anon": ramp(100), "pgsteal_file": ramp(100)})
    f, _ = run("RECLAIM_INEFFICIENT", ds)
    # pgsteal_anon/_file are not added on top: 200 of 1000 pages per tick
    assert f.severity == "WARN" and round(f.evidence.values["vmeff_pct"], 1) == 20.0


def test_reclaim_inefficient_negative():
    ds = build(vmstat={"pgscan_kswapd": ramp(1000), "pgsteal_kswapd": ramp(900)})
    assert run("RECLAIM_INEFFICIENT", ds)[0] is None
    # too little scanning to judge
    ds = build(vmstat={"pgscan_kswapd": ramp(30), "pgsteal_kswapd": ramp(1)})
    assert run("RECLAIM_INEFFICIENT", ds)[0] is None
    assert run("RECLAIM_INEFFICIENT", build(drop=("vmstat",)))[1].startswith("needs series/proc/vmstat")


def test_pagecache_thrashing():
    ds = build(vmstat={"workingset_refault_file": ramp(800), "workingset_activate_file": ramp(300),
                       "pgsteal_file": ramp(1000), "pgsteal_kswapd": ramp(1000)})
    f, _ = run("PAGECACHE_THRASHING", ds)
    assert f.severity == "WARN" and round(f.evidence.values["pct"]) == 80


def test_pagecache_thrashing_negative_and_drop_caches():
    base = {"workingset_refault_file": ramp(200), "workingset_activate_file": ramp(50),
            "pgsteal_file": ramp(1000)}
    assert run("PAGECACHE_THRASHING", build(vmstat=base))[0] is None
    # refaults right after a drop_caches are not thrashing
    ds = build(vmstat={"workingset_refault_file": ramp(800), "workingset_activate_file": ramp(300),
                       "pgsteal_file": ramp(1000), "drop_pagecache": ramp(1, ticks=range(1, 2))})
    assert run("PAGECACHE_THRASHING", ds)[0] is None
    assert run("PAGECACHE_THRASHING", build(drop=("vmstat",)))[1].startswith("needs series/proc/vmstat")


def test_pagecache_thrashing_pre_5_9_names():
    ds = build(vmstat={"workingset_refault_file": None, "workingset_activate_file": None,
                       "pgsteal_file": None, "workingset_refault": ramp(800), "workingset_activate": ramp(100),
                       "pgsteal_kswapd": ramp(1000)})
    assert run("PAGECACHE_THRASHING", ds)[0] is not None


def test_drop_caches():
    f, _ = run("DROP_CACHES", build(vmstat={"drop_pagecache": ramp(1, ticks=range(3, 4)),
                                            "drop_slab": ramp(1, ticks=range(3, 4))}))
    assert f.severity == "INFO" and f.title == "Caches dropped by hand during the window (page cache x1, slab x1)"
    assert run("DROP_CACHES", build())[0] is None
    assert run("DROP_CACHES", build(drop=("vmstat",)))[1].startswith("needs series/proc/vmstat")


def test_major_faults_high_sustained_with_attribution():
    procs = lambda k: {**BASE_PROCS, 42: proc(42, "postgres", 500_000, majflt=1500 * k)}  # noqa: E731
    f, _ = run("MAJOR_FAULTS", build(vmstat={"pgmajfault": ramp(1600)}, procs=procs))
    assert f.severity == "HIGH"
    assert f.evidence.values["top_processes"][0] == {"pid": 42, "comm": "postgres", "majflt": 45000}
    assert "postgres (pid 42, 45000)" in f.explanation
    assert round(f.evidence.values["rate"]) == 1600


def test_major_faults_warn_and_negative():
    assert run("MAJOR_FAULTS", build(vmstat={"pgmajfault": ramp(700)}))[0].severity == "WARN"
    # a 5-second burst in a 30-second window is not sustained
    assert run("MAJOR_FAULTS", build(vmstat={"pgmajfault": ramp(5000, ticks=range(10, 15))}))[0] is None
    assert run("MAJOR_FAULTS", build())[0] is None
    assert run("MAJOR_FAULTS", build(drop=("vmstat",)))[1].startswith("needs series/proc/vmstat")


def test_major_faults_rate_uses_uptime_interval():
    # ticks 1 s apart on the wall clock but 2 s on /proc/uptime: 700 per tick is 350/s
    ds = build(vmstat={"pgmajfault": ramp(700)})
    ds.uptime = [type(p)(p.k, p.t, 1000.0 + 2 * p.k) for p in ds.uptime]
    assert run("MAJOR_FAULTS", ds)[0] is None
