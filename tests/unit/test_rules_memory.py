"""LOW_AVAILABLE, MEM_AND_SWAP_EXHAUSTED, UNEVICTABLE_GROWTH, DIRTY_THROTTLING, OVERCOMMIT."""

from findings_helpers import GIB_KB, MEMTOTAL, T0, build, run

LOW = int(MEMTOTAL * 0.05)


def test_low_available_sustained():
    ds = build(meminfo={"MemAvailable": lambda k: LOW if k >= 5 else MEMTOTAL // 2})
    f, _ = run("LOW_AVAILABLE", ds)
    assert f.severity == "WARN"
    assert f.evidence.time_range == (T0 + 5, T0 + 30)
    assert f.evidence.values["min_available_kb"] == LOW
    assert round(f.evidence.values["min_pct"], 1) == 5.0
    assert f.evidence.section == "sar-r"


def test_low_available_not_for_one_sample():
    ds = build(meminfo={"MemAvailable": lambda k: LOW if k == 7 else MEMTOTAL // 2})
    assert run("LOW_AVAILABLE", ds)[0] is None
    assert run("LOW_AVAILABLE", build())[0] is None


def test_low_available_old_kernel_uses_memfree():
    ds = build(meminfo={"MemAvailable": None, "MemFree": LOW})
    f, _ = run("LOW_AVAILABLE", ds)
    assert "before 3.14" in f.explanation


def test_low_available_missing():
    ds = build(drop=("meminfo",), missing={"series/proc/meminfo": ("timeout", "read took > 1 s")})
    assert run("LOW_AVAILABLE", ds)[1] == ("needs series/proc/meminfo (timeout: read took > 1 s) or "
                                           "proc/meminfo@end (not in this bundle)")


def test_low_available_from_snapshots_only():
    ds = build(drop=("meminfo",), start={"meminfo": {"MemTotal": MEMTOTAL, "MemAvailable": LOW}},
               end={"meminfo": {"MemTotal": MEMTOTAL, "MemAvailable": LOW}})
    assert run("LOW_AVAILABLE", ds)[0].evidence.artifacts == ["proc/meminfo@start", "proc/meminfo@end"]


def test_mem_and_swap_exhausted():
    swap = 4 * GIB_KB
    ds = build(meminfo={"MemAvailable": LOW, "SwapTotal": swap, "SwapFree": swap // 20})
    f, _ = run("MEM_AND_SWAP_EXHAUSTED", ds)
    assert f.severity == "CRIT" and round(f.evidence.values["swap_free_pct"]) == 5


def test_mem_and_swap_exhausted_negative():
    swap = 4 * GIB_KB
    # RAM short but swap has room; and no swap at all (LOW_AVAILABLE's case).
    assert run("MEM_AND_SWAP_EXHAUSTED", build(meminfo={"MemAvailable": LOW, "SwapTotal": swap,
                                                        "SwapFree": swap // 2}))[0] is None
    assert run("MEM_AND_SWAP_EXHAUSTED", build(meminfo={"MemAvailable": LOW}))[0] is None


def test_mem_and_swap_exhausted_missing():
    assert run("MEM_AND_SWAP_EXHAUSTED", build(drop=("meminfo",)))[1].startswith("needs series/proc/meminfo")


def test_unevictable_growth():
    step = MEMTOTAL // 100 // 30 + 1       # > 1% of RAM per minute at 1 tick/s... x2
    f, _ = run("UNEVICTABLE_GROWTH", build(meminfo={"Unevictable": lambda k: 16480 + 2 * step * k}))
    assert f.severity == "WARN" and f.evidence.values["Unevictable_last_kb"] == 16480 + 60 * step
    # the same growth over the window, but in one jump back and forth: not steady
    assert run("UNEVICTABLE_GROWTH", build(meminfo={"Unevictable": lambda k: 16480 + (
        60 * step if k % 2 else 0) + (60 * step if k == 30 else 0)}))[0] is None
    assert run("UNEVICTABLE_GROWTH", build())[0] is None
    assert run("UNEVICTABLE_GROWTH", build(drop=("meminfo",)))[1] == "needs series/proc/meminfo (not in this bundle)"


def test_dirty_throttling():
    # dirtyable = MemFree + file LRU; dirty_ratio 20, background 10: freerun at 15%.
    mi = {"MemFree": 8 * GIB_KB, "Active(file)": GIB_KB, "Inactive(file)": GIB_KB,
          "Dirty": int(10 * GIB_KB * 0.14), "Writeback": int(10 * GIB_KB * 0.02)}
    f, _ = run("DIRTY_THROTTLING", build(meminfo=mi))
    assert f.severity == "WARN"
    assert round(f.evidence.values["thresh_kb"]) == 2 * GIB_KB
    mi["Writeback"] = 0
    assert run("DIRTY_THROTTLING", build(meminfo=mi))[0] is None


def test_dirty_throttling_dirty_bytes_and_missing_sysvm():
    from findings_helpers import BASE_SYSVM
    vm = dict(BASE_SYSVM, dirty_bytes="104857600", dirty_background_bytes="52428800")
    ds = build(meminfo={"Dirty": 90 * 1024}, end={"sysvm": vm})
    assert run("DIRTY_THROTTLING", ds)[0].evidence.values["thresh_kb"] == 100 * 1024
    ds = build(drop=("sysvm",), missing={"proc/sys/vm@end": ("error", "could not parse")})
    assert run("DIRTY_THROTTLING", ds)[1] == "needs proc/sys/vm@end (error: could not parse)"


def test_overcommit_info_and_strict_high():
    from findings_helpers import BASE_SYSVM
    f, _ = run("OVERCOMMIT", build(meminfo={"Committed_AS": int(MEMTOTAL * 1.5)}))
    assert f.severity == "INFO" and round(f.evidence.values["commit_pct"]) == 150
    ds = build(meminfo={"Committed_AS": 12_000_000, "CommitLimit": 12_342_040},
               end={"sysvm": dict(BASE_SYSVM, overcommit_memory="2")})
    f, _ = run("OVERCOMMIT", ds)
    assert f.severity == "HIGH" and round(f.evidence.values["commit_limit_pct"]) == 97


def test_overcommit_negative_and_missing():
    assert run("OVERCOMMIT", build())[0] is None
    assert run("OVERCOMMIT", build(drop=("meminfo",)))[1].startswith("needs series/proc/meminfo")


def test_unevictable_step_is_a_step_with_its_holders():
    from snapcollect.parsers.records import ShmSegment, StatusMemory
    step_kb = 1536 * 1024                # 1.5 GiB in one second: 6% of this host's RAM
    mi = {"Unevictable": lambda k: 16480 + (step_kb if k >= 20 else 0)}
    end = {"proc_memory": [StatusMemory(4242, "locker", step_kb, step_kb, 0, 0, 0, step_kb, 0, "/x")],
           "shm": [ShmSegment(0, 9, 1 << 20, 4243, 4243, 0, 0, 1 << 20, 0, True)]}
    f, _ = run("UNEVICTABLE_GROWTH", build(meminfo=mi, end=end))
    assert f.severity == "WARN" and f.title.startswith("Unevictable memory rose by a step of 1.5 GiB at ")
    assert "/min" not in f.title and f.evidence.values["kb_per_min"] is None
    assert "locker (pid 4242) 1.5 GiB" in f.explanation and "SysV segment 9" in f.explanation
    assert f.evidence.values["holders"][0]["pid"] == 4242
    assert "procs/memory@end" in f.evidence.artifacts
    # a small step (1.2% of RAM) is INFO
    small = {"Unevictable": lambda k: 16480 + (300 * 1024 if k >= 20 else 0)}
    assert run("UNEVICTABLE_GROWTH", build(meminfo=small))[0].severity == "INFO"
