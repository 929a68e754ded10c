"""One timeline across sources, in time order, each event citing its source and section."""

from findings_helpers import BASE_PROCS, T0, bpf, build, kmsg, oom_kill, proc, psi_ramp, ramp, stall

from snapcollect.analysis.timeline import build_timeline
from snapcollect.analysis.model import build_model


def _incident():
    def full(k):
        return 0.0 if k < 5 else 70.0 if k < 20 else 2.0
    procs = lambda k: {**BASE_PROCS, 4711: proc(4711, "java", 100 * 1024 + k * 40 * 1024)}  # noqa: E731
    lines = [kmsg(12.2, "java: page allocation failure: order:2, mode:0x0()", seq=1),
             kmsg(12.5, "Memory cgroup out of memory: Killed process 4711 (java) total-vm:1kB, anon-rss:900kB, "
                        "file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0", seq=2),
             kmsg(-100, "Out of memory: Killed process 3 (old) total-vm:1kB, anon-rss:1kB, file-rss:0kB, "
                        "shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0", before_window=True, seq=0)]
    b = bpf(oom_kills=[oom_kill(12.5, 4711, "java", memcg=True, oom_memcg="/app")],
            reclaim=[stall(8.0, 4711, "java", 40, "memcg"), stall(9.0, 4711, "java", 340, "memcg"),
                     stall(25.0, 4711, "java", 2, "memcg")])
    return build(psi_at=psi_ramp(full_avg10=full, some_avg10=full),
                 vmstat={"pswpin": ramp(400, ticks=range(6, 10)), "pswpout": ramp(400, ticks=range(6, 10)),
                         "pgscan_kswapd": ramp(100, ticks=range(3, 8)), "pgmajfault": ramp(900, ticks=range(6, 8))},
                 procs=procs, kmsg_lines=lines, bpf=b)


def test_timeline_is_chronological_and_covers_every_source():
    tl = build_timeline(build_model(_incident()))
    assert [e.t for e in tl] == sorted(e.t for e in tl)
    kinds = {e.kind for e in tl}
    assert kinds == {"pressure", "reclaim", "oom", "swap", "faults", "kmsg", "growth"}
    for e in tl:
        assert e.source and e.section, e


def test_timeline_events_carry_the_right_times_and_texts():
    tl = build_timeline(build_model(_incident()))
    text = [(round(e.t - T0, 1), e.kind, e.text) for e in tl]
    assert (5.0, "pressure", "memory pressure (full avg10) rose above 60%: 70.0%") in text
    assert (20.0, "pressure", "memory pressure (full avg10) fell below 60%: 2.0%") in text
    assert (2.0, "reclaim", "kswapd reclaim: 500 pages scanned (2.0 MiB, peak 100/s) until "
            "02:20:07") in text
    stalls = [e for e in tl if e.source == "bpf/reclaim"]
    # two episodes of java: 8-9 s (worst 340 ms) and 25 s
    assert [(round(e.t - T0), e.severity) for e in stalls] == [(8, "HIGH"), (25, "WARN")]
    assert "memcg reclaim stalled java (pid 4711): 2 stall(s), worst 340 ms" == stalls[0].text
    ooms = [e for e in tl if e.kind == "oom"]
    assert [e.text for e in ooms] == [
        "OOM kill before the window: old (pid 3, anon-rss 1 kB)",
        "OOM kill: java (pid 4711, anon-rss 900 kB) in memcg /app"]
    assert ooms[1].severity == "CRIT" and ooms[1].section == "oom"
    # the kill line itself is not repeated as a kernel-log event; the allocation failure is
    kmsg_events = [e for e in tl if e.kind == "kmsg"]
    assert len(kmsg_events) == 1 and "page allocation failure" in kmsg_events[0].text
    swap = [e for e in tl if e.kind == "swap"]
    assert len(swap) == 1 and swap[0].text.startswith("swap burst: 1600 pages in, 1600 out")
    growth = [e for e in tl if e.kind == "growth"]
    assert growth[0].text.startswith("java (pid 4711) grew from 100.0 MiB to 1.3 GiB RSS + swap (peak at 02:20:30)")
    assert round(growth[0].t - T0) == 2   # 100 MiB -> 180 MiB: 1.25x and 64 MiB first reached at tick 2


def test_kswapd_wakes_are_grouped_per_node_and_burst():
    b = bpf(kswapd_wakes=[(T0 + 1, 0, 0), (T0 + 2, 0, 3), (T0 + 20, 0, 0), (T0 + 2, 1, 9)])
    tl = [e for e in build_timeline(build_model(build(bpf=b))) if e.source == "bpf/kswapd_wake"]
    assert [(round(e.t - T0), e.text) for e in tl] == [
        (1, "kswapd0 woken 2 time(s) (highest order 3) until 02:20:02"),
        (2, "kswapd1 woken 1 time(s) (highest order 9) until 02:20:02"),
        (20, "kswapd0 woken 1 time(s) (highest order 0) until 02:20:20")]


def test_quiet_host_has_an_empty_timeline():
    assert build_timeline(build_model(build())) == []


def test_timeline_without_inputs():
    assert build_timeline(build_model(build(drop=("vmstat", "meminfo", "psi", "procs", "kmsg")))) == []


def test_many_oom_kills_before_the_window_collapse_to_one_line():
    from snapcollect.analysis.timeline import EARLIER_OOM_SHOWN

    lines = [kmsg(-100.0 + i, f"Memory cgroup out of memory: Killed process {100 + i} (victim{i}) "
                  "total-vm:70000kB, anon-rss:65000kB, file-rss:0kB, shmem-rss:0kB, "
                  "UID:0 pgtables:200kB oom_score_adj:0", before_window=True, seq=i)
             for i in range(10)]
    ooms = [e for e in build_timeline(build_model(build(kmsg_lines=lines))) if e.kind == "oom"]
    assert len(ooms) == EARLIER_OOM_SHOWN + 1
    assert ooms[0].text.startswith(f"{10 - EARLIER_OOM_SHOWN} older OOM kill(s) before the window")
    assert all(e.severity == "INFO" for e in ooms)
    assert [e.text.split(": ", 1)[1].split(" (pid")[0] for e in ooms[1:]] == ["victim7", "victim8", "victim9"]
