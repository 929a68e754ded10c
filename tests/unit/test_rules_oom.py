"""OOM_KILL, MEMCG_OOM, MEMCG_AT_LIMIT on small hand-built Datasets."""

import pytest

from findings_helpers import T0, bpf, build, kmsg, memcg, oom_kill, ramp, run

# The kernel's own lines for a memcg OOM kill (6.18, cgroup v1, limit 64 MiB).
MEMCG_LINES = [
    kmsg(5.0, "python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0", seq=1),
    kmsg(5.0, "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
              "oom_memcg=/snapcollect-test-oom,task_memcg=/snapcollect-test-oom,task=python3,pid=4711,uid=0",
         seq=2),
    kmsg(5.0, "Memory cgroup out of memory: Killed process 4711 (python3) total-vm:214236kB, "
              "anon-rss:64812kB, file-rss:4096kB, shmem-rss:0kB, UID:0 pgtables:472kB oom_score_adj:0",
         seq=3),
]
GLOBAL_LINES = [
    kmsg(7.0, "java invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, "
              "oom_score_adj=0", seq=4),
    kmsg(7.0, "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,"
              "task_memcg=/,task=java,pid=900,uid=1000", seq=5),
    kmsg(7.0, "Out of memory: Killed process 900 (java) total-vm:9000000kB, anon-rss:8000000kB, "
              "file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:16000kB oom_score_adj:0", seq=6),
]


def test_oom_kill_global_from_kernel_log():
    f, _ = run("OOM_KILL", build(kmsg_lines=GLOBAL_LINES, vmstat={"oom_kill": ramp(1, ticks=range(8, 9))}))
    assert f.severity == "CRIT"
    assert "java (pid 900" in f.title
    assert f.evidence.values["kills"][0]["constraint"] == "CONSTRAINT_NONE"
    assert f.evidence.values["vmstat_oom_kill_delta"] == 1
    assert "kmsg" in f.evidence.artifacts and f.evidence.section == "oom"
    assert f.evidence.time_range == (T0 + 7.0, T0 + 7.0)
    assert "whole system" in f.explanation


def test_oom_kill_counter_only_is_reported_without_detail():
    f, _ = run("OOM_KILL", build(vmstat={"oom_kill": ramp(1, ticks=range(3, 5))}))
    assert f.severity == "CRIT"
    assert "2 process(es) the counter saw without detail" in f.title
    assert "scope unknown" in f.explanation


def test_oom_kill_not_for_memcg_kill_nor_quiet_host():
    assert run("OOM_KILL", build())[0] is None
    ds = build(kmsg_lines=MEMCG_LINES, vmstat={"oom_kill": ramp(1, ticks=range(6, 7))})
    assert run("OOM_KILL", ds)[0] is None      # MEMCG_OOM's business


def test_oom_kill_ignores_kills_before_the_window():
    old = [kmsg(-3600, ln.text, before_window=True, seq=ln.seq) for ln in GLOBAL_LINES]
    assert run("OOM_KILL", build(kmsg_lines=old))[0] is None


def test_oom_kill_missing_inputs():
    ds = build(drop=("vmstat", "kmsg"), missing={"series/proc/vmstat": ("denied", "permission denied"),
                                                 "kmsg": ("denied", "needs CAP_SYSLOG")})
    f, why = run("OOM_KILL", ds)
    assert f is None
    assert "series/proc/vmstat (denied: permission denied)" in why
    assert "kmsg (denied: needs CAP_SYSLOG)" in why and "bpf/oom_kill" in why


def test_memcg_oom_from_kernel_log_names_victim_and_memcg():
    f, _ = run("MEMCG_OOM", build(kmsg_lines=MEMCG_LINES))
    assert f.severity == "CRIT"
    assert f.title == ("Memory cgroup OOM: python3 (pid 4711, anon-rss 63.3 MiB) killed in "
                       "/snapcollect-test-oom")
    assert f.evidence.values["kills"][0]["anon_rss_kb"] == 64812


def test_memcg_oom_from_bpf_completed_by_kernel_log():
    b = bpf(oom_kills=[oom_kill(5.0, 4711, "python3", memcg=True, anon_rss_kb=64000)])
    f, _ = run("MEMCG_OOM", build(bpf=b, kmsg_lines=MEMCG_LINES))
    assert "/snapcollect-test-oom" in f.title
    assert f.evidence.values["count"] == 1
    assert set(f.evidence.artifacts) == {"bpf/oom_kill", "kmsg"}


def test_memcg_oom_from_cgroup_counter():
    ds = build(start={"memcgs": {"/app": memcg("/app", 60 << 20, 64 << 20, oom_kill=2)}},
               end={"memcgs": {"/app": memcg("/app", 10 << 20, 64 << 20, oom_kill=5)}})
    f, _ = run("MEMCG_OOM", ds)
    assert f.evidence.values["cgroup_oom_kill_rise"] == {"/app": 3}
    assert "/app" in f.title and f.evidence.section == "cgroups"


