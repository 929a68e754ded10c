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
