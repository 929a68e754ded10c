"""SWAP_FILLING, SWAP_THRASHING."""

from findings_helpers import GIB_KB, T0, build, proc, psi_ramp, ramp, run, BASE_PROCS

SWAP = 2 * GIB_KB


def test_swap_filling_warn_and_high():
    f, _ = run("SWAP_FILLING", build(meminfo={"SwapTotal": SWAP, "SwapFree": int(SWAP * 0.15)}))
    assert f.severity == "WARN" and round(f.evidence.values["swpused_pct_max"]) == 85
    f, _ = run("SWAP_FILLING", build(meminfo={"SwapTotal": SWAP, "SwapFree": int(SWAP * 0.05)}))
    assert f.severity == "HIGH" and f.evidence.section == "sar-S"


def test_swap_filling_negative_no_swap_or_room():
    assert run("SWAP_FILLING", build())[0] is None
    assert run("SWAP_FILLING", build(meminfo={"SwapTotal": SWAP, "SwapFree": SWAP // 2}))[0] is None


def test_swap_filling_missing():
    assert run("SWAP_FILLING", build(drop=("meminfo",)))[1].startswith("needs series/proc/meminfo")


def test_swap_thrashing_high_with_pressure_names_the_swapper():
    procs = lambda k: {**BASE_PROCS, 7310: proc(7310, "python", 64 * 1024, swap_kb=150_000 + k)}  # noqa: E731
    ds = build(vmstat={"pswpin": ramp(2000), "pswpout": ramp(2100)}, psi_at=psi_ramp(some_pct=25, full_pct=22),
               procs=procs)
    f, _ = run("SWAP_THRASHING", ds)
    assert f.severity == "HIGH"
    assert f.title == "Swap thrashing: swap-in and swap-out together in 30 of 30 intervals"
    assert f.evidence.values["pswpin_delta"] == 60000 and f.evidence.values["pswpout_delta"] == 63000
    assert round(f.evidence.values["peak_in"]) == 2000
    assert "python (pid 7310) held the most swap" in f.explanation
    assert f.evidence.time_range == (T0, T0 + 30) and f.evidence.section == "sar-W"


def test_swap_thrashing_warn_without_pressure():
    f, _ = run("SWAP_THRASHING", build(vmstat={"pswpin": ramp(5), "pswpout": ramp(5)}))
    assert f.severity == "WARN"


def test_swap_thrashing_negative():
    # only swapping out (filling swap), or in and out in different intervals
    assert run("SWAP_THRASHING", build(vmstat={"pswpout": ramp(500)}))[0] is None
    ds = build(vmstat={"pswpout": ramp(500, ticks=range(1, 10)), "pswpin": ramp(500, ticks=range(20, 31))})
    assert run("SWAP_THRASHING", ds)[0] is None
    # two intervals of both is noise
    assert run("SWAP_THRASHING", build(vmstat={"pswpin": ramp(9, ticks=range(3, 5)),
                                               "pswpout": ramp(9, ticks=range(3, 5))}))[0] is None


def test_swap_thrashing_missing():
    ds = build(drop=("vmstat",), missing={"series/proc/vmstat": ("denied", "no")})
    assert run("SWAP_THRASHING", ds)[1] == "needs series/proc/vmstat (denied: no)"


def test_swap_filling_names_the_holders():
    from snapcollect.parsers.records import StatusMemory
    rows = [StatusMemory(31, "hog", 1000, 0, 0, 0, 900 * 1024, 0, 0, "/"),
            StatusMemory(32, "small", 1000, 0, 0, 0, 10 * 1024, 0, 0, "/"),
            StatusMemory(33, "none", 1000, 0, 0, 0, 0, 0, 0, "/")]
    total = 1024 * 1024
    ds = build(meminfo={"SwapTotal": total, "SwapFree": total // 20}, end={"proc_memory": rows})
    f, _ = run("SWAP_FILLING", ds)
    assert "Holding the most swap at the end: hog (pid 31) 900.0 MiB, small (pid 32) 10.0 MiB." in f.explanation
    assert [h["pid"] for h in f.evidence.values["holders"]] == [31, 32]
    assert f.title == "Swap 95% used (972.8 MiB of 1.0 GiB), 900.0 MiB of it by hog (pid 31)"
    # without the end's process memory: the per-tick VmSwap
    procs = lambda k: {**BASE_PROCS, 41: proc(41, "swapped", 100, swap_kb=500 * 1024)}  # noqa: E731
    f, _ = run("SWAP_FILLING", build(meminfo={"SwapTotal": total, "SwapFree": total // 20}, procs=procs))
    assert f.evidence.values["holders"][0]["pid"] == 41 and "series/procs" in f.evidence.artifacts
