"""TOP_GROWER, HUGE_PROCESS."""

from findings_helpers import BASE_PROCS, MEMTOTAL, T0, build, proc, run


def _growing(rss0: int, per_tick: int, pid: int = 4711, comm: str = "java"):
    return lambda k: {**BASE_PROCS, pid: proc(pid, comm, rss0 + per_tick * k)}


def test_top_grower():
    f, _ = run("TOP_GROWER", build(procs=_growing(200 * 1024, 20 * 1024)))
    assert f.severity == "INFO"
    assert f.title == "java (pid 4711) grew 600.0 MiB: 200.0 MiB -> 800.0 MiB"
    assert f.evidence.values["growers"][0]["ratio"] == 4.0
    assert f.evidence.time_range == (T0, T0 + 30) and f.evidence.section == "top-processes"


def test_top_grower_new_process_and_reused_pid():
    # a process started during the window counts from its first sample
    procs = lambda k: {**BASE_PROCS, **({9: proc(9, "leaky", 10 * 1024 + k * 30 * 1024)} if k >= 10 else {})}  # noqa: E731
    assert run("TOP_GROWER", build(procs=procs))[0].evidence.values["pid"] == 9
    # the same pid reused by a new, bigger process is not growth
    reused = lambda k: {**BASE_PROCS, 9: proc(9, "a", 10 * 1024, starttime=1) if k < 15 else  # noqa: E731
                        proc(9, "b", 900 * 1024, starttime=2)}
    assert run("TOP_GROWER", build(procs=reused))[0] is None


def test_top_grower_negative():
    assert run("TOP_GROWER", build(procs=_growing(2 * 1024 * 1024, 1024)))[0] is None   # 1.01x
    assert run("TOP_GROWER", build(procs=_growing(1024, 100)))[0] is None                # 4x but 3 MiB
    assert run("TOP_GROWER", build())[0] is None


def test_top_grower_missing():
    ds = build(drop=("procs",), missing={"series/procs": ("timeout", "the process pass took too long")})
    assert run("TOP_GROWER", ds)[1] == "needs series/procs (timeout: the process pass took too long)"


def test_huge_process():
    f, _ = run("HUGE_PROCESS", build(procs=_growing(int(MEMTOTAL * 0.6), 0, comm="mysqld")))
    assert f.severity == "INFO" and f.evidence.values["comm"] == "mysqld" and round(f.evidence.values["pct"]) == 60
    assert run("HUGE_PROCESS", build(procs=_growing(int(MEMTOTAL * 0.3), 0)))[0] is None


def test_huge_process_missing():
    assert run("HUGE_PROCESS", build(drop=("procs",)))[1].startswith("needs series/procs (not in this bundle) or procs/top")


def _leaking(per_tick_kb: int, rss0: int = 100 * 1024, pid: int = 5150, comm: str = "leaker", ticks: int = 31):
    return lambda k: {**BASE_PROCS, pid: proc(pid, comm, rss0 + per_tick_kb * min(k, ticks))}


def test_memory_leak_in_a_cgroup_warns_with_the_time_left_to_its_limit():
    from snapcollect.parsers.records import CgroupLimit, StatusMemory
    row = StatusMemory(5150, "leaker", 0, 0, 0, 0, 0, 0, 0, "/leak")
    end = {"proc_memory": [row], "cgroup_limits": {"/leak": CgroupLimit("/leak", 900 << 20, 1 << 30)}}
    f, _ = run("MEMORY_LEAK", build(procs=_leaking(30 * 1024), end=end))
    v = f.evidence.values
    assert f.severity == "WARN" and v["runs_out"] == "cgroup" and v["cgroup"] == "/leak"
    assert abs(v["rate_kb_s"] - 30 * 1024) < 0.01 and v["headroom_kb"] == 124 * 1024
    assert abs(v["seconds_left"] - 124 / 30) < 0.01
    assert f.title == "leaker (pid 5150) grows 30.0 MiB/s: its cgroup /leak runs out in 4 s at this rate"
    assert "procs/memory@end" in f.evidence.artifacts


def test_memory_leak_against_memavailable_is_info_when_far():
    f, _ = run("MEMORY_LEAK", build(procs=_leaking(3 * 1024)))       # 3 MiB/s, 90 MiB in 30 s
    v = f.evidence.values
    assert f.severity == "INFO" and v["runs_out"] == "MemAvailable" and v["seconds_left"] > 600
    assert "MemAvailable runs out in" in f.title


def test_memory_leak_counts_swap_and_ignores_steps():
    # RSS flat, the growth is in swap: still a leak
    swapping = lambda k: {**BASE_PROCS, 77: proc(77, "swapper", 500 * 1024, swap_kb=k * 4096)}  # noqa: E731
    f, _ = run("MEMORY_LEAK", build(procs=swapping))
    assert f.evidence.values["pid"] == 77 and abs(f.evidence.values["rate_kb_s"] - 4096) < 0.01
    # one jump of 600 MiB is a step: no rate, no leak (TOP_GROWER still names it)
    step = lambda k: {**BASE_PROCS, 78: proc(78, "stepper", 100 * 1024 + (600 * 1024 if k >= 15 else 0))}  # noqa: E731
    assert run("MEMORY_LEAK", build(procs=step))[0] is None
    g, _ = run("TOP_GROWER", build(procs=step))
    assert "a step of 600.0 MiB" in g.explanation
    assert run("MEMORY_LEAK", build())[0] is None


def test_memory_leak_that_stopped_is_not_extrapolated():
    f, _ = run("MEMORY_LEAK", build(procs=_leaking(30 * 1024, ticks=20)))     # flat for the last 10 s
    assert f.severity == "INFO" and f.evidence.values["seconds_left"] is None
    assert f.title.endswith("grows 30.0 MiB/s: until " + f.title.split("until ")[1])
    assert "then it stopped growing" in f.title