def test_memcg_oom_negative():
    assert run("MEMCG_OOM", build(kmsg_lines=GLOBAL_LINES))[0] is None
    assert run("MEMCG_OOM", build())[0] is None


def test_memcg_oom_missing_inputs():
    f, why = run("MEMCG_OOM", build(drop=("kmsg", "cgroups")))
    assert f is None and why.startswith("needs bpf/oom_kill (not in this bundle) or kmsg")


def test_memcg_at_limit_v1_failcnt():
    ds = build(start={"memcgs": {"/db": memcg("/db", 63 << 20, 64 << 20, failcnt=10)}},
               end={"memcgs": {"/db": memcg("/db", 64 << 20, 64 << 20, failcnt=910)}})
    f, _ = run("MEMCG_AT_LIMIT", ds)
    # No memory.stat: what fills it is unknown, so the limit hits are not called harmless cache.
    assert f.severity == "WARN"
    assert f.title == "Memory cgroup /db hit its limit (64.0 MiB): failcnt +900, filled by unknown"
    assert "/db used 64.0 MiB of its 64.0 MiB limit" in f.explanation
    assert f.evidence.values["events_rise"] == {"failcnt": 900}


def test_memcg_at_limit_v2_max_event_but_not_high():
    from snapcollect.parsers.records import MemCgroup
    g = lambda **e: MemCgroup("/web", 2, 1 << 29, 1 << 30, events=e)  # noqa: E731  (half full)
    ds = build(start={"memcgs": {"/web": g(high=5, max=0)}}, end={"memcgs": {"/web": g(high=500, max=0)}})
    assert run("MEMCG_AT_LIMIT", ds)[0] is None
    ds = build(start={"memcgs": {"/web": g(high=5, max=0)}}, end={"memcgs": {"/web": g(high=5, max=7)}})
    assert run("MEMCG_AT_LIMIT", ds)[0].evidence.values["events_rise"] == {"max": 7}


def test_memcg_at_limit_group_new_at_end_has_no_baseline():
    ds = build(start={"memcgs": {}}, end={"memcgs": {"/new": memcg("/new", 1, 2, failcnt=50)}})
    assert run("MEMCG_AT_LIMIT", ds)[0] is None


def test_memcg_at_limit_missing_input():
    ds = build(drop=("cgroups",), missing={"cgroups/memory@start": ("denied", "not root")})
    assert run("MEMCG_AT_LIMIT", ds) == (None, "needs series/cgroups/memory (not in this bundle) or "
                                               "cgroups/memory@end (not in this bundle)")


def test_cgroup_v2_root_is_never_the_limited_or_reclaiming_group():
    """v2's root memory.stat totals its children: its counters rise whenever any child's do."""
    from snapcollect.parsers.records import MemCgroup
    root = lambda scan, mx: MemCgroup("/", 2, None, None, stat={"pgscan_direct": scan},  # noqa: E731
                                      events={"max": mx})
    child = lambda scan, mx: MemCgroup("/sc", 2, 60 << 20, 64 << 20,  # noqa: E731
                                       stat={"pgscan_direct": scan}, events={"max": mx})
    ds = build(start={"memcgs": {"/": root(0, 0), "/sc": child(0, 0)}},
               end={"memcgs": {"/": root(900, 40), "/sc": child(900, 40)}})
    f, _ = run("MEMCG_AT_LIMIT", ds)
    assert f.evidence.values["group"] == "/sc"
    assert [g["path"] for g in f.evidence.values["groups"]] == ["/sc"]
    f, _ = run("DIRECT_RECLAIM_STALLS", ds)
    assert f.evidence.values["cgroup_pgscan_direct_rise"] == {"/sc": 900}
    only_root = build(start={"memcgs": {"/": root(0, 0)}}, end={"memcgs": {"/": root(900, 40)}})
    assert run("MEMCG_AT_LIMIT", only_root)[0] is None


def test_cgroup_pressure_from_totals_not_frozen_averages():
    """An OOM-killed group's avg10 reads 0.00 at the end; its total still moved."""
    from snapcollect.analysis.pressure import cgroup_pressure
    from snapcollect.parsers.psi import parse_psi
    from snapcollect.parsers.records import MemCgroup
    g = lambda some, full: MemCgroup("/sc", 2, 1, 64 << 20, pressure=parse_psi(  # noqa: E731
        f"some avg10=0.00 avg60=0.00 avg300=0.00 total={some}\n"
        f"full avg10=0.00 avg60=0.00 avg300=0.00 total={full}\n"))
    ds = build(start={"memcgs": {"/sc": g(0, 0)}}, end={"memcgs": {"/sc": g(22_600, 20_000)}})
    p = cgroup_pressure(ds)["/sc"]
    window = ds.end.t - ds.start.t
    assert p.some_us == 22_600 and p.full_us == 20_000
    assert p.some_pct == pytest.approx(100 * 0.0226 / window)
    assert p.full_pct == pytest.approx(100 * 0.020 / window)
